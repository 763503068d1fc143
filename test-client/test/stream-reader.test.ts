import { serialize } from 'bson';
import { describe, expect, it } from 'vitest';
import {
  BsonFramer,
  NdjsonFramer,
  SyncStreamFramingError,
  formatOfContentType,
  readSyncLines,
} from '../src/stream-reader.js';

const lines = [
  { checkpoint: { last_op_id: '2', buckets: [{ bucket: 'b', checksum: -3, count: 2 }] } },
  { data: { bucket: 'b', data: [{ op_id: '1', op: 'PUT', object_type: 't', object_id: 'é€😀', data: '{"a":1}' }] } },
  { checkpoint_complete: { last_op_id: '2' } },
];

function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Splits bytes into pieces at the given offsets. */
function splitAt(bytes: Uint8Array, offsets: number[]): Uint8Array[] {
  const cuts = [0, ...offsets, bytes.byteLength];
  return cuts.slice(1).map((end, i) => bytes.subarray(cuts[i], end));
}

function frameAll(framer: NdjsonFramer | BsonFramer, chunks: Uint8Array[]): unknown[] {
  return [...chunks.flatMap((c) => framer.push(c)), ...framer.end()];
}

async function* iterate(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const c of chunks) yield c;
}

describe('NDJSON framing', () => {
  const text = `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`;
  const bytes = bytesOf(text);

  it('yields each line once however the chunks split it, including inside a multi-byte character', () => {
    for (let cut = 1; cut < bytes.byteLength; cut++) {
      expect(frameAll(new NdjsonFramer(), splitAt(bytes, [cut]))).toEqual(lines);
    }
    const oneByteChunks = Array.from(bytes, (b) => Uint8Array.of(b));
    expect(frameAll(new NdjsonFramer(), oneByteChunks)).toEqual(lines);
  });

  it('returns nothing until a line is complete, skips blank lines and accepts a last line without newline', () => {
    const framer = new NdjsonFramer();
    expect(framer.push(bytesOf('{"token_expires_'))).toEqual([]);
    expect(framer.push(bytesOf('in":60}\n\n\r\n{"checkpoint_complete":'))).toEqual([{ token_expires_in: 60 }]);
    expect(framer.push(bytesOf('{"last_op_id":"1"}}'))).toEqual([]);
    expect(framer.end()).toEqual([{ checkpoint_complete: { last_op_id: '1' } }]);
  });

  it('names the line that is not JSON', () => {
    const framer = new NdjsonFramer();
    expect(() => framer.push(bytesOf('{"a":1}\n{"b":\n'))).toThrow(/line 2 of the NDJSON stream is not JSON/);
  });
});

describe('BSON stream framing', () => {
  const documents = lines.map((l) => serialize(l));
  const bytes = Buffer.concat(documents);

  it('yields each document once however the chunks split it, including inside the length prefix', () => {
    for (let cut = 1; cut < bytes.byteLength; cut++) {
      expect(frameAll(new BsonFramer(), splitAt(bytes, [cut]))).toEqual(lines);
    }
    const first = documents[0]!.byteLength;
    expect(frameAll(new BsonFramer(), splitAt(bytes, [1, 2, 3, first - 1, first + 2, first + 3]))).toEqual(lines);
    expect(
      frameAll(
        new BsonFramer(),
        Array.from(bytes, (b) => Uint8Array.of(b)),
      ),
    ).toEqual(lines);
  });

  it('reads int64 values as bigint so 64-bit op ids stay exact', () => {
    const [line] = frameAll(new BsonFramer(), [serialize({ checkpoint_complete: { last_op_id: 2n ** 63n - 1n } })]);
    expect(line).toEqual({ checkpoint_complete: { last_op_id: 2n ** 63n - 1n } });
  });

  it('rejects a stream that ends inside a document', () => {
    const framer = new BsonFramer();
    expect(framer.push(bytes.subarray(0, bytes.byteLength - 3))).toHaveLength(2);
    expect(() => framer.end()).toThrow(/ended inside a document \(\d+ bytes left/);
  });

  it('rejects bytes that are not BSON, such as NDJSON', () => {
    expect(() => new BsonFramer().push(bytesOf('{"checkpoint":{}}\n'))).toThrow(SyncStreamFramingError);
  });
});

describe('readSyncLines', () => {
  it('reads line objects from an async body of chunks in either format', async () => {
    const ndjson = bytesOf(lines.map((l) => JSON.stringify(l)).join('\n'));
    const bson = Buffer.concat(lines.map((l) => serialize(l)));
    const collect = async (chunks: Uint8Array[], format: 'ndjson' | 'bson') => {
      const out: unknown[] = [];
      for await (const line of readSyncLines(iterate(chunks), format)) out.push(line);
      return out;
    };
    expect(await collect(splitAt(ndjson, [5, 50, 51]), 'ndjson')).toEqual(lines);
    expect(await collect(splitAt(bson, [5, 50, 51]), 'bson')).toEqual(lines);
  });

  it('chooses the format from the response Content-Type', () => {
    expect(formatOfContentType('application/vnd.powersync.bson-stream', 'ndjson')).toBe('bson');
    expect(formatOfContentType('application/x-ndjson; charset=utf-8', 'bson')).toBe('ndjson');
    expect(formatOfContentType(null, 'bson')).toBe('bson');
  });
});
