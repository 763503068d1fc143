/**
 * Positions are source-specific strings (a zero-padded Postgres LSN, a MariaDB GTID + offset,
 * ...) chosen so that plain string order is source order. Core only compares and stores
 * them; each source module owns parsing and serialising its own (docs/glossary.md).
 */

/** Negative when `a` is before `b`, 0 when equal, positive when after. */
export function comparePositions(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The later of two positions; `undefined` counts as "no position yet". */
export function maxPosition(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return comparePositions(a, b) >= 0 ? a : b;
}
