/**
 * Compiles one SQL expression (pgsql-ast-parser AST) into a closure over its input: a source
 * row, request data, or both. References are resolved once here through a scope, so evaluation
 * is plain function calls; operators follow SQLite semantics (sqlite-value.ts).
 */
import type { Expr, ExprCall, ExprRef, ExprMember, PGNode } from 'pgsql-ast-parser';
import { CompileError, type SourceRange } from './diagnostic.js';
import {
  followJsonPath,
  jsonValueToSqlite,
  jsonValueToText,
  parseJsonPath,
  type JsonPathStep,
  type JsonValue,
} from './json-text.js';
import type { RequestRef } from './request-context.js';
import { CLOCK_FUNCTIONS, jsonArgument, SQL_FUNCTIONS } from './sql-functions.js';
import {
  arithmetic,
  castToBlob,
  castToInteger,
  castToNumeric,
  castToReal,
  castToText,
  compareValues,
  isTruthy,
  sqlEquals,
  type SqliteValue,
} from './sqlite-value.js';
import type { SourceText } from './yaml-source.js';

/** A compiled expression. */
export type Evaluator<I> = (input: I) => SqliteValue;

/** Which kind of request references a query may use. */
export type RequestDialect = 'bucket' | 'stream';

/** How a compiled expression reads columns and request values; decided by the query kind. */
export interface Scope<I> {
  /** Reads a column; throws CompileError when columns are not available here. */
  column(name: string, node: ExprRef): Evaluator<I>;
  /** Reads a request value; throws CompileError when request data is not available here. */
  request(ref: RequestRef, node: Expr): Evaluator<I>;
}

/** Shared compile settings of one SQL text. */
export interface SqlText {
  readonly source: SourceText;
  readonly edition: number;
  readonly dialect: RequestDialect;
}

/** What an expression reads. */
export interface ExprUses {
  row: boolean;
  bucket: boolean;
  auth: boolean;
  unauth: boolean;
  subquery: boolean;
}

/** YAML range of an AST node. */
export function nodeRange(sql: SqlText, node: PGNode | undefined): SourceRange {
  const loc = node?._location;
  if (!loc) return sql.source.range;
  return sql.source.sourceRange(loc.start, loc.end);
}

/** SQL text of an AST node, for messages. */
export function nodeText(sql: SqlText, node: PGNode): string {
  const loc = node._location;
  return loc ? sql.source.text.slice(loc.start, loc.end) : '';
}

/** Throws a CompileError pointing at a node. */
export function fail(sql: SqlText, node: PGNode | undefined, message: string): never {
  throw new CompileError(message, nodeRange(sql, node));
}

const STREAM_SCHEMAS = new Set(['auth', 'subscription', 'connection']);

/**
 * Resolves a request reference (`request.user_id()`, `auth.parameter('k')`, `token_parameters.x`
 * ...) or returns undefined when the node is not one. Throws for request functions of the other
 * dialect or with wrong arguments.
 */
