/**
 * Parameter queries decide which buckets a connection gets. Table-backed ones are split in two
 * halves: a row half (source row -> parameter-index entries keyed by the matched row values)
 * and a request half (connection -> the lookups to read); static and json_each ones run on the request alone.
 */
import type { Expr, SelectFromStatement } from 'pgsql-ast-parser';
import { jsonArgument } from './sql-functions.js';
import { jsonValueToSqlite } from './json-text.js';
import type { EvaluatedParameters, ParameterLookup } from './parameter-lookup.js';
import type { RequestContext } from './request-context.js';
import {
  ExpressionCompiler,
  exprUses,
  fail,
  jsonArrayElements,
  nodeText,
  type Evaluator,
  type Scope,
  type SqlText,
} from './sql-expression.js';
import {
  checkSelectShape,
  columnName,
  jsonEachScope,
  requestScope,
  resolveFrom,
  rowScope,
  type JsonEachInput,
  type QueryTable,
} from './sql-statement.js';
import { isTruthy, valueKey, type SqliteRow, type SqliteValue } from './sqlite-value.js';
import type { TablePattern } from './table-pattern.js';
import { whereAlternatives } from './where-clause.js';

/** One `=` / `IN` match between a row value and a request value: a part of the lookup key. */
interface LookupKey {
  readonly row: Evaluator<SqliteRow>;
  readonly rowArray: boolean;
  readonly request: Evaluator<RequestContext>;
  readonly requestArray: boolean;
}

/** An output column of a parameter query. */
interface OutputColumn<I> {
  readonly name: string;
  readonly evaluate: Evaluator<I>;
}

/** What the request side of a query reads, for the potentially-dangerous-query warning. */
export interface RequestUse {
  authenticated: boolean;
  unauthenticated: boolean;
}

function bindable(value: SqliteValue): boolean {
  return value !== null && !(value instanceof Uint8Array);
}

/** Values of one side of a match: a single value, or the distinct elements of a JSON array. */
function matchValues(value: SqliteValue, array: boolean): SqliteValue[] {
  if (!array) return bindable(value) ? [value] : [];
  const out: SqliteValue[] = [];
  const seen = new Set<string>(); // a set, not a scan: a row's array may hold many elements
  for (const e of jsonArrayElements(value) ?? []) {
    if (!bindable(e)) continue;
    const key = valueKey(e);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(e);
  }
  return out;
}

function crossProduct(lists: SqliteValue[][]): SqliteValue[][] {
  let out: SqliteValue[][] = [[]];
  for (const list of lists) {
    const next: SqliteValue[][] = [];
    for (const prefix of out) for (const v of list) next.push([...prefix, v]);
    out = next;
    if (out.length === 0) break;
  }
  return out;
}

/** A parameter query over a source table, served through the parameter index. */
export class TableParameterQuery {
  readonly kind = 'table';

  constructor(
    readonly definition: string,
    readonly queryId: string,
    readonly table: TablePattern,
    readonly outputNames: readonly string[],
    /** `_priority` output, when set. */
    readonly priority: number | undefined,
    private readonly outputs: readonly OutputColumn<SqliteRow>[],
    private readonly rowFilters: readonly Evaluator<SqliteRow>[],
    private readonly requestFilters: readonly Evaluator<RequestContext>[],
    private readonly keys: readonly LookupKey[],
    private readonly usesSuffix: boolean,
    readonly requestUse: RequestUse,
  ) {}

  /** Parameter-index entries for a source row; throws for rows it cannot evaluate. */
  evaluateRow(row: SqliteRow, suffix: string): EvaluatedParameters[] {
    const input = this.usesSuffix ? { ...row, _table_suffix: suffix } : row;
    for (const filter of this.rowFilters) if (!isTruthy(filter(input))) return [];
    const lists = this.keys.map((key) => matchValues(key.row(input), key.rowArray));
    const combinations = crossProduct(lists);
    if (combinations.length === 0) return [];
    const output: SqliteRow = {};
    for (const column of this.outputs) {
      const value = column.evaluate(input);
      output[column.name] = value instanceof Uint8Array ? null : value;
    }
    return combinations.map((values) => ({
      lookup: { definition: this.definition, queryId: this.queryId, values },
      outputs: [output],
    }));
  }

