/**
 * Bucket-op diffing for one source row: given what the row last produced (output rows per
 * bucket, parameter lookups) and what it produces now, which PUTs, REMOVEs and parameter
 * entries to write. Written once here; every storage backend calls it.
 */
import type { EvaluatedRow, SqliteRow } from './storage-types.js';

/** An output row a source row produced in a bucket, as remembered by storage. */
export interface BucketRowRef {
  readonly bucket: string;
  readonly table: string;
  readonly id: string;
}

/** The ops one row change produces. */
export interface RowBucketDiff {
  /** Output rows to PUT (every current output, so the data is refreshed). */
  readonly puts: readonly EvaluatedRow[];
  /** Output rows the source row left (bucket, table and id no longer produced). */
  readonly removes: readonly BucketRowRef[];
}

function refKey(ref: BucketRowRef): string {
  return `${ref.bucket}\u0000${ref.table}\u0000${ref.id}`;
}

/**
 * PUT for every output row the source row now produces, REMOVE for each it produced before
 * and no longer does. A row moving between buckets gets a PUT in the new bucket and a REMOVE
 * in the old one; a delete passes `next = []`.
 */
export function diffRowBuckets(previous: readonly BucketRowRef[], next: readonly EvaluatedRow[]): RowBucketDiff {
  if (previous.length === 0) return { puts: dedupeOutputs(next), removes: [] };
  const puts = dedupeOutputs(next);
  const now = new Set(puts.map(refKey));
  const removes = previous.filter((ref) => !now.has(refKey(ref)));
  return { puts, removes };
}

/** When a row yields the same (bucket, table, id) twice, the last output wins. */
function dedupeOutputs(rows: readonly EvaluatedRow[]): EvaluatedRow[] {
  if (rows.length <= 1) return rows as EvaluatedRow[];
  const byKey = new Map<string, EvaluatedRow>();
  for (const row of rows) byKey.set(refKey(row), row);
  return byKey.size === rows.length ? (rows as EvaluatedRow[]) : [...byKey.values()];
}

/** The references to remember for the next diff of this row. */
export function bucketRefs(rows: readonly EvaluatedRow[]): BucketRowRef[] {
  return rows.map((r) => ({ bucket: r.bucket, table: r.table, id: r.id }));
}

/** A parameter-index entry to write for one source row: outputs, or `[]` to stop granting. */
export interface ParameterEntryChange {
  /** Serialized lookup key. */
  readonly lookup: string;
  readonly outputs: readonly SqliteRow[];
}

/**
 * Parameter entries to write: the row's current entries (merged per lookup key), plus an
 * empty entry for every lookup it produced before and no longer does.
 */
export function diffParameterLookups(
  previous: readonly string[],
  next: ReadonlyArray<{ lookup: string; outputs: readonly SqliteRow[] }>,
): { changes: ParameterEntryChange[]; current: string[] } {
  const merged = new Map<string, SqliteRow[]>();
  for (const entry of next) {
    const list = merged.get(entry.lookup);
    if (list) list.push(...entry.outputs);
    else merged.set(entry.lookup, [...entry.outputs]);
  }
  const changes: ParameterEntryChange[] = [];
  for (const [lookup, outputs] of merged) changes.push({ lookup, outputs });
  for (const lookup of previous) if (!merged.has(lookup)) changes.push({ lookup, outputs: [] });
  return { changes, current: [...merged.keys()] };
}