export function requestRefOf(sql: SqlText, node: Expr): RequestRef | undefined {
  if (node.type === 'ref') {
    const qualifier = node.table?.name;
    if (qualifier === 'token_parameters' || qualifier === 'user_parameters') {
      if (sql.dialect === 'stream') {
        fail(
          sql,
          node,
          `${qualifier}.${node.name} is not available in streams: use auth.parameter('${node.name}') or subscription.parameter('${node.name}').`,
        );
      }
      return qualifier === 'token_parameters'
        ? { source: 'token_parameter', key: node.name }
        : { source: 'client_parameter', key: node.name };
    }
    return undefined;
  }
  if (node.type !== 'call') return undefined;
  const schema = node.function.schema;
  if (schema !== 'request' && !(schema !== undefined && STREAM_SCHEMAS.has(schema))) return undefined;
  const name = node.function.name;
  const text = `${schema}.${name}()`;
  if (schema === 'request' && sql.dialect === 'stream') {
    fail(
      sql,
      node,
      `${text} is not available in streams: use auth.user_id(), auth.parameter('key'), subscription.parameter('key') or connection.parameter('key').`,
    );
  }
  if (schema !== 'request' && sql.dialect === 'bucket') {
    fail(
      sql,
      node,
      `${text} is only available in streams: in bucket_definitions use request.user_id(), request.jwt() or request.parameters().`,
    );
  }
  const keyArgument = (): string => {
    const arg = node.args[0];
    if (node.args.length !== 1 || arg?.type !== 'string') {
      fail(sql, node, `${schema}.${name}() takes one string literal, the parameter name: ${schema}.${name}('key').`);
    }
    return arg.value;
  };
  const noArguments = (): void => {
    if (node.args.length !== 0) fail(sql, node, `${text} takes no arguments.`);
  };
  const known: Record<string, Record<string, () => RequestRef>> = {
    request: {
      user_id: () => (noArguments(), { source: 'user_id' }),
      jwt: () => (noArguments(), { source: 'jwt' }),
      parameters: () => (noArguments(), { source: 'client_parameters' }),
      parameter: () => ({ source: 'client_parameter', key: keyArgument() }),
    },
    auth: {
      user_id: () => (noArguments(), { source: 'user_id' }),
      parameters: () => (noArguments(), { source: 'jwt' }),
      parameter: () => ({ source: 'claim', key: keyArgument() }),
    },
    subscription: {
      parameters: () => (noArguments(), { source: 'subscription_parameters' }),
      parameter: () => ({ source: 'subscription_parameter', key: keyArgument() }),
    },
    connection: {
      parameters: () => (noArguments(), { source: 'client_parameters' }),
      parameter: () => ({ source: 'client_parameter', key: keyArgument() }),
    },
  };
  const make = known[schema]![name];
  if (!make) {
    const names = Object.keys(known[schema]!).map((n) => `${schema}.${n}()`);
    fail(sql, node, `Unknown function ${text}: ${schema} provides ${names.join(', ')}.`);
  }
  return make();
}

/** True for `bucket.<name>` references. */
export function isBucketRef(node: Expr): boolean {
  return node.type === 'ref' && node.table?.name === 'bucket' && node.table.schema === undefined;
}

/** Collects what an expression reads (row columns, bucket parameters, request values, subqueries). */
export function exprUses(sql: SqlText, node: Expr): ExprUses {
  const uses: ExprUses = { row: false, bucket: false, auth: false, unauth: false, subquery: false };
  const visit = (n: Expr): void => {
    if (isBucketRef(n)) {
      uses.bucket = true;
      return;
    }
    const ref = requestRefOf(sql, n);
    if (ref) {
      if (ref.source === 'client_parameters' || ref.source === 'client_parameter') uses.unauth = true;
      else if (ref.source === 'subscription_parameters' || ref.source === 'subscription_parameter') uses.unauth = true;
      else uses.auth = true;
      return;
    }
    switch (n.type) {
      case 'ref':
        uses.row = true;
        return;
      case 'binary':
        visit(n.left);
        visit(n.right);
        return;
      case 'unary':
        visit(n.operand);
        return;
      case 'member':
        visit(n.operand);
        return;
      case 'cast':
        visit(n.operand);
        return;
      case 'call':
        n.args.forEach(visit);
        return;
      case 'list':
        n.expressions.forEach(visit);
        return;
      case 'select':
      case 'union':
      case 'union all':
      case 'with':
      case 'with recursive':
      case 'values':
        uses.subquery = true;
        return;
      case 'ternary':
        visit(n.value);
        visit(n.lo);
        visit(n.hi);
        return;
      case 'case':
        if (n.value) visit(n.value);
        for (const w of n.whens) {
          visit(w.when);
          visit(w.value);
        }
        if (n.else) visit(n.else);
        return;
      default:
        return;
    }
  };
  visit(node);
  return uses;
}

const CAST_TYPES: Record<string, 'text' | 'integer' | 'real' | 'numeric' | 'blob'> = {
  text: 'text',
  varchar: 'text',
  integer: 'integer',
  int: 'integer',
  int4: 'integer',
  int8: 'integer',
  bigint: 'integer',
  real: 'real',
  float: 'real',
  float8: 'real',
  double: 'real',
  'double precision': 'real',
  numeric: 'numeric',
  decimal: 'numeric',
  blob: 'blob',
  bytea: 'blob',
};

