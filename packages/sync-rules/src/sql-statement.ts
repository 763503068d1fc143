/**
 * Parses one SQL text of a sync config with pgsql-ast-parser and enforces the supported subset
 * (a single SELECT without DISTINCT, GROUP BY, HAVING, ORDER BY, LIMIT, OFFSET); resolves its
 * FROM clause and provides the scopes expressions are compiled in.
 */
import { createRequire } from 'node:module';
import {
  parse,
  type Expr,
  type ExprCall,
  type PGNode,
  type ExprRef,
  type SelectFromStatement,
  type Statement,
} from 'pgsql-ast-parser';
import { CompileError } from './diagnostic.js';
import { MAX_NESTING_DEPTH, nestingLimitMessage } from './nesting-limit.js';
import type { RequestContext } from './request-context.js';
import { fail, nodeText, type Evaluator, type Scope, type SqlText } from './sql-expression.js';
import type { SqliteRow } from './sqlite-value.js';
import { tablePattern, type TablePattern } from './table-pattern.js';

/**
 * pgsql-ast-parser parses with nearley, which on a syntax error builds a derivation for every token
 * it expected: seconds, growing fast, for short queries with nested prefix operators, e.g. 43 s for
 * `x = (-(-(-...)` 100 levels deep. syntaxError() reads only the failing token, so that report is
 * replaced by the lexer's one-line message (which keeps "at line L col C"). The nearley instance is
 * the one pgsql-ast-parser loads, and nothing else in the service uses it.
 */
function skipNearleyErrorReport(): void {
  const fromParser = createRequire(createRequire(import.meta.url).resolve('pgsql-ast-parser'));
  const nearley = fromParser('nearley') as {
    Parser: { prototype: { reportErrorCommon: (message: string) => string } };
  };
  nearley.Parser.prototype.reportErrorCommon = (lexerMessage) => lexerMessage;
}
skipNearleyErrorReport();

/** Finds a keyword's offset in SQL text, for clauses the parser gives no location for. */
function keywordRange(sql: SqlText, pattern: RegExp): { start: number; end: number } | undefined {
  const match = pattern.exec(sql.source.text);
  return match ? { start: match.index, end: match.index + match[0].length } : undefined;
}

function failAtKeyword(sql: SqlText, pattern: RegExp, message: string): never {
  const range = keywordRange(sql, pattern);
  throw new CompileError(message, range ? sql.source.sourceRange(range.start, range.end) : sql.source.range);
}

/** Translates a parser error into a CompileError at the offending token. */
function syntaxError(sql: SqlText, error: unknown): CompileError {
  const e = error as { token?: { offset?: number; text?: string }; message?: string };
  const message = String(e.message ?? error);
  let offset = e.token?.offset;
  if (offset === undefined) {
    const match = /at line (\d+) col (\d+)/.exec(message);
    if (match) {
      const lines = sql.source.text.split('\n');
      offset = lines.slice(0, Number(match[1]) - 1).reduce((sum, l) => sum + l.length + 1, 0) + Number(match[2]) - 1;
    }
  }
  if (offset === undefined && /end of input/i.test(message)) offset = sql.source.text.trimEnd().length;
  offset ??= 0;
  const token = e.token?.text;
  const what =
    token !== undefined
      ? `unexpected "${token}"`
      : offset >= sql.source.text.trimEnd().length
        ? 'the query ends too early'
        : `unexpected character "${sql.source.text[offset]}"`;
  const length = sql.source.text.length;
  const start = Math.min(offset, Math.max(0, length - 1));
  const end = Math.min(Math.max(offset + (token?.length ?? 1), start + 1), length);
  return new CompileError(
    `SQL syntax error: ${what}. Check the query against the supported SQL in docs/sync-config.md.`,
    sql.source.sourceRange(start, end),
  );
}

const NESTING_FIX =
  'simplify the expression, e.g. use x IN (a, b, c) instead of a long OR chain, split it into several queries, or compute the value in the source database.';

