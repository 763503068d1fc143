/**
 * Bulk writes with COPY ... FROM STDIN (text format): rows are encoded into large string
 * pieces and streamed, so a flush of thousands of ops is one round trip, not one statement
 * per row. Text escaping follows the Postgres COPY text format.
 */
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

const NEEDS_ESCAPE = /[\\\t\n\r]/;

/** One field in COPY text format; `null`/`undefined` is `\N`. */
export function copyField(value: string | number | bigint | null | undefined): string {
  if (value === null || value === undefined) return '\\N';
  if (typeof value !== 'string') return String(value);
  if (!NEEDS_ESCAPE.test(value)) return value;
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

const PIECE_BYTES = 1 << 20;

/**
 * Streams `rows` (each already an encoded line without the newline) into `COPY <target> FROM
 * STDIN`. Lines are joined into ~1 MiB pieces.
 */
export async function copyLines(client: pg.ClientBase, target: string, lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  function* pieces(): Generator<string> {
    let piece = '';
    for (const line of lines) {
      piece += line + '\n';
      if (piece.length >= PIECE_BYTES) {
        yield piece;
        piece = '';
      }
    }
    if (piece.length > 0) yield piece;
  }
  const stream = client.query(copyFrom(`COPY ${target} FROM STDIN`));
  await pipeline(Readable.from(pieces()), stream);
}
