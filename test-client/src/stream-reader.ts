/**
 * Framing of a sync response body into line objects. NDJSON: one JSON object per `\n`-ended
 * line. BSON stream: concatenated BSON documents, each starting with its own int32
 * little-endian total length. Chunks may split a line or document anywhere.
 */
import { deserialize } from 'bson';

/** The two response formats of `POST /sync/stream`, chosen by the request's Accept header. */
export type SyncStreamFormat = 'ndjson' | 'bson';

export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';
export const BSON_CONTENT_TYPE = 'application/vnd.powersync.bson-stream';

/** Largest BSON document accepted; a bigger length prefix means the stream is not BSON. */
const MAX_BSON_DOCUMENT_BYTES = 64 * 1024 * 1024;

/** The body is not valid NDJSON / BSON; the message says where. */
export class SyncStreamFramingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SyncStreamFramingError';
  }
}

/** Turns byte chunks into line objects; `end` flushes and rejects a truncated tail. */
export interface SyncStreamFramer {
  push(chunk: Uint8Array): unknown[];
  end(): unknown[];
}

/** NDJSON framing; blank lines are skipped, a final line without `\n` is accepted. */
export class NdjsonFramer implements SyncStreamFramer {
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private pending = '';
  private lineNumber = 0;

  push(chunk: Uint8Array): unknown[] {
    // stream: true keeps a multi-byte character split across chunks for the next call.
    this.pending += this.decode(chunk);
    const lines: unknown[] = [];
    let newline: number;
    while ((newline = this.pending.indexOf('\n')) >= 0) {
      const text = this.pending.slice(0, newline);
      this.pending = this.pending.slice(newline + 1);
      this.parse(text, lines);
    }
    return lines;
  }

  end(): unknown[] {
    this.pending += this.decode();
    const lines: unknown[] = [];
    this.parse(this.pending, lines);
    this.pending = '';
    return lines;
  }

  private decode(chunk?: Uint8Array): string {
    try {
      return chunk ? this.decoder.decode(chunk, { stream: true }) : this.decoder.decode();
    } catch {
      throw new SyncStreamFramingError(`line ${this.lineNumber + 1} of the NDJSON stream is not valid UTF-8`);
    }
  }

  private parse(text: string, into: unknown[]): void {
    this.lineNumber++;
    if (text.trim() === '') return;
    try {
      into.push(JSON.parse(text));
    } catch (error) {
      const shown = text.length > 80 ? `${text.slice(0, 77)}...` : text;
      throw new SyncStreamFramingError(
        `line ${this.lineNumber} of the NDJSON stream is not JSON (${(error as Error).message}): ${shown}`,
      );
    }
  }
}

/** BSON stream framing: waits until a whole length-prefixed document is buffered. */
export class BsonFramer implements SyncStreamFramer {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private offset = 0;

  push(chunk: Uint8Array): unknown[] {
    if (chunk.byteLength > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.byteLength;
    }
    const documents: unknown[] = [];
    while (this.buffered >= 4) {
      const length = this.peekLength();
      if (length < 5 || length > MAX_BSON_DOCUMENT_BYTES) {
        throw new SyncStreamFramingError(
          `BSON stream byte ${this.offset}: document length ${length} is not plausible; is the response BSON?`,
        );
      }
      if (this.buffered < length) break;
      const bytes = this.take(length);
      try {
        // int64 values (op ids, checksums from some encoders) arrive as bigint, never lossy.
        documents.push(deserialize(bytes, { useBigInt64: true }));
      } catch (error) {
        throw new SyncStreamFramingError(`BSON stream byte ${this.offset}: ${(error as Error).message}`);
      }
      this.offset += length;
    }
    return documents;
  }

  end(): unknown[] {
    if (this.buffered > 0) {
      throw new SyncStreamFramingError(
        `the BSON stream ended inside a document (${this.buffered} bytes left at byte ${this.offset})`,
      );
    }
    return [];
  }

  private peekLength(): number {
    const head = this.chunks[0]!.byteLength >= 4 ? this.chunks[0]! : this.take(4, false);
    return new DataView(head.buffer, head.byteOffset, 4).getInt32(0, true);
  }

  /** Removes (or, with consume false, only copies) the first n buffered bytes. */
  private take(n: number, consume = true): Uint8Array {
    const first = this.chunks[0]!;
    let out: Uint8Array;
    if (first.byteLength >= n) {
      out = first.subarray(0, n);
    } else {
      out = new Uint8Array(n);
      let filled = 0;
      for (const c of this.chunks) {
        const part = c.subarray(0, Math.min(c.byteLength, n - filled));
        out.set(part, filled);
        filled += part.byteLength;
        if (filled === n) break;
      }
    }
    if (!consume) return out;
    let left = n;
    while (left > 0) {
      const c = this.chunks[0]!;
      if (c.byteLength <= left) {
        this.chunks.shift();
        left -= c.byteLength;
      } else {
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.buffered -= n;
    return out;
  }
}

/** A framer for the format. */
export function createFramer(format: SyncStreamFormat): SyncStreamFramer {
  return format === 'bson' ? new BsonFramer() : new NdjsonFramer();
}

/** The format a response's Content-Type names, or the fallback when it names neither. */
export function formatOfContentType(contentType: string | null, fallback: SyncStreamFormat): SyncStreamFormat {
  const type = contentType?.split(';')[0]?.trim().toLowerCase();
  if (type === BSON_CONTENT_TYPE) return 'bson';
  if (type === NDJSON_CONTENT_TYPE) return 'ndjson';
  return fallback;
}

/** Yields the line objects of a response body (a fetch Response's body is such an iterable). */
export async function* readSyncLines(
  body: AsyncIterable<Uint8Array>,
  format: SyncStreamFormat,
): AsyncGenerator<unknown, void, undefined> {
  const framer = createFramer(format);
  for await (const chunk of body) yield* framer.push(chunk);
  yield* framer.end();
}
