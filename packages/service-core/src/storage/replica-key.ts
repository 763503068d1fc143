/**
 * Replica keys: the text form of a row's identifying columns, under which storage keeps the
 * row's current record (buckets, lookups, tombstone). Deterministic and exact for every
 * SQLite value, so the same source row always maps to the same key on every backend.
 */
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import type { SourceTableRef, SqliteRow, SqliteValue } from './storage-types.js';

function encodeValue(value: SqliteValue | undefined): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'bigint':
      return value.toString(10);
    case 'number':
      // REAL is kept apart from INTEGER: 1.0 (REAL) and 1 (INTEGER) are different keys.
      return Number.isFinite(value) ? `r${value}` : `r${String(value)}`;
    default:
      return `x${Buffer.from(value).toString('hex')}`;
  }
}

/**
 * The replica key of `row` for the given identifying columns: a compact JSON-like array.
 * Throws ServiceError REQUEST_INVALID when `columns` is empty (a table without a key cannot
 * be replicated row by row).
 */
export function replicaKey(row: SqliteRow, columns: readonly string[]): string {
  if (columns.length === 0) {
    throw new ServiceError(ErrorCode.REQUEST_INVALID, 'a table needs at least one replica identity column');
  }
  if (columns.length === 1) return `[${encodeValue(row[columns[0]!])}]`;
  let out = '[';
  for (let i = 0; i < columns.length; i++) {
    if (i > 0) out += ',';
    out += encodeValue(row[columns[i]!]);
  }
  return out + ']';
}

/**
 * The op subkey for rows of a source table: `<schema>.<table>/<replica key>`. Stable across
 * schema versions of the table (it uses the table's name, not its storage id), so a
 * re-snapshot supersedes the old ops; readable in diagnostics.
 */
export function opSubkey(table: SourceTableRef, key: string): string {
  return `${table.schema}.${table.name}/${key}`;
}
