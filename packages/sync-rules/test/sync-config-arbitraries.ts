/**
 * Generators of the sync config fuzz suite (sync-config-fuzz.test.ts). A *model* of a valid sync
 * config (bucket definitions, streams, events, editions) is built from the language in
 * docs/sync-config.md, rendered into YAML in many layouts and scalar styles, and then optionally
 * broken by text *mutations*. Add a generator here when the language grows, so the suite grows too.
 */
import fc from 'fast-check';
import type { ConnectionRequest, SourceTableRef, SqliteRow, SqliteValue } from '../src/index.js';

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/** A table a generated query reads; `schema` undefined means the parser's default schema. */
export interface TableModel {
  schema: string | undefined;
  name: string;
  wildcard: boolean;
}

/** A SQL text and which kinds of request values it reads (for the potentially-dangerous-query warning). */
interface Sql {
  text: string;
  auth: boolean;
  unauth: boolean;
}

export interface BucketDefinitionModel {
  name: string;
  priority: number | undefined;
  accept: boolean | undefined;
  /** Undefined: no parameters: key (one global bucket). */
  parameters: string[] | undefined;
  /** Render a single parameter query as a string rather than a one-item list. */
  parametersAsString: boolean;
  data: string[];
  dataAsString: boolean;
  /** Parameter queries the parser must warn about: they use only client-supplied parameters. */
  warnings: number;
}

export interface StreamModel {
  name: string;
  priority: number | undefined;
  autoSubscribe: boolean | undefined;
  accept: boolean | undefined;
  query: string;
  /** True when the parser must warn that the stream uses only client-supplied parameters. */
  warns: boolean;
}

export interface EventModel {
  name: string;
  payloads: string[];
}

/** A valid sync config. Every query of it compiles; `tables` are the tables its queries read. */
export interface SyncConfigModel {
  edition: 1 | 2 | undefined;
  buckets: BucketDefinitionModel[];
  streams: StreamModel[];
  events: EventModel[];
  tables: TableModel[];
}

/** Number of definitions the parser must warn about. */
export function expectedWarnings(model: SyncConfigModel): number {
  return model.buckets.reduce((n, b) => n + b.warnings, 0) + model.streams.filter((s) => s.warns).length;
}

/** Every top-level SQL text of a model, in render order (the fault-injection targets). */
export function modelQueries(model: SyncConfigModel): string[] {
  return [
    ...model.buckets.flatMap((b) => [...(b.parameters ?? []), ...b.data]),
    ...model.streams.map((s) => s.query),
    ...model.events.flatMap((e) => e.payloads),
  ];
}

/** The same model with the query at `index` (modulo the query count) rewritten by `f`. */
export function mapQuery(model: SyncConfigModel, index: number, f: (sql: string) => string): SyncConfigModel {
  const target = index % modelQueries(model).length;
  let i = 0;
  const visit = (sql: string): string => (i++ === target ? f(sql) : sql);
  return {
    ...model,
    buckets: model.buckets.map((b) => ({ ...b, parameters: b.parameters?.map(visit), data: b.data.map(visit) })),
    streams: model.streams.map((s) => ({ ...s, query: visit(s.query) })),
    events: model.events.map((e) => ({ ...e, payloads: e.payloads.map(visit) })),
  };
}

// ---------------------------------------------------------------------------------------------
// SQL pieces
// ---------------------------------------------------------------------------------------------

/** Columns of every generated table; quoted names keep their case. */
export const COLUMNS = [
  'id',
  'owner_id',
  'team_id',
  'list_id',
  'user_id',
  'title',
  'n',
  'price',
  'doc',
  'tags',
  'archived',
  '"Title"',
  'geo',
  '_internal',
];

/** Row keys of {@link COLUMNS} (quotes removed) plus the wildcard suffix column. */
export const ROW_KEYS = [...COLUMNS.map((c) => c.replace(/"/g, '')), '_table_suffix'];

/** Output names of parameter queries (bucket parameters). */
export const PARAMETER_NAMES = ['p', 'team', 'u', 'org', 'list', 'x1'];

/** Stands for the column qualifier of the query being built (`t.`, `tasks.` or nothing). */
const Q = '\u00a7.';

const sql = (text: string, auth = false, unauth = false): Sql => ({ text, auth, unauth });
const join = (parts: Sql[], separator: string): Sql => ({
  text: parts.map((p) => p.text).join(separator),
  auth: parts.some((p) => p.auth),
  unauth: parts.some((p) => p.unauth),
});

/** A string literal: quotes doubled; characters YAML plain scalars tolerate, plus a few odd ones. */
const stringLiteral = fc
  .string({ unit: fc.constantFrom(...'abcxyz019 _.$-[]",\'\\é'.split('')), maxLength: 8 })
  .map((s) => `'${s.replace(/'/g, "''")}'`);

const literal: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }).map(String),
  fc.constantFrom('0', '9223372036854775807', '-9223372036854775807', '2.5', '-0.5', '3.0'),
  fc.constantFrom('NULL', 'true', 'false', "X'01ff'", `'["a","b",1]'`, `'{"team":"t1","a":{"b":[1,2]}}'`, "''"),
  stringLiteral,
);

const column = fc.constantFrom(...COLUMNS).map((c) => `${Q}${c}`);
const jsonKey = fc.constantFrom("'team'", "'a.b'", "'$.a.b'", "'$.teams[0]'", "'$'", '0', '\'$."b.c"\'', "''");
const castType = fc.constantFrom('text', 'integer', 'real', 'numeric', 'blob', 'int', 'bigint', 'float8', 'varchar');
const binaryOperator = fc.constantFrom('+', '-', '*', '/', '||', '=', '!=', '<>', '<', '>', '<=', '>=', 'AND', 'OR');
const unaryFunction = fc.constantFrom(
  'upper',
  'lower',
  'length',
  'hex',
  'base64',
  'typeof',
  'json_keys',
  'json_valid',
  'json_array_length',
  'uuid_blob',
  'unixepoch',
  'datetime',
  'st_x',
  'st_y',
  'st_astext',
  'st_asgeojson',
);

/**
 * Row expressions over {@link COLUMNS}: literals, every supported function with a valid
 * argument count, operators, casts, JSON operators and IN. Compound operands are parenthesised.
 */
