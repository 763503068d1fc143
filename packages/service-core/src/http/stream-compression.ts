/**
 * Chooses how a sync stream is compressed, per client. Browsers decompress gzip natively and
 * fast, so they get it when they ask. The Node SDK (`@powersync/node`, `x-user-agent` naming
 * `powersync-node`) asks for gzip through Node's fetch, and through the SDK its cost grows
 * faster than the stream: measured here, a 1,000,000-row first sync took 207 s with gzip against 65 s
 * without (200,000 rows: 16 s against 15 s), so it gets the stream uncompressed (docs/self-hosting.md, "Compression").
 */

/** `gzip` or `identity` (no compression) for one sync stream. */
export type StreamCompression = 'gzip' | 'identity';

/** Clients whose decompression of long gzip streams costs more than the bytes it saves. */
const SLOW_GZIP_CLIENTS = /\bpowersync-node\b/i;

/**
 * True when `Accept-Encoding` accepts gzip: listed (or `*`) with a q-value above 0. Linear in the
 * header's length; a header over 1 KiB (no client sends one) is read as not accepting gzip.
 */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding || acceptEncoding.length > 1024) return false;
  let gzip: number | undefined;
  let any: number | undefined;
  for (const part of acceptEncoding.split(',')) {
    const [name, ...params] = part.split(';');
    const coding = name!.trim().toLowerCase();
    const qParam = params.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith('q='));
    const parsed = qParam === undefined ? 1 : Number(qParam.slice(2));
    const q = Number.isFinite(parsed) ? parsed : 0;
    if (coding === 'gzip' || coding === 'x-gzip') gzip = q;
    else if (coding === '*') any = q;
  }
  return (gzip ?? any ?? 0) > 0;
}

/**
 * The operator's choice (`api.gzip`): `auto` (true, the default) gzips for clients that accept
 * it unless their gzip decompression is known to be slow; `always` for every client that accepts
 * it (when bytes on the wire cost more than client CPU); `off` (false) never.
 */
export type GzipPolicy = 'auto' | 'always' | 'off';

/** The compression of one sync stream under `policy`. */
export function chooseStreamCompression(request: {
  acceptEncoding: string | undefined;
  userAgent: string | undefined;
  policy: GzipPolicy;
}): StreamCompression {
  if (request.policy === 'off' || !acceptsGzip(request.acceptEncoding)) return 'identity';
  if (
    request.policy === 'auto' &&
    request.userAgent &&
    request.userAgent.length <= 1024 &&
    SLOW_GZIP_CLIENTS.test(request.userAgent)
  ) {
    return 'identity';
  }
  return 'gzip';
}