/** Length of the quoted text or comment starting at `at`, or 0 when none starts there. */
function skippedLength(text: string, at: number): number {
  const c = text[at];
  const next = text[at + 1];
  if (c === '-' && next === '-') {
    const end = text.indexOf('\n', at);
    return (end < 0 ? text.length : end) - at;
  }
  if (c === '/' && next === '*') {
    const end = text.indexOf('*/', at + 2);
    return (end < 0 ? text.length : end + 2) - at;
  }
  if (c === "'" || c === '"') {
    // E'...' strings escape with backslashes; all strings double the quote ('it''s').
    const backslashes = c === "'" && /[eE]/.test(text[at - 1] ?? '') && !/[\w$]/.test(text[at - 2] ?? '');
    let k = at + 1;
    while (k < text.length) {
      if (backslashes && text[k] === '\\') k += 2;
      else if (text[k] === c) {
        if (text[k + 1] !== c) return k + 1 - at;
        k += 2;
      } else k++;
    }
    return text.length - at;
  }
  if (c === '$' && !/[\w$]/.test(text[at - 1] ?? '')) {
    const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(at, at + 64));
    if (!tag) return 0;
    const end = text.indexOf(tag[0], at + tag[0].length);
    return (end < 0 ? text.length : end + tag[0].length) - at;
  }
  return 0;
}

/**
 * Offset of the first bracket that opens a level beyond MAX_NESTING_DEPTH, skipping strings,
 * quoted names and comments; undefined within the limit. One pass, no recursion: it runs before
 * the parser, which recurses per bracket.
 */
function tooDeepBracket(text: string): number | undefined {
  let depth = 0;
  let k = 0;
  while (k < text.length) {
    const skip = skippedLength(text, k);
    if (skip > 0) {
      k += skip;
      continue;
    }
    const c = text[k];
    if (c === '(' || c === '[') {
      depth++;
      if (depth > MAX_NESTING_DEPTH) return k;
    } else if ((c === ')' || c === ']') && depth > 0) depth--;
    k++;
  }
  return undefined;
}

/**
 * The first AST node deeper than MAX_NESTING_DEPTH (each node with a type is a level), found with
 * an explicit stack; undefined within the limit. The compiler, the WHERE splitter and the
 * evaluators recurse per level, so they only ever see trees that pass this check.
 */
function tooDeepNode(root: PGNode): PGNode | undefined {
  const stack: { value: unknown; depth: number }[] = [{ value: root, depth: 0 }];
  while (stack.length > 0) {
    const { value, depth } = stack.pop()!;
    if (value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      for (const item of value) stack.push({ value: item, depth });
      continue;
    }
    const isNode = typeof (value as { type?: unknown }).type === 'string';
    const level = isNode ? depth + 1 : depth;
    if (level > MAX_NESTING_DEPTH) return value as PGNode;
    for (const [key, child] of Object.entries(value)) {
      if (key !== '_location') stack.push({ value: child, depth: level });
    }
  }
  return undefined;
}

const LEXER_WORD = /[eE](?!')[A-Za-z0-9_]*|[a-df-zA-DF-Z_][A-Za-z0-9_]*/y;
const LEXER_QUOTED_WORD = /"(?:[^"*]|"")+"/y;
const LEXER_STRING = /'(?:[^']|'')*'/y;

/** Length of the lexer's match of `pattern` (a sticky regex) at `at`, 0 when it does not match. */
function matchAt(pattern: RegExp, text: string, at: number): number {
  pattern.lastIndex = at;
  return pattern.exec(text)?.[0].length ?? 0;
}

/** Length of the E'...' string (backslash escapes, '' quotes) starting at `at`, or undefined when it is never closed. */
function escapeStringLength(text: string, at: number): number | undefined {
  let k = at + 2;
  while (k < text.length) {
    if (text[k] === '\\') k += 2;
    else if (text[k] !== "'") k++;
    else if (text[k + 1] === "'") k += 2;
    else return k + 1 - at;
  }
  return undefined;
}

/**
 * Offset and opening of the first E'...' or $$...$$ string that is never closed, splitting tokens
 * as pgsql-ast-parser's lexer does; undefined when there is none or the lexer stops earlier. The
 * lexer's patterns for these two strings backtrack exponentially when the string is not closed
 * (seconds for 25 spaces after it, hours for 100), so such text must not reach the parser.
 */
function unclosedString(text: string): { at: number; opening: string } | undefined {
  let k = 0;
  while (k < text.length) {
    const c = text[k]!;
    if ((c === 'e' || c === 'E') && text[k + 1] === "'") {
      // An E-string starts only at a word boundary; elsewhere no token matches and the lexer stops.
      if (/\w/.test(text[k - 1] ?? '')) return undefined;
      const length = escapeStringLength(text, k);
      if (length === undefined) return { at: k, opening: `${c}'` };
      k += length;
    } else if (c === '$' && text[k + 1] === '$') {
      const end = text.indexOf('$$', k + 2);
      if (end < 0) return { at: k, opening: '$$' };
      k = end + 2;
    } else if (c === '-' && text[k + 1] === '-') {
      const end = text.slice(k).search(/[\n\r\u2028\u2029]/);
      if (end < 0) return undefined;
      k += end;
    } else if (c === '"' || c === "'") {
      const length = matchAt(c === '"' ? LEXER_QUOTED_WORD : LEXER_STRING, text, k);
      if (length === 0) return undefined;
      k += length;
    } else {
      k += Math.max(1, matchAt(LEXER_WORD, text, k));
    }
  }
  return undefined;
}