export function rowExpression(maxDepth: number): fc.Arbitrary<string> {
  return fc.letrec<{ e: string }>((tie) => {
    const e = tie('e');
    const p = e.map((x) => `(${x})`);
    return {
      e: fc.oneof(
        { maxDepth, depthSize: 'small', depthIdentifier: 'row-expression' },
        fc.oneof(column, literal),
        fc.tuple(unaryFunction, e).map(([f, a]) => `${f}(${a})`),
        fc.tuple(fc.constantFrom('ifnull', 'instr', 'substring'), e, e).map(([f, a, b]) => `${f}(${a}, ${b})`),
        fc.tuple(fc.constantFrom('iif', 'substring'), e, e, e).map(([f, a, b, c]) => `${f}(${a}, ${b}, ${c})`),
        fc
          .tuple(
            fc.constantFrom('json_extract', 'json_array_length'),
            e,
            fc.constantFrom("'$.a'", "'$.teams[1]'", "'$'"),
          )
          .map(([f, a, path]) => `${f}(${a}, ${path})`),
        fc.tuple(e, fc.constantFrom("'unixepoch'", "'subsec'", "'now'")).map(([a, m]) => `datetime(${a}, ${m})`),
        fc.constantFrom('now()', "datetime('now')"),
        fc.tuple(p, binaryOperator, p).map(([a, op, b]) => `${a} ${op} ${b}`),
        p.map((a) => `NOT ${a}`),
        fc.tuple(p, fc.constantFrom('IS NULL', 'IS NOT NULL')).map(([a, op]) => `${a} ${op}`),
        fc.tuple(p, castType).map(([a, t]) => `CAST(${a} AS ${t})`),
        fc.tuple(p, castType).map(([a, t]) => `${a}::${t}`),
        fc.tuple(p, fc.constantFrom('->', '->>'), jsonKey).map(([a, op, k]) => `${a} ${op} ${k}`),
        fc
          .tuple(p, fc.constantFrom('IN', 'NOT IN'), fc.array(e, { minLength: 1, maxLength: 3 }))
          .map(([a, op, list]) => `${a} ${op} (${list.join(', ')})`),
        fc.tuple(p, fc.constantFrom(`'["a","b",1]'`, "'[]'", `'not json'`)).map(([a, arr]) => `${a} IN ${arr}`),
      ),
    };
  }).e;
}

/** The row side of a binding: a column or a simple expression of one. */
const rowSide = fc.oneof(
  { weight: 3, arbitrary: column },
  column.map((c) => `upper(${c})`),
  column.map((c) => `${c} ->> 'team'`),
  column.map((c) => `CAST(${c} AS text)`),
);

/** Request values of bucket_definitions, flagged as authenticated (token) or not (client parameters). */
const bucketRequestValue: fc.Arbitrary<Sql> = fc.oneof(
  fc.constantFrom(
    sql('request.user_id()', true),
    sql("request.jwt() ->> 'team'", true),
    sql('token_parameters.team', true),
    sql('token_parameters.user_id', true),
  ),
  fc.constantFrom(
    sql("request.parameter('team')", false, true),
    sql("request.parameters() ->> 'team'", false, true),
    sql('user_parameters.team', false, true),
  ),
);
const bucketRequestArray: fc.Arbitrary<Sql> = fc.constantFrom(
  sql("request.jwt() -> 'teams'", true),
  sql('token_parameters.teams', true),
  sql("request.parameter('ids')", false, true),
  sql("request.parameters() -> 'ids'", false, true),
);

/** Request values of streams. */
const streamRequestValue: fc.Arbitrary<Sql> = fc.constantFrom(
  sql('auth.user_id()', true),
  sql("auth.parameter('team')", true),
  sql("auth.parameters() ->> 'team'", true),
  sql("subscription.parameter('list')", false, true),
  sql("subscription.parameters() ->> 'list'", false, true),
  sql("connection.parameter('team')", false, true),
  sql("connection.parameters() ->> 'team'", false, true),
);
const streamRequestArray: fc.Arbitrary<Sql> = fc.constantFrom(
  sql("auth.parameter('teams')", true),
  sql("auth.parameters() -> 'teams'", true),
  sql("subscription.parameter('ids')", false, true),
  sql("connection.parameter('ids')", false, true),
);

/** A request value, sometimes wrapped in a function that keeps it request-only. */
function wrappedRequest(value: fc.Arbitrary<Sql>): fc.Arbitrary<Sql> {
  return fc
    .tuple(value, fc.constantFrom('%', 'upper(%)', 'CAST(% AS text)', "ifnull(%, 'none')", "(%) || ''"))
    .map(([v, w]) => ({ ...v, text: w.replace('%', v.text) }));
}

/** A condition on request values only (a request filter). */
function requestFilter(value: fc.Arbitrary<Sql>): fc.Arbitrary<Sql> {
  return fc
    .tuple(value, fc.constantFrom("(%) = 'admin'", '(%) IS NOT NULL', 'NOT ((%) IS NULL)', "(%) != ''"))
    .map(([v, w]) => ({ ...v, text: w.replace('%', v.text) }));
}

const rowFilter = rowExpression(2).map((e) => `(${e})`);

/** A table reference: its SQL, the qualifier its columns may use, and the table it reads. */
interface TableRef {
  sql: string;
  qualifier: string | undefined;
  table: TableModel;
}

const tableRef: fc.Arbitrary<TableRef> = fc
  .tuple(
    fc.constantFrom(
      { sql: 'tasks', name: 'tasks', wildcard: false },
      { sql: 'lists', name: 'lists', wildcard: false },
      { sql: 'members', name: 'members', wildcard: false },
      { sql: 'projects', name: 'projects', wildcard: false },
      { sql: 'TASKS', name: 'tasks', wildcard: false },
      { sql: '"Todos"', name: 'Todos', wildcard: false },
      { sql: '"todos_%"', name: 'todos_', wildcard: true },
    ),
    fc.constantFrom(undefined, undefined, 'public', 'other'),
    fc.constantFrom(undefined, undefined, 't', 'x1'),
    fc.boolean(),
  )
  .map(([t, schema, alias, withAs]) => {
    const name = schema ? `${schema}.${t.sql}` : t.sql;
    const qualifier = alias ?? (t.wildcard ? undefined : t.sql);
    return {
      sql: alias ? `${name}${withAs ? ' AS' : ''} ${alias}` : name,
      qualifier,
      table: { schema, name: t.name, wildcard: t.wildcard },
    };
  });

/** Replaces the qualifier placeholder with the table's qualifier, or drops it. */
function qualify(text: string, table: TableRef, qualified: boolean): string {
  const prefix = qualified && table.qualifier ? `${table.qualifier}.` : '';
  return text.split(Q).join(prefix);
}

/** A SELECT list of a data query or stream: `*` or an id plus columns and named expressions. */
const selectList: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: fc.constant('*') },
  fc
    .tuple(
      fc.constantFrom(`${Q}id`, 'id', `CAST(${Q}id AS text) AS id`, `${Q}n AS id`),
      fc.array(fc.oneof(column, rowExpression(2)), { maxLength: 2 }),
      fc.boolean(),
    )
    .map(([id, extra, star]) => {
      const named = extra.map((e, i) => (e.startsWith(Q) && !e.includes(' ') ? e : `${e} AS c${i}`));
      return [...(star ? ['*'] : []), id, ...named].join(', ');
    }),
);

