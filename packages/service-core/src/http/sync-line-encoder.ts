/**
 * Encodes sync lines for the wire: NDJSON (one JSON object per line) or the BSON stream
 * (concatenated BSON documents), chosen by the request's `Accept` header and q-values.
 */
import { serialize } from 'bson';
import type { SyncLine } from '../sync/sync-lines.js';

export const NDJSON = 'application/x-ndjson';
export const BSON_STREAM = 'application/vnd.powersync.bson-stream';

export type SyncEncoding = typeof NDJSON | typeof BSON_STREAM;

/** The preferred supported type in an Accept header; NDJSON when nothing matches. */
export function chooseEncoding(accept: string | undefined): SyncEncoding {
  let best: { type: SyncEncoding; q: number } = { type: NDJSON, q: 0 };
  for (const part of (accept ?? '').split(',')) {
    const [type, ...params] = part.trim().split(';');
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    const normalized = type?.trim().toLowerCase();
    if ((normalized === NDJSON || normalized === BSON_STREAM) && q > best.q) best = { type: normalized, q };
  }
  return best.type;
}

export function encodeLine(line: SyncLine, encoding: SyncEncoding): Buffer {
  if (encoding === BSON_STREAM) return Buffer.from(serialize(line as unknown as Record<string, unknown>));
  return Buffer.from(`${JSON.stringify(line)}\n`);
}
