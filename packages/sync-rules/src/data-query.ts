/**
 * Data queries: a source row -> (bucket, output table, row id, data) tuples. The WHERE clause
 * becomes a binder producing bucket parameter tuples, the column list a projection; both are
 * closures built once, so a row costs a few function calls and one output object.
 */
import type { Expr, SelectFromStatement } from 'pgsql-ast-parser';
import { bucketParametersJson } from './bucket-id.js';
import { CompileError } from './diagnostic.js';
import {
  ExpressionCompiler,
  fail,
  jsonArrayElements,
  nodeText,
  type Evaluator,
  type SqlText,
} from './sql-expression.js';
import { parseSelect, resolveFrom, rowScope, columnName, type QueryTable } from './sql-statement.js';
import { castToText, isTruthy, sameValue, valueKey, type SqliteRow, type SqliteValue } from './sqlite-value.js';
import type { SourceTableRef, TablePattern } from './table-pattern.js';
import { whereAlternatives } from './where-clause.js';

/** A row placed in a bucket. `data` may be shared between tuples of one row: treat it as read-only. */
export interface EvaluatedRow {
  bucket: string;
  /** Output table: the query's alias, else the source table name. */
  table: string;
  /** The `id` output column as text. */
  id: string;
  /** Output columns; BLOB values are removed. */
  data: SqliteRow;
}

/** A row that could not be evaluated; the row is skipped and the message logged. */
export interface EvaluationError {
  /** Names the table, row id and definition. */
  error: string;
}

export type EvaluatedRowOrError = EvaluatedRow | EvaluationError;

/** One value source of a bucket parameter slot, evaluated on the row. */
export interface RowBinding {
  readonly slot: number;
  readonly evaluate: Evaluator<SqliteRow>;
  /** The row value is a JSON array; each element binds. */
  readonly array: boolean;
}

/** One alternative (after splitting ORs): filters plus bindings. */
export interface RowAlternative {
  readonly filters: Evaluator<SqliteRow>[];
  readonly bindings: RowBinding[];
}

const NO_TUPLES: SqliteValue[][] = [];

function bindable(value: SqliteValue): boolean {
  return value !== null && !(value instanceof Uint8Array);
}

/** Values one binding contributes: NULL and BLOB never bind; arrays bind each distinct element. */
function bindingValues(binding: RowBinding, row: SqliteRow): SqliteValue[] {
  const value = binding.evaluate(row);
  if (!binding.array) return bindable(value) ? [value] : [];
  const elements = jsonArrayElements(value) ?? [];
  const seen = new Set<string>();
  const out: SqliteValue[] = [];
  for (const e of elements) {
    if (!bindable(e)) continue;
    const key = valueKey(e); // a set, not a scan: a row's array may hold many elements
    if (!seen.has(key)) {
      seen.add(key);
      out.push(e);
    }
  }
  return out;
}

function evaluateAlternative(alternative: RowAlternative, slotCount: number, row: SqliteRow): SqliteValue[][] {
  for (const filter of alternative.filters) if (!isTruthy(filter(row))) return NO_TUPLES;
  let tuples: (SqliteValue | undefined)[][] = [new Array<SqliteValue | undefined>(slotCount)];
  for (const binding of alternative.bindings) {
    const values = bindingValues(binding, row);
    const next: (SqliteValue | undefined)[][] = [];
    for (const tuple of tuples) {
      const current = tuple[binding.slot];
      for (const value of values) {
        if (current === undefined) {
          const copy = tuple.slice();
          copy[binding.slot] = value;
          next.push(copy);
        } else if (sameValue(current, value)) {
          next.push(tuple);
        }
      }
    }
    tuples = next;
    if (tuples.length === 0) return NO_TUPLES;
  }
  return tuples as SqliteValue[][];
}

/**
 * Compiles alternatives into `row -> bucket parameter tuples`. The common shapes (one
 * alternative of plain `=` bindings) get a specialised closure without intermediate arrays.
 */