/** A conjunction of terms (each parenthesised when it could hold an OR). */
function conjunction(terms: Sql[]): Sql {
  return join(terms, ' AND ');
}

/** Alternatives joined with OR, each parenthesised. */
function disjunction(alternatives: Sql[]): Sql {
  return alternatives.length === 1
    ? alternatives[0]!
    : join(
        alternatives.map((a) => ({ ...a, text: `(${a.text})` })),
        ' OR ',
      );
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/** A data query of a bucket definition with parameters `names`: every alternative binds every parameter. */
function dataQuery(names: readonly string[]): fc.Arbitrary<{ sql: string; table: TableModel }> {
  const binding = (name: string): fc.Arbitrary<string> =>
    fc.oneof(
      rowSide.map((r) => `${r} = bucket.${name}`),
      rowSide.map((r) => `bucket.${name} = ${r}`),
      column.map((c) => `bucket.${name} IN ${c}`),
    );
  const alternative = fc
    .tuple(fc.tuple(...names.map(binding)), fc.array(rowFilter, { maxLength: 2 }))
    .chain(([bindings, filters]) =>
      fc.shuffledSubarray([...bindings, ...filters], { minLength: bindings.length + filters.length }),
    )
    .map((terms) => conjunction(terms.map((t) => sql(t))));
  const where =
    names.length === 0
      ? fc.option(
          fc.array(rowFilter, { minLength: 1, maxLength: 2 }).map((f) => f.join(' AND ')),
          { nil: undefined },
        )
      : fc.array(alternative, { minLength: 1, maxLength: 2 }).map((alts) => disjunction(alts).text);
  return fc.tuple(selectList, tableRef, where, fc.boolean()).map(([columns, table, w, qualified]) => ({
    sql: qualify(`SELECT ${columns} FROM ${table.sql}${w ? ` WHERE ${w}` : ''}`, table, qualified),
    table: table.table,
  }));
}

interface ParameterQueryModel {
  sql: Sql;
  table: TableModel | undefined;
}

/** A parameter query with outputs `names` (in any order): static, json_each or table-backed. */
function parameterQuery(names: readonly string[], allowPriority: boolean): fc.Arbitrary<ParameterQueryModel> {
  const priority = allowPriority
    ? fc.option(
        fc.integer({ min: 0, max: 3 }).map((n) => `${n} AS _priority`),
        { nil: undefined, freq: 3 },
      )
    : fc.constant(undefined);
  const withPriority = (outputs: string[], p: string | undefined): string[] => (p ? [...outputs, p] : outputs);

  const staticQuery = fc
    .tuple(
      fc.tuple(...names.map(() => wrappedRequest(bucketRequestValue))),
      fc.option(requestFilter(bucketRequestValue), { nil: undefined }),
      priority,
    )
    .map(([values, filter, p]): ParameterQueryModel => {
      const outputs = values.map((v, i) => ({ ...v, text: `${v.text} AS ${names[i]}` }));
      const select = join(
        withPriority(
          outputs.map((o) => o.text),
          p,
        ).map((t) => sql(t)),
        ', ',
      );
      const all = join([...outputs, ...(filter ? [filter] : [])], ' ');
      return {
        sql: { ...all, text: `SELECT ${select.text}${filter ? ` WHERE ${filter.text}` : ''}` },
        table: undefined,
      };
    });

  const jsonEachQuery = fc
    .tuple(
      bucketRequestArray,
      fc.constantFrom(undefined, 'j', 'e'),
      fc.constantFrom('value', 'key'),
      fc.tuple(...names.slice(1).map(() => bucketRequestValue)),
      fc.boolean(),
      priority,
    )
    .map(([source, alias, first, rest, filter, p]): ParameterQueryModel => {
      const q = alias ? `${alias}.` : '';
      const outputs = [`${q}${first} AS ${names[0]}`, ...rest.map((r, i) => `${r.text} AS ${names[i + 1]}`)];
      const all = join([source, ...rest], ' ');
      return {
        sql: {
          ...all,
          text: `SELECT ${withPriority(outputs, p).join(', ')} FROM json_each(${source.text})${alias ? ` AS ${alias}` : ''}${filter ? ` WHERE ${q}value IS NOT NULL` : ''}`,
        },
        table: undefined,
      };
    });

  const requestBinding = fc.oneof(
    fc.tuple(rowSide, wrappedRequest(bucketRequestValue)).map(([r, v]) => ({ ...v, text: `${r} = ${v.text}` })),
    fc.tuple(wrappedRequest(bucketRequestValue), rowSide).map(([v, r]) => ({ ...v, text: `${v.text} = ${r}` })),
    fc.tuple(rowSide, bucketRequestArray).map(([r, v]) => ({ ...v, text: `${r} IN ${v.text}` })),
    fc.tuple(bucketRequestValue, column).map(([v, c]) => ({ ...v, text: `${v.text} IN ${c}` })),
  );
  const tableQuery = fc
    .tuple(
      tableRef,
      fc.tuple(...names.map(() => rowSide)),
      fc.array(requestBinding, { maxLength: 2 }),
      fc.option(rowFilter, { nil: undefined }),
      fc.option(requestFilter(bucketRequestValue), { nil: undefined }),
      fc.boolean(),
      priority,
    )
    .map(([table, outputs, bindings, filter, reqFilter, qualified, p]): ParameterQueryModel => {
      const terms = [...bindings, ...(filter ? [sql(filter)] : []), ...(reqFilter ? [reqFilter] : [])];
      const where = terms.length > 0 ? conjunction(terms) : undefined;
      const select = withPriority(
        outputs.map((o, i) => `${o} AS ${names[i]}`),
        p,
      ).join(', ');
      const text = qualify(
        `SELECT ${select} FROM ${table.sql}${where ? ` WHERE ${where.text}` : ''}`,
        table,
        qualified,
      );
      return { sql: { text, auth: where?.auth ?? false, unauth: where?.unauth ?? false }, table: table.table };
    });

  return fc.oneof(staticQuery, jsonEachQuery, tableQuery);
}

/** A bucket definition named `name`; its tables are returned with it. */
function bucketDefinition(name: string): fc.Arbitrary<{ model: BucketDefinitionModel; tables: TableModel[] }> {
  return fc
    .tuple(
      fc.option(fc.uniqueArray(fc.constantFrom(...PARAMETER_NAMES), { minLength: 1, maxLength: 3 }), {
        nil: undefined,
        freq: 4,
      }),
      fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
      fc.constantFrom(undefined, true, false),
      fc.boolean(),
      fc.boolean(),
    )
    .chain(([names, priority, accept, parametersAsString, dataAsString]) => {
      const parameterNames = names ?? [];
      const parameters = names
        ? fc.array(
            fc
              .shuffledSubarray(names, { minLength: names.length })
              .chain((order) => parameterQuery(order, priority === undefined)),
            { minLength: 1, maxLength: 2 },
          )
        : fc.constant(undefined);
      return fc
        .tuple(parameters, fc.array(dataQuery(parameterNames), { minLength: 1, maxLength: 2 }))
        .map(([queries, data]) => {
          const warnings = accept === true ? 0 : (queries ?? []).filter((q) => q.sql.unauth && !q.sql.auth).length;
          return {
            model: {
              name,
              priority,
              accept,
              parameters: queries?.map((q) => q.sql.text),
              parametersAsString: parametersAsString && queries?.length === 1,
              data: data.map((d) => d.sql),
              dataAsString: dataAsString && data.length === 1,
              warnings,
            },
            tables: [...(queries ?? []).flatMap((q) => (q.table ? [q.table] : [])), ...data.map((d) => d.table)],
          };
        });
    });
}

/** A stream named `name`: bindings to request values, arrays, `&&` and `IN (SELECT ...)`, split by OR into variants. */
function stream(name: string): fc.Arbitrary<{ model: StreamModel; tables: TableModel[] }> {
  const subquery = fc
    .tuple(
      tableRef,
      fc.constantFrom(`${Q}id`, `${Q}list_id`, `${Q}team_id AS x`, `upper(${Q}id) AS x`),
      fc.option(
        fc.oneof(
          fc.tuple(column, wrappedRequest(streamRequestValue)).map(([c, v]) => ({ ...v, text: `${c} = ${v.text}` })),
          fc.tuple(column, streamRequestArray).map(([c, v]) => ({ ...v, text: `${c} IN ${v.text}` })),
          fc.tuple(streamRequestValue, column).map(([v, c]) => ({ ...v, text: `${v.text} IN ${c}` })),
        ),
        { nil: undefined },
      ),
      fc.option(rowFilter, { nil: undefined }),
      fc.boolean(),
    )
    .map(([table, output, binding, filter, qualified]) => {
      const terms = [...(binding ? [binding] : []), ...(filter ? [sql(filter)] : [])];
      const where = terms.length > 0 ? conjunction(terms) : undefined;
      const text = qualify(
        `SELECT ${output} FROM ${table.sql}${where ? ` WHERE ${where.text}` : ''}`,
        table,
        qualified,
      );
      return { sql: { text, auth: where?.auth ?? false, unauth: where?.unauth ?? false }, table: table.table };
    });
  type Term = { sql: Sql; binds: boolean; tables: TableModel[] };
  const bindingTerm: fc.Arbitrary<Term> = fc
    .oneof(
      fc.tuple(rowSide, wrappedRequest(streamRequestValue)).map(([r, v]) => ({ ...v, text: `${r} = ${v.text}` })),
      fc.tuple(rowSide, streamRequestArray).map(([r, v]) => ({ ...v, text: `${r} IN ${v.text}` })),
      fc.tuple(streamRequestValue, column).map(([v, c]) => ({ ...v, text: `${v.text} IN ${c}` })),
      fc.tuple(column, streamRequestArray, fc.boolean()).map(([c, v, flip]) => ({
        ...v,
        text: flip ? `${v.text} && ${c}` : `${c} && ${v.text}`,
      })),
    )
    .map((s) => ({ sql: s, binds: true, tables: [] as TableModel[] }));
  const subqueryTerm: fc.Arbitrary<Term> = fc
    .tuple(rowSide, subquery)
    .map(([r, s]) => ({ sql: { ...s.sql, text: `${r} IN (${s.sql.text})` }, binds: true, tables: [s.table] }));
  const filterTerm: fc.Arbitrary<Term> = fc.oneof(
    rowFilter.map((f) => ({ sql: sql(f), binds: false, tables: [] as TableModel[] })),
    requestFilter(streamRequestValue).map((f) => ({ sql: f, binds: false, tables: [] as TableModel[] })),
  );
  const alternative = fc
    .tuple(
      fc.oneof(bindingTerm, subqueryTerm),
      fc.array(fc.oneof(bindingTerm, subqueryTerm, filterTerm), { maxLength: 2 }),
    )
    .map(([first, rest]) => [first, ...rest]);
  const where = fc.oneof(
    fc.constant(undefined),
    fc.array(filterTerm, { minLength: 1, maxLength: 2 }).map((terms) => ({ alternatives: [terms] })),
    fc.array(alternative, { minLength: 1, maxLength: 2 }).map((alternatives) => ({ alternatives })),
  );
  return fc
    .tuple(
      selectList,
      tableRef,
      where,
      fc.boolean(),
      fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
      fc.constantFrom(undefined, true, false),
      fc.constantFrom(undefined, true, false),
    )
    .map(([columns, table, w, qualified, priority, autoSubscribe, accept]) => {
      const alternatives = (w?.alternatives ?? []).map((terms) => conjunction(terms.map((t) => t.sql)));
      const condition = alternatives.length > 0 ? disjunction(alternatives) : undefined;
      const query = qualify(
        `SELECT ${columns} FROM ${table.sql}${condition ? ` WHERE ${condition.text}` : ''}`,
        table,
        qualified,
      );
      const subqueryTables = (w?.alternatives ?? []).flat().flatMap((t) => t.tables);
      return {
        model: {
          name,
          priority,
          autoSubscribe,
          accept,
          query,
          warns: accept !== true && condition !== undefined && condition.unauth && !condition.auth,
        },
        tables: [table.table, ...subqueryTables],
      };
    });
}

/** An event definition: payload queries over one table each, filtered by row conditions. */
function eventDefinition(name: string): fc.Arbitrary<{ model: EventModel; tables: TableModel[] }> {
  const payload = fc
    .tuple(
      fc.oneof(
        selectList,
        rowExpression(1).map((e) => `${e} AS v`),
      ),
      tableRef,
      fc.option(rowFilter, { nil: undefined }),
      fc.boolean(),
    )
    .map(([columns, table, filter, qualified]) => ({
      sql: qualify(`SELECT ${columns} FROM ${table.sql}${filter ? ` WHERE ${filter}` : ''}`, table, qualified),
      table: table.table,
    }));
  return fc.array(payload, { minLength: 1, maxLength: 2 }).map((payloads) => ({
    model: { name, payloads: payloads.map((p) => p.sql) },
    tables: payloads.map((p) => p.table),
  }));
}

/** Definition names: mostly identifiers, sometimes with spaces, unicode or YAML-special spellings. */
export const definitionName: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[a-z][a-z0-9_]{0,10}$/) },
  fc.constantFrom('by team', 'équipe', 'Todos', 'x-y', 'true', 'null', '1', 'a:b', '"q"', 'ünï', 'yes'),
);