/** Converts a JSON array text (or a scalar) into its elements as SQL values; undefined when not an array. */
export function jsonArrayElements(value: SqliteValue): SqliteValue[] | undefined {
  if (typeof value !== 'string') return undefined;
  const doc = jsonArgument(value);
  if (!Array.isArray(doc)) return undefined;
  return doc.map((v) => jsonValueToSqlite(v));
}

/** `x IN <json array text>`: SQLite-style three-valued membership. */
export function inJsonArray(value: SqliteValue, array: SqliteValue): SqliteValue {
  if (value === null || array === null) return null;
  const elements = jsonArrayElements(array);
  if (elements === undefined) return null;
  return inValues(value, elements);
}

function inValues(value: SqliteValue, elements: readonly SqliteValue[]): SqliteValue {
  if (value === null) return null;
  let sawNull = false;
  for (const element of elements) {
    if (element === null) sawNull = true;
    else if (sqlEquals(value, element)) return 1n;
  }
  return sawNull ? null : 0n;
}

/** `a && b`: 1 when two JSON arrays share an element, NULL when either is NULL. */
export function jsonArraysOverlap(a: SqliteValue, b: SqliteValue): SqliteValue {
  if (a === null || b === null) return null;
  const left = jsonArrayElements(a);
  const right = jsonArrayElements(b);
  if (!left || !right) return null;
  for (const x of left) {
    if (x !== null && right.some((y) => y !== null && sqlEquals(x, y))) return 1n;
  }
  return 0n;
}

/** Steps of a `->`/`->>` key: `$` paths as paths; otherwise edition 1 splits dots, edition 2 is literal. */
function memberSteps(sql: SqlText, node: ExprMember): JsonPathStep[] {
  const member = node.member;
  if (typeof member === 'number') return [member];
  if (member.startsWith('$')) {
    const steps = parseJsonPath(member);
    if (!steps) fail(sql, node, `Invalid JSON path '${member}': use '$.key', '$.a.b' or '$[0]'.`);
    return steps;
  }
  return sql.edition >= 2 ? [member] : member.split('.');
}

const COMPARISONS: Record<string, (c: number) => boolean> = {
  '<': (c) => c < 0,
  '>': (c) => c > 0,
  '<=': (c) => c <= 0,
  '>=': (c) => c >= 0,
};

const UNSUPPORTED_OPERATORS = new Set(['%', '&', '|', '#', '<<', '>>', '^']);

/** Compiles expressions of one query in one scope. */
export class ExpressionCompiler<I> {
  constructor(
    readonly sql: SqlText,
    readonly scope: Scope<I>,
  ) {}

  /** Compiles an expression into a closure; throws CompileError for unsupported SQL. */
  compile(node: Expr): Evaluator<I> {
    const sql = this.sql;
    if (isBucketRef(node)) {
      const name = (node as ExprRef).name;
      return fail(
        sql,
        node,
        `bucket.${name} can only be compared with a row value in WHERE: write column = bucket.${name} or bucket.${name} IN column.`,
      );
    }
    const ref = requestRefOf(sql, node);
    if (ref) return this.scope.request(ref, node);
    switch (node.type) {
      case 'integer':
        return constant(this.integerLiteral(node));
      case 'numeric':
        return constant(node.value);
      case 'string':
        return constant(node.value);
      case 'boolean':
        return constant(node.value ? 1n : 0n);
      case 'null':
        return constant(null);
      case 'ref':
        if (node.name === '*') fail(sql, node, '* can only be used as a whole column list: SELECT * FROM table.');
        return this.scope.column(node.name, node);
      case 'call':
        return this.call(node);
      case 'member':
        return this.member(node);
      case 'cast':
        return this.cast(node, node.operand, 'name' in node.to ? node.to.name : 'array');
      case 'unary':
        return this.unary(node);
      case 'binary':
        return this.binary(node);
      case 'list':
        return fail(sql, node, 'A parenthesised list can only follow IN: x IN (1, 2).');
      case 'select':
      case 'union':
      case 'union all':
      case 'with':
      case 'with recursive':
      case 'values':
        return fail(
          sql,
          node,
          'Subqueries are only supported as x IN (SELECT column FROM table WHERE ...) in stream queries.',
        );
      case 'case':
        return fail(sql, node, 'CASE expressions are not supported: use iif(condition, then, else).');
      case 'ternary':
        return fail(sql, node, `${node.op} is not supported: write x >= low AND x <= high.`);
      case 'parameter':
        return fail(
          sql,
          node,
          `Query parameters like ${node.name} are not supported: use request or subscription values.`,
        );
      default:
        return fail(sql, node, `Unsupported SQL expression "${nodeText(sql, node)}".`);
    }
  }