export function compileBinder(alternatives: RowAlternative[], slotCount: number): (row: SqliteRow) => SqliteValue[][] {
  if (alternatives.length === 1) {
    const { filters, bindings } = alternatives[0]!;
    const simple = bindings.every((b) => !b.array) && new Set(bindings.map((b) => b.slot)).size === bindings.length;
    if (simple && bindings.length === 0) {
      if (filters.length === 0) return () => [[]];
      return (row) => {
        for (const filter of filters) if (!isTruthy(filter(row))) return NO_TUPLES;
        return [[]];
      };
    }
    if (simple && bindings.length === 1 && filters.length === 0) {
      const evaluate = bindings[0]!.evaluate;
      return (row) => {
        const value = evaluate(row);
        return value === null || value instanceof Uint8Array ? NO_TUPLES : [[value]];
      };
    }
    if (simple) {
      return (row) => {
        for (const filter of filters) if (!isTruthy(filter(row))) return NO_TUPLES;
        const tuple = new Array<SqliteValue>(slotCount);
        for (const binding of bindings) {
          const value = binding.evaluate(row);
          if (value === null || value instanceof Uint8Array) return NO_TUPLES;
          tuple[binding.slot] = value;
        }
        return [tuple];
      };
    }
  }
  return (row) => {
    if (alternatives.length === 1) return evaluateAlternative(alternatives[0]!, slotCount, row);
    const out: SqliteValue[][] = [];
    for (const alternative of alternatives) out.push(...evaluateAlternative(alternative, slotCount, row));
    return out;
  };
}

/** One part of a SELECT list. */
export type ProjectionPart = { kind: 'star' } | { kind: 'column'; name: string; evaluate: Evaluator<SqliteRow> };

/** Compiles a SELECT list into `row -> output row`: `*` skips `_` columns, BLOBs are dropped everywhere. */
export function compileProjection(parts: ProjectionPart[]): (row: SqliteRow) => SqliteRow {
  if (parts.length === 1 && parts[0]!.kind === 'star') {
    return (row) => {
      const out: SqliteRow = {};
      for (const key in row) {
        if (key.charCodeAt(0) === 95) continue; // '_': internal columns are not synced (editions 1-2)
        const value = row[key];
        if (value === undefined || value instanceof Uint8Array) continue;
        out[key] = value;
      }
      return out;
    };
  }
  return (row) => {
    const out: SqliteRow = {};
    for (const part of parts) {
      if (part.kind === 'star') {
        for (const key in row) {
          const value = row[key];
          if (key.charCodeAt(0) === 95 || value === undefined || value instanceof Uint8Array) continue;
          out[key] = value;
        }
      } else {
        const value = part.evaluate(row);
        if (value instanceof Uint8Array) delete out[part.name];
        else out[part.name] = value;
      }
    }
    return out;
  };
}

/** Compiles the SELECT list of a data or stream query; checks that an `id` is selected. */
export function compileSelectList(
  sql: SqlText,
  select: SelectFromStatement,
  table: QueryTable,
  requireId: boolean,
): ProjectionPart[] {
  const compiler = new ExpressionCompiler(sql, rowScope(sql, table, REQUEST_IN_DATA_QUERY));
  const parts: ProjectionPart[] = [];
  const columns = select.columns ?? [];
  for (const column of columns) {
    const expr = column.expr;
    if (expr.type === 'ref' && expr.name === '*') {
      if (expr.table && !table.qualifiers.has(expr.table.name)) {
        fail(
          sql,
          expr,
          `Unknown table "${expr.table.name}" in ${nodeText(sql, expr)}: this query reads only from ${[...table.qualifiers].join(', ')}.`,
        );
      }
      parts.push({ kind: 'star' });
      continue;
    }
    parts.push({ kind: 'column', name: columnName(sql, expr, column.alias?.name), evaluate: compiler.compile(expr) });
  }
  if (requireId && !parts.some((p) => p.kind === 'star' || p.name === 'id')) {
    const first = columns[0]?.expr;
    const last = columns[columns.length - 1]?.expr;
    const range =
      first?._location && last?._location
        ? sql.source.sourceRange(first._location.start, last._location.end)
        : sql.source.range;
    throw new CompileError(
      'Data queries must select an id column: add id (or an expression AS id) to the selected columns.',
      range,
    );
  }
  return parts;
}

/** Message for request values used in data queries. */
export const REQUEST_IN_DATA_QUERY =
  'Request values cannot be used in data queries: add a parameter query and filter on bucket.<name> instead.';

/** A compiled data query (bucket_definitions data, stream queries, event payloads). */
export class DataQuery {
  constructor(
    /** Bucket definition or stream name, for error messages. */
    readonly definition: string,
    readonly table: TablePattern,
    /** Alias of the table: the output table name when set. */
    readonly outputTable: string | undefined,
    /** Bucket id prefix including versioning and stream variant: `v2#lists|0`. */
    readonly bucketPrefix: string,
    private readonly bind: (row: SqliteRow) => SqliteValue[][],
    private readonly project: (row: SqliteRow) => SqliteRow,
    /** The query reads `_table_suffix`, so rows of wildcard tables get it added. */
    private readonly usesSuffix: boolean,
  ) {}