/** Valid sync configs of 1 to `maxDefinitions` bucket definitions and streams, 0-1 events and an edition. */
export function syncConfigModelOf(maxDefinitions: number): fc.Arbitrary<SyncConfigModel> {
  return fc
    .tuple(
      fc.uniqueArray(definitionName, { minLength: 1, maxLength: maxDefinitions }),
      fc.nat(),
      fc.option(definitionName, { nil: undefined, freq: 4 }),
      fc.constantFrom(undefined, 1 as const, 2 as const),
    )
    .chain(([names, split, eventName, edition]) => {
      const cut = split % (names.length + 1);
      return fc
        .tuple(
          fc.tuple(...names.slice(0, cut).map(bucketDefinition)),
          fc.tuple(...names.slice(cut).map(stream)),
          eventName === undefined ? fc.constant([]) : fc.tuple(eventDefinition(eventName)),
        )
        .map(([buckets, streams, events]) => ({
          edition,
          buckets: buckets.map((b) => b.model),
          streams: streams.map((s) => s.model),
          events: events.map((e) => e.model),
          tables: [...buckets, ...streams, ...events].flatMap((d) => d.tables),
        }));
    });
}

/** Valid sync configs of up to four definitions: the model most properties start from. */
export const syncConfigModel: fc.Arbitrary<SyncConfigModel> = syncConfigModelOf(4);

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/** How a model is written as YAML. None of these choices changes what the config means. */
export interface Layout {
  /** Indentation step, 1-4 spaces. */
  indent: number;
  /** Spaces after the `:` of a key with a value on the same line. */
  colonSpaces: number;
  /** Seed of the per-scalar choices (style, line breaks, escapes, quoted keys). */
  seed: number;
  /** Write sequences at the parent key's indentation (`data:\n- x`). */
  compactSequences: boolean;
  comments: boolean;
  blankLines: boolean;
  crlf: boolean;
  /** Section order: definitions before or after config:. */
  configLast: boolean;
}

