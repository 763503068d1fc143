/**
 * The one nesting limit of a sync config. The YAML composer, the SQL parser, the expression
 * compiler and the compiled evaluators all recurse once per level, so input nested deeper than
 * this is rejected with a positioned diagnostic before any of them runs.
 */

/**
 * Deepest nesting accepted in a sync config: YAML collections inside each other, SQL brackets
 * (`(`, `[`), and SQL expression trees (each function call, operator, cast and subquery is a
 * level). Real configs stay below 10; a limit far above that keeps every recursion shallow.
 */
export const MAX_NESTING_DEPTH = 100;

/** The diagnostic for input nested deeper than {@link MAX_NESTING_DEPTH}; `what` names the kind of nesting. */
export function nestingLimitMessage(what: string, fix: string): string {
  return `${what} nested more than ${MAX_NESTING_DEPTH} levels deep (the sync config nesting limit): ${fix}`;
}