  /** Appends this query's tuples for a row; throws for rows it cannot evaluate (the caller reports them). */
  evaluate(source: SourceTableRef, row: SqliteRow, suffix: string, out: EvaluatedRowOrError[]): void {
    const input = this.usesSuffix ? { ...row, _table_suffix: suffix } : row;
    const tuples = this.bind(input);
    if (tuples.length === 0) return;
    const data = this.project(input);
    const idValue = data.id;
    if (idValue === undefined || idValue === null) {
      throw new Error('the query output has no id (select an id column, or name an expression AS id)');
    }
    const id = typeof idValue === 'string' ? idValue : castToText(idValue)!;
    const table = this.outputTable ?? source.name;
    if (tuples.length === 1) {
      out.push({ bucket: this.bucketPrefix + bucketParametersJson(tuples[0]!), table, id, data });
      return;
    }
    const seen = new Set<string>();
    for (const tuple of tuples) {
      const bucket = this.bucketPrefix + bucketParametersJson(tuple);
      if (seen.has(bucket)) continue;
      seen.add(bucket);
      out.push({ bucket, table, id, data });
    }
  }

  /** Output rows of an event payload query (no buckets): the projection when the filters pass. */
  payload(row: SqliteRow, suffix: string): SqliteRow | undefined {
    const input = this.usesSuffix ? { ...row, _table_suffix: suffix } : row;
    return this.bind(input).length > 0 ? this.project(input) : undefined;
  }
}

/** Options of {@link compileDataQuery}. */
export interface DataQueryOptions {
  sql: SqlText;
  definition: string;
  /** Bucket parameter names of the definition, in bucket id order. */
  parameterNames: readonly string[];
  defaultSchema: string;
  bucketPrefix: string;
  /** Event payloads need no id. */
  requireId?: boolean;
}

/** Compiles a bucket_definitions data query (or an event payload). */
export function compileDataQuery(options: DataQueryOptions): DataQuery {
  const { sql, definition, parameterNames } = options;
  const select = parseSelect(sql);
  const from = resolveFrom(sql, select, options.defaultSchema, JOIN_IN_DATA_QUERY);
  if (from.kind === 'none') fail(sql, select, 'A data query needs a table: SELECT ... FROM <table> WHERE ....');
  if (from.kind === 'json_each') fail(sql, from.call, 'json_each() can only be used in parameter queries.');
  const table = from.table;
  const parts = compileSelectList(sql, select, table, options.requireId ?? true);
  const compiler = new ExpressionCompiler(sql, rowScope(sql, table, REQUEST_IN_DATA_QUERY));
  const where = select.where;
  const alternatives = whereAlternatives(sql, where ?? undefined, { bucket: true, request: false, subquery: false });
  const compiled: RowAlternative[] = alternatives.map((terms) => {
    const filters: Evaluator<SqliteRow>[] = [];
    const bindings: RowBinding[] = [];
    for (const term of terms) {
      if (term.kind === 'row-filter') filters.push(compiler.compile(term.node));
      else if (term.kind === 'bind' && term.target.kind === 'bucket') {
        const slot = parameterNames.indexOf(term.target.name);
        if (slot < 0) {
          const known =
            parameterNames.length === 0
              ? `"${definition}" has no bucket parameters`
              : `"${definition}" has parameters ${parameterNames.join(', ')}`;
          fail(sql, term.target.node, `Unknown bucket parameter bucket.${term.target.name}: ${known}.`);
        }
        bindings.push({ slot, evaluate: compiler.compile(term.row), array: term.rowArray });
      }
    }
    return { filters, bindings };
  });
  alternatives.forEach((terms, i) => {
    const bound = new Set(compiled[i]!.bindings.map((b) => b.slot));
    const missing = parameterNames.filter((_, slot) => !bound.has(slot));
    if (missing.length === 0) return;
    const names = missing.map((m) => `bucket.${m}`).join(', ');
    const node: Expr | SelectFromStatement = where ?? select;
    if (alternatives.length > 1) {
      fail(sql, node, `Every side of OR must match the same bucket parameters: one side does not use ${names}.`);
    }
    fail(
      sql,
      node,
      `This data query does not use ${names}: every data query of "${definition}" must filter on each bucket parameter (column = bucket.<name>).`,
    );
  });
  return new DataQuery(
    definition,
    table.pattern,
    table.alias,
    options.bucketPrefix,
    compileBinder(compiled, parameterNames.length),
    compileProjection(parts),
    table.pattern.isWildcard && sql.source.text.includes('_table_suffix'),
  );
}

/** Message for joins in data queries. */
export const JOIN_IN_DATA_QUERY =
  'Joins are not supported in data queries: select from one table, and relate tables with parameter queries (bucket_definitions) or IN (SELECT ...) subqueries (streams).';