export const layout: fc.Arbitrary<Layout> = fc.record({
  indent: fc.integer({ min: 1, max: 4 }),
  colonSpaces: fc.integer({ min: 1, max: 3 }),
  seed: fc.integer(),
  compactSequences: fc.boolean(),
  comments: fc.boolean(),
  blankLines: fc.boolean(),
  crlf: fc.boolean(),
  configLast: fc.boolean(),
});

/** A small deterministic PRNG (mulberry32), so a layout renders the same text every time. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** Splits SQL at the single spaces between tokens, never inside a quoted literal or name. */
export function sqlTokens(text: string): string[] {
  const tokens: string[] = [];
  let current = '';
  let quote: string | undefined;
  for (const c of text) {
    if (quote) {
      current += c;
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') {
      quote = c;
      current += c;
    } else if (c === ' ') {
      tokens.push(current);
      current = '';
    } else current += c;
  }
  tokens.push(current);
  return tokens.filter((t) => t !== '');
}

/** True when a SQL text can be a plain YAML scalar (no `: `, ` #`, indicators or flow characters when in flow). */
function plainSafe(text: string, flow: boolean): boolean {
  if (/: |:$| #|\t|^[-?:,[\]{}#&*!|>'"%@`]/.test(text)) return false;
  return !flow || !/[,[\]{}]/.test(text);
}

/** Where a scalar is written: after `key: ` (map), after `- ` (seq) or inside `[...]` (flow). */
type ScalarContext = 'map' | 'seq' | 'flow';

/** A rendered scalar: text on the first line and any continuation lines (already indented). */
interface RenderedScalar {
  first: string;
  rest: string[];
}

class Renderer {
  private readonly random: (n: number) => number;
  private readonly lines: string[] = [];

  constructor(private readonly layout: Layout) {
    this.random = prng(layout.seed);
  }

  private chance(percent: number): boolean {
    return this.random(100) < percent;
  }

  private pad(n: number): string {
    return ' '.repeat(n);
  }

  /** A mapping key: plain when YAML would read it back as the same string, else double-quoted. */
  private key(name: string): string {
    const plain = /^[A-Za-z_][A-Za-z0-9_ -]*$/.test(name) && !/^(true|false|null|yes|no|on|off|y|n)$/i.test(name);
    if (plain && !name.endsWith(' ') && !this.chance(10)) return name;
    // Single-quoted YAML cannot hold control characters; double-quoted (JSON) escapes them.
    const control = Array.from(name).some((c) => c < ' ');
    return control || this.chance(80) ? JSON.stringify(name) : `'${name.replace(/'/g, "''")}'`;
  }

  private colon(): string {
    return `:${this.pad(this.layout.colonSpaces)}`;
  }

  private comment(indent: number): void {
    if (this.layout.comments && this.chance(20))
      this.lines.push(`${this.pad(indent)}# ${this.random(1000)}: a comment`);
    if (this.layout.blankLines && this.chance(20)) this.lines.push(this.chance(50) ? '' : this.pad(this.random(6)));
  }

  /** Joins tokens with a single space or, at chosen boundaries, `breakWith`. */
  private spread(tokens: string[], breakWith: (token: string) => string | undefined): string {
    let out = tokens[0] ?? '';
    for (const token of tokens.slice(1)) {
      const broken = this.chance(25) ? breakWith(token) : undefined;
      out += broken ?? ' ';
      out += token;
    }
    return out;
  }

  /** Double-quoted: `\` and `"` escaped, some characters written as \x/\u escapes, some breaks folded. */
  private doubleQuoted(text: string, contentIndent: number, multiLine: boolean): RenderedScalar {
    const tokens = sqlTokens(text).map((token) =>
      Array.from(token)
        .map((c) => {
          if (c === '\\' || c === '"') return `\\${c}`;
          if ((c === '=' || c === '*' || c === ',') && this.chance(20)) {
            return this.chance(50) ? `\\x${c.charCodeAt(0).toString(16)}` : `\\u00${c.charCodeAt(0).toString(16)}`;
          }
          if (c === ' ' && this.chance(20)) return '\\x20';
          if (c === 'é') return this.chance(50) ? '\\u00e9' : 'é';
          return c;
        })
        .join(''),
    );
    const body = this.spread(tokens, () => {
      if (!multiLine) return this.chance(10) ? ' \\t ' : undefined;
      if (this.chance(30)) return ` \\\n${this.pad(contentIndent)}`;
      return `\n${this.pad(contentIndent + this.random(3))}`;
    });
    const [first, ...rest] = `"${body}"`.split('\n');
    return { first: first!, rest };
  }

  private singleQuoted(text: string, contentIndent: number, multiLine: boolean): RenderedScalar {
    const tokens = sqlTokens(text).map((t) => t.replace(/'/g, "''"));
    const body = this.spread(tokens, () => (multiLine ? `\n${this.pad(contentIndent + this.random(3))}` : undefined));
    const [first, ...rest] = `'${body}'`.split('\n');
    return { first: first!, rest };
  }

  /** A SQL text as a YAML scalar in a style the context allows. */
  private scalar(text: string, context: ScalarContext, parentIndent: number): RenderedScalar {
    const contentIndent = parentIndent + Math.max(this.layout.indent, context === 'seq' ? 2 : 1);
    const flow = context === 'flow';
    const styles = ['double', 'single', ...(flow ? [] : ['literal', 'folded'])];
    if (plainSafe(text, flow)) styles.push('plain', 'plain', ...(flow ? [] : ['plain-lines']));
    const style = styles[this.random(styles.length)]!;
    const tokens = sqlTokens(text);
    switch (style) {
      case 'plain':
        return { first: text, rest: [] };
      case 'plain-lines': {
        const lines = this.spread(tokens, (t) =>
          /^[A-Za-z0-9_(]/.test(t) ? `\n${this.pad(contentIndent)}` : undefined,
        );
        const [first, ...rest] = lines.split('\n');
        return { first: first!, rest };
      }
      case 'double':
        return this.doubleQuoted(text, contentIndent, !flow || this.chance(30));
      case 'single':
        return this.singleQuoted(text, contentIndent, !flow || this.chance(30));
      default: {
        const indicator = style === 'literal' ? '|' : '>';
        const chomping = ['', '-', '+'][this.random(3)]!;
        // An explicit indentation indicator counts from the key's indentation (mapping values only).
        const explicit = context === 'map' && this.chance(25);
        const base = explicit ? parentIndent + this.layout.indent : contentIndent;
        const lines = this.spread(tokens, () => `\n${this.pad(this.random(3))}`).split('\n');
        // With an explicit indicator the first line may be indented more (its extra spaces are SQL whitespace).
        const firstExtra = explicit && this.chance(30) ? ' ' : '';
        const rest = lines.map((l, i) => `${this.pad(base)}${i === 0 ? firstExtra : ''}${l}`);
        const header = `${indicator}${explicit ? this.layout.indent : ''}${chomping}`;
        if (this.layout.comments && this.chance(20)) return { first: `${header} # sql`, rest };
        return { first: header, rest };
      }
    }
  }

  /** `key: value` with a scalar value. */
  private scalarEntry(indent: number, key: string, value: string): void {
    this.lines.push(`${this.pad(indent)}${this.key(key)}${this.colon()}${value}`);
  }

  /** `key: <sql>` or `key:` plus a list of SQL texts. */
  private queries(indent: number, key: string, texts: string[], asString: boolean): void {
    this.comment(indent);
    if (asString) {
      const s = this.scalar(texts[0]!, 'map', indent);
      this.lines.push(`${this.pad(indent)}${this.key(key)}${this.colon()}${s.first}`, ...s.rest);
      return;
    }
    if (this.chance(25)) {
      // Flow sequence, on one line or over several.
      const multi = this.chance(50);
      const itemIndent = indent + this.layout.indent;
      const items = texts.map((t) => this.scalar(t, 'flow', itemIndent));
      if (!multi && items.every((i) => i.rest.length === 0)) {
        this.lines.push(`${this.pad(indent)}${this.key(key)}${this.colon()}[${items.map((i) => i.first).join(', ')}]`);
        return;
      }
      this.lines.push(`${this.pad(indent)}${this.key(key)}:${this.pad(this.layout.colonSpaces)}[`);
      items.forEach((item, i) => {
        const comma = i < items.length - 1 ? ',' : '';
        if (item.rest.length === 0) this.lines.push(`${this.pad(itemIndent)}${item.first}${comma}`);
        else {
          this.lines.push(`${this.pad(itemIndent)}${item.first}`, ...item.rest);
          this.lines[this.lines.length - 1] += comma;
        }
      });
      this.lines.push(`${this.pad(itemIndent)}]`);
      return;
    }
    this.lines.push(`${this.pad(indent)}${this.key(key)}:`);
    const dash = this.layout.compactSequences ? indent : indent + this.layout.indent;
    for (const text of texts) {
      this.comment(dash);
      const s = this.scalar(text, 'seq', dash);
      this.lines.push(`${this.pad(dash)}-${this.pad(this.random(2) + 1)}${s.first}`, ...s.rest);
    }
  }

  private section(name: string): void {
    this.comment(0);
    this.lines.push(this.layout.comments && this.chance(30) ? `${this.key(name)}: # ${name}` : `${this.key(name)}:`);
  }

  render(model: SyncConfigModel): string {
    const step = this.layout.indent;
    if (this.layout.comments) this.lines.push('# a generated sync config');
    const config = (): void => {
      if (model.edition === undefined) return;
      if (this.chance(30)) {
        this.lines.push(`config:${this.pad(this.layout.colonSpaces)}{ edition: ${model.edition} }`);
        return;
      }
      this.section('config');
      this.scalarEntry(step, 'edition', String(model.edition));
    };
    if (!this.layout.configLast) config();
    if (model.buckets.length > 0) {
      this.section('bucket_definitions');
      for (const b of model.buckets) {
        this.comment(step);
        this.lines.push(`${this.pad(step)}${this.key(b.name)}:`);
        const inner = step * 2;
        if (b.priority !== undefined) this.scalarEntry(inner, 'priority', String(b.priority));
        if (b.accept !== undefined) this.scalarEntry(inner, 'accept_potentially_dangerous_queries', String(b.accept));
        if (b.parameters) this.queries(inner, 'parameters', b.parameters, b.parametersAsString);
        this.queries(inner, 'data', b.data, b.dataAsString);
      }
    }
    if (model.streams.length > 0) {
      this.section('streams');
      for (const s of model.streams) {
        this.comment(step);
        this.lines.push(`${this.pad(step)}${this.key(s.name)}:`);
        const inner = step * 2;
        if (s.autoSubscribe !== undefined) this.scalarEntry(inner, 'auto_subscribe', String(s.autoSubscribe));
        const q = this.scalar(s.query, 'map', inner);
        this.lines.push(`${this.pad(inner)}${this.key('query')}${this.colon()}${q.first}`, ...q.rest);
        if (s.priority !== undefined) this.scalarEntry(inner, 'priority', String(s.priority));
        if (s.accept !== undefined) this.scalarEntry(inner, 'accept_potentially_dangerous_queries', String(s.accept));
      }
    }
    if (model.events.length > 0) {
      this.section('event_definitions');
      for (const e of model.events) {
        this.lines.push(`${this.pad(step)}${this.key(e.name)}:`);
        this.queries(step * 2, 'payloads', e.payloads, false);
      }
    }
    if (this.layout.configLast) config();
    return this.lines.join(this.layout.crlf ? '\r\n' : '\n') + (this.layout.crlf ? '\r\n' : '\n');
  }
}

/** Writes a model as YAML in the given layout. */
export function renderSyncConfig(model: SyncConfigModel, chosen: Layout): string {
  return new Renderer(chosen).render(model);
}

// ---------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------

/** Characters that trip up text handling: NUL, BOM, zero-width and bidi marks, line separators, lone surrogates, astral. */
export const ODD_CHARACTERS = [
  '\u0000',
  '\ufeff',
  '\u200b',
  '\u202e',
  '\u2028',
  '\u2029',
  '\u0085',
  '\u00a0',
  '\ud800',
  '\udfff',
  '\ud83d\ude00',
  'e\u0301',
  '\u001b',
  '\r',
  '\t',
  '\v',
  '\f',
  '\uffff',
];

/** Tokens spliced into configs: YAML syntax, SQL keywords and operators, request functions, odd literals. */
export const SPLICE_TOKENS = [
  ': ',
  '- ',
  '[',
  ']',
  '{',
  '}',
  '|',
  '>',
  '"',
  "'",
  ' #',
  '&a ',
  '*a',
  '!!str ',
  '!!binary ',
  '!t ',
  '? ',
  '\n---\n',
  '\n...\n',
  '%YAML 1.2\n',
  '<<: ',
  'SELECT',
  ' FROM ',
  ' WHERE ',
  ' AND ',
  ' OR ',
  'NOT ',
  ' IN ',
  '(',
  ')',
  ',',
  'bucket.',
  'bucket.p',
  'request.user_id()',
  "auth.parameter('x')",
  'subscription.parameter(',
  'json_each(',
  '::',
  '->>',
  '&&',
  ' % ',
  '$1',
  '$$',
  "E'\\'",
  '--',
  '/*',
  ';',
  'CASE WHEN ',
  ' JOIN u ON ',
  ' UNION SELECT 1',
  ' LIMIT 1',
  '*',
  '_priority',
  '9223372036854775808',
  '1e999',
  "X'0g'",
  '"x%"',
  '"',
  'queries: ',
  'with: ',
  'edition: ',
  'priority: ',
];

/** YAML values of the wrong type for any key: collections, numbers, tags, anchors, aliases, block headers. */
export const WRONG_TYPE_VALUES = [
  '[1, 2]',
  '[]',
  '{a: 1}',
  '{}',
  '123',
  '-1',
  '3.5',
  '4',
  'true',
  'null',
  '~',
  "''",
  '!!binary aGk=',
  '!!int "3"',
  '!!str 2',
  '!custom x',
  '&anchor x',
  '*anchor',
  '*missing',
  '|',
  '>-',
  '2025-01-01',
  '0x1F',
  '.inf',
  '.nan',
  '1e400',
  '9223372036854775808',
  '"\\u0000"',
  '"\\ud800"',
  '? x',
  '- item',
  '@',
  '`',
  '%',
];

/** One edit of a text; positions are taken modulo the text's size so any mutation applies to any text. */
export type Mutation =
  | {
      kind: 'delete-token' | 'duplicate-token' | 'swap-tokens' | 'truncate' | 'duplicate-line' | 'duplicate-block';
      at: number;
    }
  | { kind: 'replace-token' | 'insert'; at: number; text: string }
  | { kind: 'odd-character'; at: number; text: string }
  | { kind: 'long-identifier'; at: number; length: number }
  | { kind: 'deep-nesting'; at: number; open: string; close: string; depth: number }
  | { kind: 'wrong-type'; at: number; text: string }
  | { kind: 'tabs'; at: number; all: boolean }
  | { kind: 'crlf' | 'bom' | 'strip-newlines' };

const position = fc.nat();

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constantFrom(
      'delete-token',
      'duplicate-token',
      'swap-tokens',
      'truncate',
      'duplicate-line',
      'duplicate-block',
    ),
    at: position,
  }),
  fc.record({
    kind: fc.constantFrom('replace-token', 'insert'),
    at: position,
    text: fc.constantFrom(...SPLICE_TOKENS),
  }),
  fc.record({
    kind: fc.constant('odd-character' as const),
    at: position,
    text: fc.oneof(fc.constantFrom(...ODD_CHARACTERS), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 })),
  }),
  fc.record({
    kind: fc.constant('long-identifier' as const),
    at: position,
    length: fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: 64, max: 2000 }) },
      fc.integer({ min: 2000, max: 20_000 }),
    ),
  }),
  fc.record({
    kind: fc.constant('deep-nesting' as const),
    at: position,
    open: fc.constantFrom('(', 'upper(', 'NOT ', '- ', '[', '{a: ', "'[", '-', " -> 'a'"),
    close: fc.constantFrom(')', '', ']', '}'),
    depth: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 2, max: 150 }) }, fc.integer({ min: 150, max: 1500 })),
  }),
  fc.record({ kind: fc.constant('wrong-type' as const), at: position, text: fc.constantFrom(...WRONG_TYPE_VALUES) }),
  fc.record({ kind: fc.constant('tabs' as const), at: position, all: fc.boolean() }),
  fc.record({ kind: fc.constantFrom('crlf' as const, 'bom' as const, 'strip-newlines' as const) }),
);

