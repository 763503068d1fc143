/**
 * A transparent HTTP proxy between the page and BucketSync that records each sync stream: its
 * token, bytes on the wire, and the lines and ops it carried (decompressed and decoded on the side;
 * the browser gets the bytes exactly as the service sent them, CORS headers included).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { deserialize } from 'bson';

/** One `POST /sync/stream` as seen by the proxy. */
export interface StreamRecord {
  authorization: string | undefined;
  status: number;
  /** The service's `Access-Control-Allow-Origin` answer. */
  allowOrigin: string | undefined;
  contentType: string;
  contentEncoding: string;
  /** Bytes sent to the browser (compressed if the service compressed). */
  wireBytes: number;
  /** Sync lines by kind: `checkpoint`, `checkpoint_diff`, `data`, `checkpoint_complete`, `token_expires_in`, ... */
  lines: Record<string, number>;
  /** Ops carried by `data` lines. */
  ops: number;
}

export interface SyncProxy {
  /** The endpoint the page's `fetchCredentials` hands to the SDK. */
  endpoint: string;
  streams: StreamRecord[];
  /** Paths of every request, in order (preflights as `OPTIONS /path`). */
  requests: string[];
  close(): Promise<void>;
}

function decompressor(encoding: string): zlib.Gunzip | zlib.BrotliDecompress | zlib.Inflate | undefined {
  if (encoding === 'gzip') return zlib.createGunzip();
  if (encoding === 'br') return zlib.createBrotliDecompress();
  if (encoding === 'deflate') return zlib.createInflate();
  return undefined;
}

/** Splits the decompressed stream into sync lines (BSON documents or NDJSON lines) and counts them. */
function countLines(body: Readable, bson: boolean, record: StreamRecord): void {
  let pending = Buffer.alloc(0);
  const count = (line: Record<string, unknown>) => {
    for (const kind of Object.keys(line)) {
      record.lines[kind] = (record.lines[kind] ?? 0) + 1;
      if (kind === 'data') record.ops += ((line.data as { data?: unknown[] }).data ?? []).length;
    }
  };
  body.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    for (;;) {
      if (bson) {
        if (pending.length < 4) break;
        const size = pending.readInt32LE(0);
        if (pending.length < size) break;
        count(deserialize(pending.subarray(0, size)));
        pending = pending.subarray(size);
      } else {
        const end = pending.indexOf(10);
        if (end < 0) break;
        const text = pending.subarray(0, end).toString('utf8').trim();
        pending = pending.subarray(end + 1);
        if (text) count(JSON.parse(text) as Record<string, unknown>);
      }
    }
  });
  body.on('error', () => undefined);
}

export async function startSyncProxy(target: string): Promise<SyncProxy> {
  const upstream = new URL(target);
  const streams: StreamRecord[] = [];
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method === 'OPTIONS' ? 'OPTIONS ' : ''}${req.url}`);
    const forward = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        if (req.method === 'POST' && req.url?.startsWith('/sync/stream')) {
          const record: StreamRecord = {
            authorization: req.headers.authorization,
            status: answer.statusCode ?? 0,
            allowOrigin: answer.headers['access-control-allow-origin'] as string | undefined,
            contentType: String(answer.headers['content-type'] ?? ''),
            contentEncoding: String(answer.headers['content-encoding'] ?? 'identity'),
            wireBytes: 0,
            lines: {},
            ops: 0,
          };
          streams.push(record);
          answer.on('data', (chunk: Buffer) => (record.wireBytes += chunk.length));
          if (record.status === 200) {
            const unzip = decompressor(record.contentEncoding);
            if (unzip) answer.pipe(unzip);
            countLines(unzip ?? answer, record.contentType.includes('bson'), record);
          }
        }
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    // The SDK cancels a stream by closing it: pass that on so the service sees the disconnect.
    res.on('close', () => forward.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    streams,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
