/**
 * Splits a WHERE clause into alternatives (OR) of conjunctions (AND) of terms: row filters,
 * request filters and *bindings* that tie a row value to a bucket parameter, a request value
 * or a subquery. ORs over plain filters stay single filters; only ORs over bindings split.
 */
import type { Expr, ExprRef, SelectFromStatement } from 'pgsql-ast-parser';
import { exprUses, fail, isBucketRef, type ExprUses, type SqlText } from './sql-expression.js';

/** Where a binding's values come from. */
export type BindTarget =
  | { kind: 'bucket'; name: string; node: ExprRef }
  | { kind: 'request'; expr: Expr; array: boolean }
  | { kind: 'subquery'; select: SelectFromStatement };

/** A term of a conjunction. */
export type WhereTerm =
  | { kind: 'row-filter'; node: Expr }
  | { kind: 'request-filter'; node: Expr }
  | {
      kind: 'bind';
      node: Expr;
      /** The row side of the comparison. */
      row: Expr;
      /** True when the row side holds a JSON array whose elements each bind (`bucket.p IN row.arr`). */
      rowArray: boolean;
      target: BindTarget;
    };

/** What a WHERE clause may contain in a given kind of query. */
export interface WhereRules {
  /** `column = bucket.p` (bucket_definitions data queries). */
  bucket: boolean;
  /** `column = <request value>` (parameter queries, streams). */
  request: boolean;
  /** `column IN (SELECT ...)` (streams). */
  subquery: boolean;
}

/** At most this many alternatives after splitting ORs; beyond it a query is rejected. */
export const MAX_ALTERNATIVES = 16;

function onlyRow(u: ExprUses): boolean {
  return u.row && !u.bucket && !u.auth && !u.unauth && !u.subquery;
}

function onlyRequest(u: ExprUses): boolean {
  return (u.auth || u.unauth) && !u.row && !u.bucket && !u.subquery;
}

function isSubquery(node: Expr): node is SelectFromStatement {
  return node.type === 'select';
}

/** True when an expression contains something that binds (not a plain filter). */
function hasBinding(sql: SqlText, node: Expr): boolean {
  const u = exprUses(sql, node);
  return u.bucket || u.subquery || (u.row && (u.auth || u.unauth));
}

/** Classifies one non-AND/OR expression of a WHERE clause. */
function classify(sql: SqlText, node: Expr, rules: WhereRules): WhereTerm {
  if (node.type === 'binary') {
    const { left, right } = node;
    const op = node.op as string;
    if (op === '=') {
      for (const [row, other] of [
        [left, right],
        [right, left],
      ] as const) {
        const rowUses = exprUses(sql, row);
        if (!onlyRow(rowUses)) continue;
        if (rules.bucket && isBucketRef(other)) {
          return {
            kind: 'bind',
            node,
            row,
            rowArray: false,
            target: { kind: 'bucket', name: (other as ExprRef).name, node: other as ExprRef },
          };
        }
        if (rules.request && onlyRequest(exprUses(sql, other))) {
          return { kind: 'bind', node, row, rowArray: false, target: { kind: 'request', expr: other, array: false } };
        }
      }
    }
    if (op === 'IN') {
      const leftUses = exprUses(sql, left);
      if (isSubquery(right)) {
        if (!rules.subquery) {
          fail(
            sql,
            right,
            'Subqueries are only supported as x IN (SELECT column FROM table WHERE ...) in stream queries.',
          );
        }
        if (!onlyRow(leftUses))
          fail(sql, left, 'The left side of IN (SELECT ...) must be a column of the queried table.');
        return { kind: 'bind', node, row: left, rowArray: false, target: { kind: 'subquery', select: right } };
      }
      if (right.type !== 'list') {
        const rightUses = exprUses(sql, right);
        if (rules.bucket && isBucketRef(left) && onlyRow(rightUses)) {
          return {
            kind: 'bind',
            node,
            row: right,
            rowArray: true,
            target: { kind: 'bucket', name: (left as ExprRef).name, node: left as ExprRef },
          };
        }
        if (rules.request && onlyRow(leftUses) && onlyRequest(rightUses)) {
          return {
            kind: 'bind',
            node,
            row: left,
            rowArray: false,
            target: { kind: 'request', expr: right, array: true },
          };
        }
        if (rules.request && onlyRequest(leftUses) && onlyRow(rightUses)) {
          return {
            kind: 'bind',
            node,
            row: right,
            rowArray: true,
            target: { kind: 'request', expr: left, array: false },
          };
        }
      }
    }
    if (op === '&&' && rules.subquery) {
      for (const [row, other] of [
        [left, right],
        [right, left],
      ] as const) {
        if (onlyRow(exprUses(sql, row)) && onlyRequest(exprUses(sql, other))) {
          return { kind: 'bind', node, row, rowArray: true, target: { kind: 'request', expr: other, array: true } };
        }
      }
    }
  }
  const uses = exprUses(sql, node);
  if (uses.subquery) {
    fail(sql, node, 'Subqueries are only supported as x IN (SELECT column FROM table WHERE ...) in stream queries.');
  }
  if (uses.bucket) {
    if (!rules.bucket) fail(sql, node, 'bucket.<name> can only be used in data queries of bucket_definitions.');
    fail(
      sql,
      node,
      'Bucket parameters can only be matched as column = bucket.<name> or bucket.<name> IN column, combined with AND / OR.',
    );
  }
  if ((uses.auth || uses.unauth) && !rules.request) {
    fail(sql, node, 'Request values cannot be used in data queries: filter on bucket.<name> instead.');
  }
  if (uses.row && (uses.auth || uses.unauth)) {
    fail(
      sql,
      node,
      'This condition mixes row columns and request values in a way that cannot be indexed: compare a column with a request value using = or IN.',
    );
  }
  if (uses.auth || uses.unauth) {
    return { kind: 'request-filter', node };
  }
  return { kind: 'row-filter', node };
}

/** Splits a WHERE clause (undefined = no WHERE) into alternatives of conjunctions. */
export function whereAlternatives(sql: SqlText, where: Expr | undefined, rules: WhereRules): WhereTerm[][] {
  if (!where) return [[]];
  const split = (node: Expr): WhereTerm[][] => {
    if (node.type === 'binary' && node.op === 'AND') {
      const left = split(node.left);
      const right = split(node.right);
      const out: WhereTerm[][] = [];
      for (const a of left) for (const b of right) out.push([...a, ...b]);
      if (out.length > MAX_ALTERNATIVES) {
        fail(sql, node, `This WHERE clause expands to more than ${MAX_ALTERNATIVES} alternatives: simplify its ORs.`);
      }
      return out;
    }
    if (node.type === 'binary' && node.op === 'OR' && (hasBinding(sql, node.left) || hasBinding(sql, node.right))) {
      const out = [...split(node.left), ...split(node.right)];
      if (out.length > MAX_ALTERNATIVES) {
        fail(sql, node, `This WHERE clause expands to more than ${MAX_ALTERNATIVES} alternatives: simplify its ORs.`);
      }
      return out;
    }
    return [[classify(sql, node, rules)]];
  };
  return split(where);
}
