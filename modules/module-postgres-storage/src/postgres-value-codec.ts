/**
 * Exact JSON encoding of SQLite rows for stored parameter-index outputs: bigint and blob
 * values would not survive plain JSON, so they are tagged (`{"i":"123"}`, `{"b":"<hex>"}`).
 */
import type { SqliteRow, SqliteValue } from '@bucketsync/service-core';

function encodeValue(value: SqliteValue): unknown {
  if (typeof value === 'bigint') return { i: value.toString() };
  if (value instanceof Uint8Array) return { b: Buffer.from(value).toString('hex') };
  if (typeof value === 'number' && !Number.isFinite(value)) return { r: String(value) };
  return value;
}

function decodeValue(value: unknown): SqliteValue {
  if (value === null || typeof value === 'string' || typeof value === 'number') return value;
  const tagged = value as { i?: string; b?: string; r?: string };
  if (tagged.i !== undefined) return BigInt(tagged.i);
  if (tagged.b !== undefined) return new Uint8Array(Buffer.from(tagged.b, 'hex'));
  if (tagged.r !== undefined) return Number(tagged.r);
  return null;
}

/** Rows to stored JSON text. */
export function encodeRows(rows: readonly SqliteRow[]): string {
  return JSON.stringify(
    rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, encodeValue(v)]))),
  );
}

/** Stored JSON text back to rows. */
export function decodeRows(text: string): SqliteRow[] {
  const raw = JSON.parse(text) as Record<string, unknown>[];
  return raw.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, decodeValue(v)])));
}
