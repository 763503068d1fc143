/**
 * Column changes of a source table and whether they can have changed existing rows without
 * change events. Sources stream row changes, not the effect of DDL on rows already there:
 * after `DROP COLUMN`, a type change or `ADD COLUMN ... DEFAULT`, stored rows are stale
 * until the table is copied again. A column added without a default changes nothing stored
 * (absent and null read the same on clients), so it needs no copy.
 */
import type { SourceColumn } from './storage-types.js';

/** True when going from `before` to `after` may have changed rows without change events. */
export function columnsChangeNeedsCopy(
  before: readonly SourceColumn[] | undefined,
  after: readonly SourceColumn[] | undefined,
): boolean {
  if (!before || !after) return false;
  const now = new Map(after.map((c) => [c.name, c]));
  for (const column of before) {
    const current = now.get(column.name);
    if (!current || current.type !== column.type) return true;
  }
  const known = new Set(before.map((c) => c.name));
  return after.some((c) => !known.has(c.name) && c.hasDefault);
}

/** Same columns in the same order (a changed list that needs no copy is still recorded). */
export function sameColumns(a: readonly SourceColumn[] | undefined, b: readonly SourceColumn[] | undefined): boolean {
  if (!a || !b) return a === b;
  return (
    a.length === b.length &&
    a.every((c, i) => c.name === b[i]!.name && c.type === b[i]!.type && c.hasDefault === b[i]!.hasDefault)
  );
}
