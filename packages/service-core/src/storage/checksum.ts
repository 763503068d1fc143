/**
 * Op checksums (architecture.md section 6): a PUT hashes the row key and data, a REMOVE the
 * row key only; a bucket's checksum is the wrapping 32-bit sum of its ops' checksums, sent
 * as a signed 32-bit integer. Every backend uses these functions so checksums agree.
 */
import { crc32 } from 'node:zlib';

/** Identity of an output row inside a bucket: output table, row id, and source subkey. */
export interface OpRowKey {
  readonly table: string;
  readonly id: string;
  readonly subkey: string;
}

function rowKeyCrc(key: OpRowKey): number {
  // NUL separators: table names, ids and subkeys never contain NUL in JSON-safe text.
  return crc32(`${key.table}\u0000${key.id}\u0000${key.subkey}\u0000`);
}

/** Checksum of a PUT op: CRC-32 of the row key followed by the JSON data, as signed 32-bit. */
export function putChecksum(key: OpRowKey, data: string): number {
  return crc32(data, rowKeyCrc(key)) | 0;
}

/** Checksum of a REMOVE op: CRC-32 of the row key, as signed 32-bit. */
export function removeChecksum(key: OpRowKey): number {
  return rowKeyCrc(key) | 0;
}

/** Wrapping 32-bit addition; the result is signed, as sent on the wire. */
export function addChecksums(a: number, b: number): number {
  return (a + b) | 0;
}

/**
 * Folds a (possibly huge, e.g. a SQL `sum()` over millions of int4 values) integer sum into
 * a signed 32-bit checksum. Accepts number, bigint or decimal text.
 */
export function normaliseChecksum(sum: number | bigint | string): number {
  const big = typeof sum === 'bigint' ? sum : BigInt(sum);
  return Number(BigInt.asIntN(32, big));
}

/** Sum of many checksums, wrapping. */
export function sumChecksums(checksums: Iterable<number>): number {
  let total = 0;
  for (const c of checksums) total = (total + c) | 0;
  return total;
}