  /** The lookups a connection must read; may throw MissingParameterError. */
  lookups(request: RequestContext): ParameterLookup[] {
    for (const filter of this.requestFilters) if (!isTruthy(filter(request))) return [];
    const lists = this.keys.map((key) => matchValues(key.request(request), key.requestArray));
    return crossProduct(lists).map((values) => ({ definition: this.definition, queryId: this.queryId, values }));
  }
}

/** A parameter query without a table (request values only) or over `json_each(<request value>)`. */
export class StaticParameterQuery {
  readonly kind = 'static';

  constructor(
    readonly definition: string,
    readonly queryId: string,
    readonly outputNames: readonly string[],
    readonly priority: number | undefined,
    private readonly outputs: readonly OutputColumn<JsonEachInput>[],
    private readonly filter: Evaluator<JsonEachInput> | undefined,
    private readonly source: Evaluator<RequestContext> | undefined,
    readonly requestUse: RequestUse,
  ) {}

  /** Bucket parameter rows for a connection; may throw MissingParameterError. */
  evaluate(request: RequestContext): SqliteRow[] {
    let elements: SqliteRow[];
    if (this.source) {
      const doc = jsonArgument(this.source(request));
      if (!Array.isArray(doc)) return [];
      elements = doc.map((v, i) => ({ key: BigInt(i), value: jsonValueToSqlite(v) }));
    } else {
      elements = [{}];
    }
    const rows: SqliteRow[] = [];
    for (const element of elements) {
      const input: JsonEachInput = { element, request };
      if (this.filter && !isTruthy(this.filter(input))) continue;
      const row: SqliteRow = {};
      for (const column of this.outputs) row[column.name] = column.evaluate(input);
      rows.push(row);
    }
    return rows;
  }
}

export type ParameterQuery = TableParameterQuery | StaticParameterQuery;

/** Options of {@link compileParameterQuery}. */
export interface ParameterQueryOptions {
  sql: SqlText;
  select: SelectFromStatement;
  definition: string;
  queryId: string;
  defaultSchema: string;
  /** Whether `_priority` may be selected (bucket_definitions only). */
  allowPriority: boolean;
  /** Stream subqueries must read a table and output one column. */
  subquery?: boolean;
}

/** The `_priority` literal of a parameter query. */
function priorityLiteral(sql: SqlText, expr: Expr): number {
  if (expr.type !== 'integer' || expr.value < 0 || expr.value > 3) {
    fail(sql, expr, '_priority must be an integer literal from 0 (highest) to 3 (lowest): SELECT 1 AS _priority.');
  }
  return expr.value;
}

function requestUseOf(sql: SqlText, nodes: readonly Expr[]): RequestUse {
  const use: RequestUse = { authenticated: false, unauthenticated: false };
  for (const node of nodes) {
    const u = exprUses(sql, node);
    use.authenticated ||= u.auth;
    use.unauthenticated ||= u.unauth;
  }
  return use;
}

const OUTPUT_REQUEST =
  'Parameter query outputs must be columns of the queried table here: match request values in WHERE instead (column = request.user_id()).';
const JOIN_IN_PARAMETER_QUERY =
  'Joins are not supported in parameter queries: select from one table (use several parameter queries for several tables).';