/** Parses SQL text into exactly one SELECT statement of the supported shape. */
export function parseSelect(sql: SqlText): SelectFromStatement {
  const unclosed = unclosedString(sql.source.text);
  if (unclosed !== undefined) {
    const { at, opening } = unclosed;
    throw new CompileError(
      opening === '$$'
        ? 'SQL syntax error: the $$ string starting here is never closed: add the closing $$.'
        : `SQL syntax error: the ${opening}...' string starting here is never closed: add the closing quote.`,
      sql.source.sourceRange(at, at + opening.length),
    );
  }
  const bracket = tooDeepBracket(sql.source.text);
  if (bracket !== undefined) {
    throw new CompileError(
      nestingLimitMessage('Brackets are', NESTING_FIX),
      sql.source.sourceRange(bracket, bracket + 1),
    );
  }
  let statements: Statement[];
  try {
    statements = parse(sql.source.text, { locationTracking: true });
  } catch (error) {
    if (error instanceof RangeError) {
      // The parser ran out of stack on input the bracket check cannot see: report the limit, not a crash.
      throw new CompileError(nestingLimitMessage('This query is', NESTING_FIX), sql.source.range);
    }
    throw syntaxError(sql, error);
  }
  for (const statement of statements) {
    const deep = tooDeepNode(statement);
    if (deep) fail(sql, deep, nestingLimitMessage('This expression is', NESTING_FIX));
  }
  if (statements.length === 0)
    throw new CompileError('The query is empty: write a SELECT statement.', sql.source.range);
  if (statements.length > 1) {
    fail(
      sql,
      statements[1],
      `Found ${statements.length} statements: each query must be a single SELECT statement (use a list for several queries).`,
    );
  }
  const statement = statements[0]!;
  if (statement.type === 'with' || statement.type === 'with recursive') {
    fail(sql, statement, 'WITH (common table expressions) is not supported in sync config editions 1-2.');
  }
  if (statement.type === 'union' || statement.type === 'union all') {
    fail(sql, statement, 'UNION is not supported: write one query per SELECT (a list under data:, or another stream).');
  }
  if (statement.type !== 'select') {
    fail(sql, statement, `Only SELECT statements are supported, found ${statement.type.toUpperCase()}.`);
  }
  checkSelectShape(sql, statement);
  return statement;
}

/** Rejects the SELECT clauses a sync config cannot evaluate per row. */
export function checkSelectShape(sql: SqlText, select: SelectFromStatement): void {
  if (select.distinct) {
    failAtKeyword(sql, /\bdistinct\b/i, 'DISTINCT is not supported: each source row is synced once per bucket anyway.');
  }
  if (select.groupBy) {
    failAtKeyword(
      sql,
      /\bgroup\s+by\b/i,
      'GROUP BY is not supported: sync queries select rows, they cannot aggregate.',
    );
  }
  if (select.having) failAtKeyword(sql, /\bhaving\b/i, 'HAVING is not supported: sync queries cannot aggregate.');
  if (select.orderBy) {
    failAtKeyword(sql, /\border\s+by\b/i, "ORDER BY is not supported: order rows in the client's queries instead.");
  }
  if (select.limit?.limit) {
    failAtKeyword(
      sql,
      /\blimit\b/i,
      'LIMIT is not supported: a sync query selects every matching row; filter with WHERE instead.',
    );
  }
  if (select.limit?.offset) {
    failAtKeyword(
      sql,
      /\boffset\b/i,
      'OFFSET is not supported: a sync query selects every matching row; filter with WHERE instead.',
    );
  }
  for (const column of select.columns ?? []) {
    if (column.expr.type === 'call' && ['count', 'sum', 'min', 'max', 'avg'].includes(column.expr.function.name)) {
      fail(
        sql,
        column.expr,
        `Aggregate function ${column.expr.function.name}() is not supported: sync queries select rows, they cannot aggregate.`,
      );
    }
  }
}