/** Words, runs of whitespace and single other characters. */
function textTokens(text: string): string[] {
  return text.match(/[\p{L}\p{N}_]+|\s+|[^\p{L}\p{N}_\s]/gu) ?? [];
}

/** Lines with their end of line kept, so joining them gives the text back. */
function textLines(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

/** Applies one mutation. */
export function mutate(text: string, m: Mutation): string {
  const tokens = textTokens(text);
  const lines = textLines(text);
  const t = tokens.length > 0 && 'at' in m ? m.at % tokens.length : 0;
  const l = lines.length > 0 && 'at' in m ? m.at % lines.length : 0;
  const offset = 'at' in m ? m.at % (text.length + 1) : 0;
  const splice = (i: number, remove: number, ...insert: string[]): string => {
    const copy = [...tokens];
    copy.splice(i, remove, ...insert);
    return copy.join('');
  };
  switch (m.kind) {
    case 'delete-token':
      return splice(t, 1);
    case 'duplicate-token':
      return splice(t, 0, tokens[t] ?? '');
    case 'swap-tokens':
      return t + 1 < tokens.length ? splice(t, 2, tokens[t + 1]!, tokens[t]!) : text;
    case 'replace-token':
      return splice(t, 1, m.text);
    case 'insert':
    case 'odd-character':
      return text.slice(0, offset) + m.text + text.slice(offset);
    case 'truncate':
      return text.slice(0, offset);
    case 'long-identifier': {
      // Replace a word with a long one (or insert one), keeping the first character.
      const word = tokens[t] ?? 'x';
      const long = (/^[\p{L}_]/u.test(word) ? word[0]! : 'x') + 'a'.repeat(m.length);
      return tokens.length > 0 ? splice(t, 1, long) : long;
    }
    case 'deep-nesting':
      return tokens.length > 0
        ? splice(t, 1, m.open.repeat(m.depth), tokens[t] ?? '', m.close.repeat(m.depth))
        : m.open.repeat(m.depth) + m.close.repeat(m.depth);
    case 'wrong-type': {
      // Replace the value of the chosen line's key (or add one to a key without a value).
      const line = lines[l];
      if (line === undefined) return m.text;
      const match = /^(\s*(?:- )?[^\s:#][^:#]*?:)([ \t].*)?(\r?\n)?$/.exec(line);
      if (!match) return text;
      const replaced = `${match[1]} ${m.text}${match[3] ?? ''}`;
      return [...lines.slice(0, l), replaced, ...lines.slice(l + 1)].join('');
    }
    case 'duplicate-line':
      return lines.length > 0 ? [...lines.slice(0, l + 1), lines[l]!, ...lines.slice(l + 1)].join('') : text;
    case 'duplicate-block': {
      // The line plus the following more-indented lines: a duplicate key or definition.
      if (lines.length === 0) return text;
      const indentOf = (s: string): number => s.length - s.trimStart().length;
      const base = indentOf(lines[l]!);
      let end = l + 1;
      while (end < lines.length && (lines[end]!.trim() === '' || indentOf(lines[end]!) > base)) end++;
      const block = lines.slice(l, end);
      if (!block[block.length - 1]!.endsWith('\n')) block[block.length - 1] += '\n';
      return [...lines.slice(0, end), ...block, ...lines.slice(end)].join('');
    }
    case 'tabs': {
      const toTabs = (s: string): string =>
        s.replace(/^( +)/, (spaces) => '\t'.repeat(Math.max(1, spaces.length >> 1)));
      if (m.all) return lines.map(toTabs).join('');
      return lines.length > 0 ? [...lines.slice(0, l), toTabs(lines[l]!), ...lines.slice(l + 1)].join('') : text;
    }
    case 'crlf':
      return text.replace(/\r?\n/g, '\r\n');
    case 'bom':
      return `\ufeff${text}`;
    case 'strip-newlines':
      return text.replace(/\n/g, ' ');
  }
}

/** A valid config (of one or two definitions: mutations need no more) in some layout, broken by 1-4 mutations. */
export const mutatedSyncConfig: fc.Arbitrary<{ text: string; mutations: Mutation[] }> = fc
  .tuple(syncConfigModelOf(2), layout, fc.array(mutation, { minLength: 1, maxLength: 4 }))
  .map(([model, l, mutations]) => ({
    text: mutations.reduce(mutate, renderSyncConfig(model, l)),
    mutations,
  }));

/** Text with no structure: random code points, and pieces of YAML and SQL syntax. */
export const unstructuredText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc
    .array(
      fc.oneof(
        fc.constantFrom(...SPLICE_TOKENS),
        fc.constantFrom(...ODD_CHARACTERS),
        fc.constantFrom('\n', '  ', 'x', 's:'),
      ),
      {
        maxLength: 80,
      },
    )
    .map((parts) => parts.join('')),
  fc
    .array(fc.oneof(fc.constantFrom(...SPLICE_TOKENS), fc.constantFrom('\n', ' ', 'x', '1', "'a'")), { maxLength: 40 })
    .map((parts) => `streams:\n  s:\n    query: SELECT * FROM t WHERE ${parts.join('')}\n`),
);

// ---------------------------------------------------------------------------------------------
// Rows and requests for evaluation
// ---------------------------------------------------------------------------------------------

const WKB_POINT = '0101000020E6100000000000000000F03F0000000000000040';

/** Source values as replication produces them, plus awkward ones (NaN, infinities, huge integers, bad JSON). */
export const sqliteValue: fc.Arbitrary<SqliteValue> = fc.oneof(
  fc.constant(null),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.integer({ min: -3, max: 3 }).map(BigInt),
  fc.double(),
  fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 1e308, 2.5),
  fc.string({ maxLength: 8 }),
  fc.constantFrom('t1', 'u1', 'a', '', 'admin', '1', 'x'),
  fc.constantFrom(
    '["t1","u1",1,null,2.5]',
    '[]',
    '{"team":"t1","teams":["t1","t2"],"a":{"b":[1,2]}}',
    '[1,',
    '{"a":',
    '[[[[1]]]]',
    '{"a":1,"a":2}',
    '12345678901234567890',
    '2025-08-19 09:21:00',
    '2025-08-19T09:21:00.123+02:00',
    WKB_POINT,
    '\ud800',
  ),
  fc.uint8Array({ maxLength: 16 }),
);

/** A source row over {@link ROW_KEYS}. */
export const sourceRow: fc.Arbitrary<SqliteRow> = fc.dictionary(fc.constantFrom(...ROW_KEYS), sqliteValue, {
  maxKeys: ROW_KEYS.length,
});

/** JSON values for token claims and client parameters. */
const jsonLike: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('t1', 'u1', 'admin', '', 1, 2.5, true, null, ['t1', 't2'], [1, null], { team: 't1' }),
  fc.jsonValue({ maxDepth: 2 }),
);