  /** Exact INTEGER literal from the SQL text (the parser's number loses precision beyond 2^53). */
  private integerLiteral(node: Expr & { type: 'integer'; value: number }): bigint {
    const text = nodeText(this.sql, node).replace(/\s+/g, '');
    if (/^[+-]?\d+$/.test(text)) return BigInt(text);
    return BigInt(node.value);
  }

  private call(node: ExprCall): Evaluator<I> {
    const sql = this.sql;
    const name = node.function.name.toLowerCase();
    if (node.function.schema) {
      fail(
        sql,
        node,
        `Unknown function ${node.function.schema}.${name}(): see the list of supported functions in docs/sync-config.md.`,
      );
    }
    if (name === 'json_each')
      fail(sql, node, 'json_each() can only be used in FROM: SELECT value AS p FROM json_each(...).');
    if (CLOCK_FUNCTIONS.has(name)) return constant(null);
    const fn = SQL_FUNCTIONS.get(name);
    if (!fn) {
      fail(sql, node, `Unknown function ${name}(): see the list of supported functions in docs/sync-config.md.`);
    }
    const count = node.args.length;
    if (count < fn.minArgs || count > fn.maxArgs) {
      const expected =
        fn.minArgs === fn.maxArgs
          ? `${fn.minArgs}`
          : fn.maxArgs === Infinity
            ? `at least ${fn.minArgs}`
            : `${fn.minArgs} to ${fn.maxArgs}`;
      fail(sql, node, `${name}() takes ${expected} argument${expected === '1' ? '' : 's'}, got ${count}.`);
    }
    const args = node.args.map((a) => this.compile(a));
    const call = fn.call;
    if (args.length === 1) {
      const a0 = args[0]!;
      return (input) => call([a0(input)]);
    }
    if (args.length === 2) {
      const [a0, a1] = args as [Evaluator<I>, Evaluator<I>];
      return (input) => call([a0(input), a1(input)]);
    }
    return (input) => call(args.map((a) => a(input)));
  }

  private member(node: ExprMember): Evaluator<I> {
    const operand = this.compile(node.operand);
    const steps = memberSteps(this.sql, node);
    const asText = node.op === '->';
    return (input) => {
      const doc = jsonArgument(operand(input));
      if (doc === undefined) return null;
      const found: JsonValue | undefined = followJsonPath(doc, steps);
      if (found === undefined) return null;
      return asText ? jsonValueToText(found) : jsonValueToSqlite(found);
    };
  }

  private cast(node: Expr, operandNode: Expr, typeName: string): Evaluator<I> {
    const sql = this.sql;
    const type = typeName.toLowerCase();
    if (type === 'x' && operandNode.type === 'string') {
      // X'0102' arrives as a cast of a string to type "x": a BLOB literal.
      if (!/^([0-9a-fA-F]{2})*$/.test(operandNode.value))
        fail(sql, node, `Invalid BLOB literal X'${operandNode.value}'.`);
      return constant(new Uint8Array(Buffer.from(operandNode.value, 'hex')));
    }
    const target = CAST_TYPES[type];
    if (!target) fail(sql, node, `Cannot cast to ${typeName}: use text, integer, real, numeric or blob.`);
    const operand = this.compile(operandNode);
    switch (target) {
      case 'text':
        return (input) => castToText(operand(input));
      case 'integer':
        return (input) => castToInteger(operand(input));
      case 'real':
        return (input) => castToReal(operand(input));
      case 'numeric':
        return (input) => castToNumeric(operand(input));
      case 'blob':
        return (input) => castToBlob(operand(input));
    }
  }