/** Compiles one parameter query (or a stream's `IN (SELECT ...)` subquery). */
export function compileParameterQuery(options: ParameterQueryOptions): ParameterQuery {
  const { sql, select, definition, queryId } = options;
  checkSelectShape(sql, select);
  const from = resolveFrom(sql, select, options.defaultSchema, JOIN_IN_PARAMETER_QUERY);
  const columns = select.columns ?? [];
  let priority: number | undefined;
  const outputColumns: { name: string; expr: Expr }[] = [];
  const outputSeen = new Set<string>();
  for (const column of columns) {
    if (column.expr.type === 'ref' && column.expr.name === '*') {
      fail(sql, column.expr, 'Parameter queries must name their output columns: SELECT column AS name, not *.');
    }
    const name = columnName(sql, column.expr, column.alias?.name);
    if (name === '_priority') {
      if (!options.allowPriority)
        fail(sql, column.expr, '_priority can only be set in parameter queries of bucket_definitions.');
      priority = priorityLiteral(sql, column.expr);
      continue;
    }
    if (outputSeen.has(name)) fail(sql, column.expr, `Duplicate output column "${name}".`);
    outputSeen.add(name);
    outputColumns.push({ name, expr: column.expr });
  }
  const outputNames = outputColumns.map((c) => c.name);
  if (options.subquery) {
    if (from.kind !== 'table')
      fail(sql, select, 'A subquery must read a table: x IN (SELECT column FROM table WHERE ...).');
    if (outputColumns.length !== 1 || priority !== undefined) {
      fail(sql, select, `A subquery must select exactly one column, found ${columns.length}.`);
    }
  }

  if (from.kind === 'table') {
    return compileTableQuery(options, from.table, outputColumns, priority);
  }

  const request = requestScope(sql, 'A parameter query without FROM can only use request values');
  const source =
    from.kind === 'json_each' ? new ExpressionCompiler(sql, request).compile(from.call.args[0]!) : undefined;
  const scope: Scope<JsonEachInput> =
    from.kind === 'json_each'
      ? jsonEachScope(sql, from.alias)
      : {
          column: (_name, node) =>
            fail(
              sql,
              node,
              `A parameter query without FROM can only use request values (found "${nodeText(sql, node)}").`,
            ),
          request: (ref) => (input) => input.request.read(ref),
        };
  const compiler = new ExpressionCompiler(sql, scope);
  if (select.where && exprUses(sql, select.where).subquery) {
    fail(
      sql,
      select.where,
      'Subqueries are only supported as x IN (SELECT column FROM table WHERE ...) in stream queries.',
    );
  }
  const outputs = outputColumns.map((c) => ({ name: c.name, evaluate: compiler.compile(c.expr) }));
  const filter = select.where ? compiler.compile(select.where) : undefined;
  const requestNodes = [...outputColumns.map((c) => c.expr), ...(select.where ? [select.where] : [])];
  if (from.kind === 'json_each') requestNodes.push(from.call.args[0]!);
  return new StaticParameterQuery(
    definition,
    queryId,
    outputNames,
    priority,
    outputs,
    filter,
    source,
    requestUseOf(sql, requestNodes),
  );
}

function compileTableQuery(
  options: ParameterQueryOptions,
  table: QueryTable,
  outputColumns: { name: string; expr: Expr }[],
  priority: number | undefined,
): TableParameterQuery {
  const { sql, select } = options;
  const rowCompiler = new ExpressionCompiler(sql, rowScope(sql, table, OUTPUT_REQUEST));
  const requestCompiler = new ExpressionCompiler(
    sql,
    requestScope(sql, 'This side of the comparison must be a request value'),
  );
  const outputs = outputColumns.map((c) => ({ name: c.name, evaluate: rowCompiler.compile(c.expr) }));
  const alternatives = whereAlternatives(sql, select.where ?? undefined, {
    bucket: false,
    request: true,
    subquery: false,
  });
  if (alternatives.length > 1) {
    fail(
      sql,
      select.where ?? undefined,
      'OR cannot combine matches on request values in a parameter query: write one parameter query per alternative.',
    );
  }
  const rowFilters: Evaluator<SqliteRow>[] = [];
  const requestFilters: Evaluator<RequestContext>[] = [];
  const keys: LookupKey[] = [];
  const requestNodes: Expr[] = [];
  for (const term of alternatives[0]!) {
    if (term.kind === 'row-filter') rowFilters.push(rowCompiler.compile(term.node));
    else if (term.kind === 'request-filter') {
      requestFilters.push(requestCompiler.compile(term.node));
      requestNodes.push(term.node);
    } else if (term.target.kind === 'request') {
      keys.push({
        row: rowCompiler.compile(term.row),
        rowArray: term.rowArray,
        request: requestCompiler.compile(term.target.expr),
        requestArray: term.target.array,
      });
      requestNodes.push(term.target.expr);
    }
  }
  return new TableParameterQuery(
    options.definition,
    options.queryId,
    table.pattern,
    outputColumns.map((c) => c.name),
    priority,
    outputs,
    rowFilters,
    requestFilters,
    keys,
    table.pattern.isWildcard && sql.source.text.includes('_table_suffix'),
    requestUseOf(sql, requestNodes),
  );
}
