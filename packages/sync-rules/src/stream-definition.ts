/**
 * Streams: one query whose WHERE clause both filters rows and defines the bucket parameters.
 * Each `column = <request value>`, `column IN <request array>`, `&&` or `IN (SELECT ...)` match
 * becomes a parameter slot; ORs over matches split the query into variants (`<stream>|<n>`).
 */
import type { SelectFromStatement } from 'pgsql-ast-parser';
import { bucketIdPrefix } from './bucket-id.js';
import {
  compileBinder,
  compileProjection,
  compileSelectList,
  DataQuery,
  REQUEST_IN_DATA_QUERY,
  type RowBinding,
} from './data-query.js';
import { compileParameterQuery, TableParameterQuery, type RequestUse } from './parameter-query.js';
import type { RequestContext } from './request-context.js';
import { ExpressionCompiler, exprUses, fail, nodeText, type Evaluator, type SqlText } from './sql-expression.js';
import { parseSelect, requestScope, resolveFrom, rowScope } from './sql-statement.js';
import type { SqliteRow } from './sqlite-value.js';
import { whereAlternatives } from './where-clause.js';

/** One source of a bucket parameter's values at connection time. */
export type StreamSlotSource =
  | { kind: 'request'; evaluate: Evaluator<RequestContext>; array: boolean }
  | { kind: 'subquery'; query: TableParameterQuery };

/**
 * A bucket parameter of a stream variant. Several matches on the same column
 * (`list_id = subscription.parameter('list') AND list_id IN (SELECT ...)`) share one slot
 * whose values are the intersection of its sources, so the bucket id holds the value once.
 */
export interface StreamSlot {
  readonly sources: StreamSlotSource[];
}

/** One alternative of a stream query (`<stream>|<index>`). */
export interface StreamVariant {
  readonly index: number;
  readonly dataQuery: DataQuery;
  readonly requestFilters: readonly Evaluator<RequestContext>[];
  readonly slots: readonly StreamSlot[];
}

/** A compiled stream. */
export class StreamDefinition {
  readonly kind = 'stream';

  constructor(
    readonly name: string,
    /** Default 3; a subscription's override_priority wins. */
    readonly priority: number,
    /** Synced without an explicit subscription (unless the client sends include_defaults: false). */
    readonly autoSubscribe: boolean,
    readonly variants: readonly StreamVariant[],
    /** The `IN (SELECT ...)` subqueries, served through the parameter index. */
    readonly subqueries: readonly TableParameterQuery[],
    readonly requestUse: RequestUse,
  ) {}
}

/** Options of {@link compileStream}. */
export interface StreamOptions {
  sql: SqlText;
  name: string;
  priority: number;
  autoSubscribe: boolean;
  defaultSchema: string;
  configId: string | undefined;
}

const JOIN_IN_STREAM =
  'Joins are not supported in stream queries (editions 1-2): select from one table and relate others with column IN (SELECT ...).';

/** Compiles a stream query. */
export function compileStream(options: StreamOptions): StreamDefinition {
  const { sql, name } = options;
  const select = parseSelect(sql);
  const from = resolveFrom(sql, select, options.defaultSchema, JOIN_IN_STREAM);
  if (from.kind === 'none') fail(sql, select, 'A stream query needs a table: SELECT ... FROM <table> WHERE ....');
  if (from.kind === 'json_each') fail(sql, from.call, 'json_each() cannot be the table of a stream query.');
  const table = from.table;
  const projection = compileProjection(compileSelectList(sql, select, table, true));
  const rowCompiler = new ExpressionCompiler(sql, rowScope(sql, table, REQUEST_IN_DATA_QUERY));
  const requestCompiler = new ExpressionCompiler(sql, requestScope(sql, 'This side must be a request value'));
  const alternatives = whereAlternatives(sql, select.where ?? undefined, {
    bucket: false,
    request: true,
    subquery: true,
  });
  const subqueries = new Map<SelectFromStatement, TableParameterQuery>();
  const use: RequestUse = { authenticated: false, unauthenticated: false };
  const noteUse = (node: Parameters<typeof exprUses>[1]): void => {
    const u = exprUses(sql, node);
    use.authenticated ||= u.auth;
    use.unauthenticated ||= u.unauth;
  };
  const usesSuffix = table.pattern.isWildcard && sql.source.text.includes('_table_suffix');
  const variants = alternatives.map((terms, index): StreamVariant => {
    const filters: Evaluator<SqliteRow>[] = [];
    const requestFilters: Evaluator<RequestContext>[] = [];
    const bindings: RowBinding[] = [];
    const slots: StreamSlot[] = [];
    const slotByColumn = new Map<string, StreamSlot>();
    for (const term of terms) {
      if (term.kind === 'row-filter') {
        filters.push(rowCompiler.compile(term.node));
      } else if (term.kind === 'request-filter') {
        requestFilters.push(requestCompiler.compile(term.node));
        noteUse(term.node);
      } else {
        const columnKey = `${term.rowArray}:${nodeText(sql, term.row)}`;
        let slot = slotByColumn.get(columnKey);
        if (!slot) {
          slot = { sources: [] };
          slotByColumn.set(columnKey, slot);
          bindings.push({ slot: slots.length, evaluate: rowCompiler.compile(term.row), array: term.rowArray });
          slots.push(slot);
        }
        const target = term.target;
        if (target.kind === 'request') {
          slot.sources.push({ kind: 'request', evaluate: requestCompiler.compile(target.expr), array: target.array });
          noteUse(target.expr);
        } else if (target.kind === 'subquery') {
          let query = subqueries.get(target.select);
          if (!query) {
            const compiled = compileParameterQuery({
              sql,
              select: target.select,
              definition: name,
              queryId: String(subqueries.size),
              defaultSchema: options.defaultSchema,
              allowPriority: false,
              subquery: true,
            });
            if (!(compiled instanceof TableParameterQuery)) fail(sql, target.select, 'A subquery must read a table.');
            query = compiled;
            subqueries.set(target.select, query);
            use.authenticated ||= query.requestUse.authenticated;
            use.unauthenticated ||= query.requestUse.unauthenticated;
          }
          slot.sources.push({ kind: 'subquery', query });
        }
      }
    }
    const prefix = bucketIdPrefix({ configId: options.configId, definition: name, variant: index });
    const dataQuery = new DataQuery(
      name,
      table.pattern,
      table.alias,
      prefix,
      compileBinder([{ filters, bindings }], slots.length),
      projection,
      usesSuffix,
    );
    return { index, dataQuery, requestFilters, slots };
  });
  return new StreamDefinition(name, options.priority, options.autoSubscribe, variants, [...subqueries.values()], use);
}