  private unary(node: Expr & { type: 'unary' }): Evaluator<I> {
    const operand = this.compile(node.operand);
    switch (node.op) {
      case 'NOT':
        return (input) => {
          const v = operand(input);
          return v === null ? null : isTruthy(v) ? 0n : 1n;
        };
      case 'IS NULL':
        return (input) => (operand(input) === null ? 1n : 0n);
      case 'IS NOT NULL':
        return (input) => (operand(input) === null ? 0n : 1n);
      case '-':
        return (input) => arithmetic('-', 0n, operand(input));
      case '+':
        return operand;
      default:
        fail(this.sql, node, `Operator ${node.op} is not supported: use IS NULL, IS NOT NULL or NOT.`);
    }
  }

  private binary(node: Expr & { type: 'binary' }): Evaluator<I> {
    const sql = this.sql;
    const op = node.op as string;
    if (UNSUPPORTED_OPERATORS.has(op)) {
      const what = op === '%' ? 'The % operator' : `The bitwise operator ${op}`;
      fail(
        sql,
        node,
        `${what} is not supported in sync config editions 1-2: compute the value in the source database instead.`,
      );
    }
    if (op === 'IN' || op === 'NOT IN') {
      const negate = op === 'NOT IN';
      const left = this.compile(node.left);
      let membership: Evaluator<I>;
      if (node.right.type === 'list') {
        const items = node.right.expressions.map((e) => this.compile(e));
        membership = (input) =>
          inValues(
            left(input),
            items.map((item) => item(input)),
          );
      } else {
        const right = this.compile(node.right);
        membership = (input) => inJsonArray(left(input), right(input));
      }
      if (!negate) return membership;
      return (input) => {
        const v = membership(input);
        return v === null ? null : v === 1n ? 0n : 1n;
      };
    }
    const left = this.compile(node.left);
    const right = this.compile(node.right);
    switch (op) {
      case 'AND':
        return (input) => {
          const a = left(input);
          if (a !== null && !isTruthy(a)) return 0n;
          const b = right(input);
          if (b !== null && !isTruthy(b)) return 0n;
          return a === null || b === null ? null : 1n;
        };
      case 'OR':
        return (input) => {
          const a = left(input);
          if (a !== null && isTruthy(a)) return 1n;
          const b = right(input);
          if (b !== null && isTruthy(b)) return 1n;
          return a === null || b === null ? null : 0n;
        };
      case '=':
        return (input) => {
          const r = sqlEquals(left(input), right(input));
          return r === null ? null : r ? 1n : 0n;
        };
      case '!=':
        return (input) => {
          const r = sqlEquals(left(input), right(input));
          return r === null ? null : r ? 0n : 1n;
        };
      case 'IS':
      case 'IS NOT': {
        const negate = op === 'IS NOT';
        return (input) => {
          const a = left(input);
          const b = right(input);
          const same = a === null || b === null ? a === b : compareValues(a, b) === 0;
          return same !== negate ? 1n : 0n;
        };
      }
      case '<':
      case '>':
      case '<=':
      case '>=': {
        const test = COMPARISONS[op]!;
        return (input) => {
          const a = left(input);
          const b = right(input);
          if (a === null || b === null) return null;
          return test(compareValues(a, b)) ? 1n : 0n;
        };
      }
      case '+':
      case '-':
      case '*':
      case '/': {
        const arithmeticOp = op;
        return (input) => arithmetic(arithmeticOp, left(input), right(input));
      }
      case '||':
        return (input) => {
          const a = left(input);
          const b = right(input);
          if (a === null || b === null) return null;
          return castToText(a)! + castToText(b)!;
        };
      case '&&':
        if (sql.dialect !== 'stream') fail(sql, node, 'The && operator is only supported in stream queries.');
        return (input) => jsonArraysOverlap(left(input), right(input));
      default:
        fail(sql, node, `Operator ${op} is not supported: see the operators in docs/sync-config.md.`);
    }
  }
}

function constant<I>(value: SqliteValue): Evaluator<I> {
  return () => value;
}