/** The single table a query reads, with the names its columns may be qualified with. */
export interface QueryTable {
  readonly pattern: TablePattern;
  /** `AS` alias, which is also the output table name of data queries. */
  readonly alias: string | undefined;
  /** Qualifiers accepted in column references (`todos.id`, `t.id`). */
  readonly qualifiers: ReadonlySet<string>;
  readonly schemaQualified: boolean;
}

/** The FROM clause of a query: nothing, one table, or `json_each(<expression>)`. */
export type FromClause =
  | { kind: 'none' }
  | { kind: 'table'; table: QueryTable }
  | { kind: 'json_each'; call: ExprCall; alias: string | undefined };

/** Resolves the FROM clause; `joinMessage` is the error for joins and several tables. */
export function resolveFrom(
  sql: SqlText,
  select: SelectFromStatement,
  defaultSchema: string,
  joinMessage: string,
): FromClause {
  const from = select.from ?? [];
  if (from.length === 0) return { kind: 'none' };
  if (from.length > 1) fail(sql, from[1], joinMessage);
  const item = from[0]!;
  if (item.type === 'call') {
    if (item.function.name !== 'json_each' || item.function.schema) {
      fail(
        sql,
        item,
        `Table function ${nodeText(sql, item.function)}() is not supported: only json_each() can be used in FROM.`,
      );
    }
    if (item.args.length !== 1) fail(sql, item, 'json_each() takes 1 argument: a JSON array.');
    return { kind: 'json_each', call: item, alias: item.alias?.name };
  }
  if (item.type !== 'table') fail(sql, item, 'Subqueries in FROM are not supported: select from one table.');
  const name = item.name;
  const pattern = tablePattern(name.schema ?? defaultSchema, name.name);
  const qualifiers = new Set<string>(name.alias ? [name.alias] : [name.name]);
  return {
    kind: 'table',
    table: { pattern, alias: name.alias, qualifiers, schemaQualified: name.schema !== undefined },
  };
}

/** Checks that a column reference's qualifier names the queried table. */
function checkQualifier(sql: SqlText, table: QueryTable, node: ExprRef): void {
  const qualifier = node.table;
  if (!qualifier) return;
  const schemaOk = qualifier.schema === undefined || qualifier.schema === table.pattern.schema;
  if (!schemaOk || !table.qualifiers.has(qualifier.name)) {
    const known = [...table.qualifiers].join(', ');
    fail(
      sql,
      node,
      `Unknown table "${qualifier.name}" in ${nodeText(sql, node)}: this query reads only from ${known}.`,
    );
  }
}

/** A row scope: columns of the queried table; request values are rejected with `requestMessage`. */
export function rowScope(sql: SqlText, table: QueryTable, requestMessage: string): Scope<SqliteRow> {
  return {
    column(name, node): Evaluator<SqliteRow> {
      checkQualifier(sql, table, node);
      return (row) => row[name] ?? null;
    },
    request(_ref, node): never {
      fail(sql, node, requestMessage);
    },
  };
}

/** A request scope: request values only (static parameter queries, request filters). */
export function requestScope(sql: SqlText, columnMessage: string): Scope<RequestContext> {
  return {
    column(_name, node): never {
      fail(sql, node, `${columnMessage} (found "${nodeText(sql, node)}").`);
    },
    request(ref): Evaluator<RequestContext> {
      return (request) => request.read(ref);
    },
  };
}

/** Input of json_each parameter queries: one array element plus the request. */
export interface JsonEachInput {
  element: SqliteRow;
  request: RequestContext;
}

/** The json_each scope: its `value` and `key` columns plus request values. */
export function jsonEachScope(sql: SqlText, alias: string | undefined): Scope<JsonEachInput> {
  return {
    column(name, node): Evaluator<JsonEachInput> {
      if (node.table && (node.table.name !== alias || node.table.schema)) {
        fail(
          sql,
          node,
          `Unknown table "${node.table.name}": json_each() rows are ${alias ? `${alias}.value` : 'value'}.`,
        );
      }
      if (name !== 'value' && name !== 'key') fail(sql, node, `json_each() has columns value and key, not "${name}".`);
      return (input) => input.element[name] ?? null;
    },
    request(ref): Evaluator<JsonEachInput> {
      return (input) => input.request.read(ref);
    },
  };
}

/** Output name of a SELECT column: its alias, or the column name of a plain reference. */
export function columnName(sql: SqlText, expr: Expr, alias: string | undefined): string {
  if (alias !== undefined) return alias;
  if (expr.type === 'ref') return expr.name;
  fail(sql, expr, `Add a name to this expression: ${nodeText(sql, expr)} AS name.`);
}