/** Connections: claims, client parameters, and subscriptions to the given streams (and unknown ones). */
export function connectionRequest(streamNames: readonly string[]): fc.Arbitrary<ConnectionRequest> {
  const keys = fc.constantFrom('sub', 'team', 'teams', 'role', 'ids', 'list', 'parameters', 'x');
  const record = fc.dictionary(keys, jsonLike, { maxKeys: 5 });
  const subscription = fc.record(
    {
      stream: fc.constantFrom(...streamNames, 'unknown'),
      parameters: fc.option(record, { nil: null }),
      override_priority: fc.option(fc.constantFrom(0, 1, 3, -1, 7, 1.5), { nil: null }),
    },
    { requiredKeys: ['stream', 'parameters'] },
  );
  return fc.record(
    {
      claims: fc
        .tuple(record, fc.option(record, { nil: undefined }))
        .map(([claims, parameters]) => (parameters ? { ...claims, parameters } : claims)),
      parameters: record,
      streams: fc.record({
        include_defaults: fc.boolean(),
        subscriptions: fc.array(subscription, { maxLength: 3 }),
      }),
    },
    { requiredKeys: ['claims', 'parameters'] },
  );
}

/** The source tables a model's queries read, plus one nobody reads; wildcards get a suffix. */
export function sourceTables(model: SyncConfigModel, defaultSchema: string, suffix: string): SourceTableRef[] {
  const seen = new Map<string, SourceTableRef>();
  for (const t of model.tables) {
    const ref = { schema: t.schema ?? defaultSchema, name: t.wildcard ? t.name + suffix : t.name };
    seen.set(`${ref.schema}.${ref.name}`, ref);
  }
  seen.set('unread', { schema: defaultSchema, name: 'unread_table' });
  return [...seen.values()];
}
