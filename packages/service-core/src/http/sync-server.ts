/**
 * The HTTP API (sync-protocol.md "Endpoints"): `POST /sync/stream` (NDJSON or BSON, gzip
 * when asked, written with back-pressure and flushed per line), write checkpoints, and
 * probes. Errors before the first line become HTTP errors with the catalogue's JSON body
 * (401 `PSYNC_S21xx` so clients refresh their token); one connection's error never
 * affects another.
 */
import type { ServerResponse } from 'node:http';
import zlib from 'node:zlib';
import type { Logger } from '@bucketsync/lib-services';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import type { ConnectionLimits, SyncConfig } from '@bucketsync/sync-rules';
import cors from '@fastify/cors';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { SourceApi } from '../replication/source-module.js';
import type { BucketStorage } from '../storage/bucket-storage.js';
import { ByteBudget } from '../storage/byte-budget.js';
import type { SyncLine } from '../sync/sync-lines.js';
import { decodeSyncRequest } from '../sync/sync-request.js';
import { syncStream, type SyncIdentity } from '../sync/sync-stream.js';
import { chooseEncoding, encodeLine, NDJSON } from './sync-line-encoder.js';
import { RequestErrors, toServiceError } from './request-errors.js';
import { WriteCheckpointLimiter } from './write-checkpoint-limiter.js';
import { chooseStreamCompression, type GzipPolicy } from './stream-compression.js';

/** Verifies the `Authorization` header of a request (the token verifier). */
export interface Authenticator {
  verify(authorizationHeader: string | undefined): Promise<SyncIdentity>;
}

export interface SyncServerOptions {
  storage: BucketStorage;
  authenticator: Authenticator;
  /** The source's API, for write checkpoints' head position. */
  sourceApi: SourceApi | undefined;
  /** Compiles sync config text; callers cache by content. */
  compile(content: string): SyncConfig;
  logger: Logger;
  limits?: ConnectionLimits;
  keepaliveSeconds?: number;
  /** Request body limit in bytes. Default 1 MiB. */
  bodyLimit?: number;
  /** Offer the BSON stream to clients that accept it. Default true; false forces NDJSON. */
  allowBson?: boolean;
  /**
   * When streams are gzipped (`api.gzip`). Default `auto`: for clients that accept gzip, except
   * the Node SDK, whose gzip cost through fetch grows faster than the stream
   * (http/stream-compression.ts); `always` for every client that accepts it; `off` never.
   */
  gzip?: GzipPolicy;
  /** Most sync streams open at once (`api.parameters.max_concurrent_connections`). Default 1,000. */
  maxConcurrentConnections?: number;
  /**
   * Origins whose pages may call the API from a browser (`api.cors.origins`): `'*'` (the
   * default) for any, or a list of exact origins (`https://app.example.com`). Tokens travel in
   * the `Authorization` header, never in cookies, so allowing any origin lets no page act with
   * credentials it does not already hold.
   */
  corsOrigins?: '*' | readonly string[];
  /**
   * Bytes of sync data all streams may hold in memory at once (`api.sync_buffer_mb`): storage
   * reads not yet handed out and lines their clients have not drained. Over it, streams wait for
   * their next storage read. Default 256 MiB.
   */
  syncBufferBytes?: number;
  /**
   * A stream whose client takes nothing from its socket for this long is closed (the client
   * reconnects if it is still there), so a client that stopped reading holds nothing for long.
   * Default 60 s.
   */
  stalledStreamTimeoutMs?: number;
}

/** Default of `api.parameters.max_concurrent_connections`. */
export const DEFAULT_MAX_CONCURRENT_CONNECTIONS = 1000;
/** Default of `api.sync_buffer_mb`, in bytes. */
export const DEFAULT_SYNC_BUFFER_BYTES = 256 * 1024 * 1024;
/** How long a client may take nothing from its stream before the stream is closed. */
export const DEFAULT_STALLED_STREAM_TIMEOUT_MS = 60_000;

/**
 * Socket timeouts: the request line and headers within 10 s, the whole request (a body trickled
 * byte by byte) within 30 s, an idle keep-alive socket closed after 5 s. A sync stream's response
 * is not limited by them.
 */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

/** How long a readiness answer is reused. */
const READINESS_CACHE_MS = 1000;

/** Request headers the PowerSync SDKs send, allowed in CORS preflights. */
export const CORS_ALLOWED_HEADERS = ['Content-Type', 'Authorization', 'User-Agent', 'X-User-Agent', 'Accept'];
/** How long a browser may cache a preflight answer, seconds (Chromium caps it at 7,200). */
export const CORS_MAX_AGE_SECONDS = 7200;

/** The longest client id accepted (the SDKs send a UUID). */
export const MAX_CLIENT_ID_LENGTH = 200;

/** What is wrong with a client-supplied `client_id`, if anything (checked before any storage work). */
export function clientIdProblem(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length === 0) return 'required (the client id, a UUID for the SDKs)';
  if (value.length > MAX_CLIENT_ID_LENGTH) return `at most ${MAX_CLIENT_ID_LENGTH} characters`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return 'must not contain control characters';
  return undefined;
}

async function sendError(reply: FastifyReply, error: unknown, errors: RequestErrors): Promise<FastifyReply> {
  const answer = errors.answer(error);
  return reply.code(answer.status).headers(answer.headers).type('application/json').send(answer.body);
}

/** Resolves true on `drain` or abort, false when `ms` pass first. */
function drained(stream: NodeJS.WritableStream, signal: AbortSignal, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (value: boolean) => {
      clearTimeout(timer);
      stream.removeListener('drain', onDrain);
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const onDrain = () => done(true);
    const onAbort = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    stream.once('drain', onDrain);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Where one stream writes, and what it may hold while its client is slow. */
interface StreamOutput {
  stream: NodeJS.WritableStream;
  /** Bytes the socket has taken from us so far (stalls are judged by it). */
  sent(): number;
  budget: ByteBudget;
  stalledTimeoutMs: number;
}

/**
 * Writes with back-pressure: when the socket buffer is full, the line counts against the budget
 * until `drain`, and the wait ends when the stream is aborted (a client that went away never
 * drains). Returns false when the client took nothing for `stalledTimeoutMs`: the stream must end.
 */
async function write(out: StreamOutput, chunk: Buffer, signal: AbortSignal): Promise<boolean> {
  if (out.stream.write(chunk) || signal.aborted) return true;
  const lease = out.budget.force(chunk.length);
  try {
    let sent = out.sent();
    while (!(await drained(out.stream, signal, out.stalledTimeoutMs))) {
      if (out.sent() === sent) return false;
      sent = out.sent();
    }
    return true;
  } finally {
    lease.release();
  }
}

/**
 * What a sync server holds now: open sync streams, request handlers still running, the bytes of
 * sync data held against the budget and the storage reads waiting for it.
 */
export interface SyncServerActivity {
  openStreams: number;
  handlers: number;
  bufferedBytes: number;
  waitingReads: number;
}
const activity = new WeakMap<FastifyInstance, () => SyncServerActivity>();

/** The activity of a server made by `createSyncServer` (for tests, probes and metrics). */
export function syncServerActivity(app: FastifyInstance): SyncServerActivity {
  return activity.get(app)?.() ?? { openStreams: 0, handlers: 0, bufferedBytes: 0, waitingReads: 0 };
}

export async function createSyncServer(options: SyncServerOptions): Promise<FastifyInstance> {
  const { storage, authenticator, logger } = options;
  // forceCloseConnections: on close, sockets still held by clients (keep-alive after a stream
  // ended) are destroyed rather than waited for, so shutdown never hangs on a client.
  const bodyLimit = options.bodyLimit ?? 1024 * 1024;
  const app = Fastify({
    logger: false,
    bodyLimit,
    forceCloseConnections: true,
    requestTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
  });
  app.server.headersTimeout = HEADERS_TIMEOUT_MS;
  const openStreams = new Set<AbortController>();
  const errors = new RequestErrors(logger);
  const budget = new ByteBudget(options.syncBufferBytes ?? DEFAULT_SYNC_BUFFER_BYTES);
  const stalledTimeoutMs = options.stalledStreamTimeoutMs ?? DEFAULT_STALLED_STREAM_TIMEOUT_MS;

  // CORS on every route (web apps are served from their own origin): preflights answered for the
  // methods and headers the SDKs send; no credentials mode, since tokens are bearer headers.
  const origins = options.corsOrigins ?? '*';
  await app.register(cors, {
    origin: origins === '*' ? '*' : [...origins],
    methods: ['GET', 'POST', 'OPTIONS'],
    allowedHeaders: CORS_ALLOWED_HEADERS,
    credentials: false,
    maxAge: CORS_MAX_AGE_SECONDS,
  });

  // A malformed JSON body is a 400 naming the problem, like any other bad field; a body over
  // the limit stays a 413 and one of another type a 415, which clients can tell apart.
  app.setErrorHandler(async (error, _request, reply) => {
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 413) {
      await sendError(reply, new ServiceError(ErrorCode.REQUEST_TOO_LARGE, `body: over ${bodyLimit} bytes`), errors);
    } else if (status === 415) {
      await sendError(
        reply,
        new ServiceError(ErrorCode.REQUEST_UNSUPPORTED_TYPE, `content-type: send application/json`),
        errors,
      );
    } else if (status && status >= 400 && status < 500) {
      await sendError(reply, new ServiceError(ErrorCode.REQUEST_INVALID, `body: ${(error as Error).message}`), errors);
    } else {
      await sendError(reply, error, errors);
    }
  });

  app.get('/probes/liveness', async () => ({ ok: true }));
  // Readiness is asked often (every probe of every orchestrator): one storage lookup per second
  // at most, shared by the calls that arrive meanwhile.
  let readiness: { at: number; ready: Promise<boolean> } | undefined;
  const isReady = (): Promise<boolean> => {
    if (!readiness || Date.now() - readiness.at >= READINESS_CACHE_MS) {
      readiness = {
        at: Date.now(),
        ready: storage.getActiveSyncConfig().then(
          (config) => config !== undefined,
          () => false,
        ),
      };
    }
    return readiness.ready;
  };
  app.get('/probes/readiness', async (_request, reply) => {
    if (!(await isReady())) return reply.code(503).send({ ready: false, reason: 'no sync config is active yet' });
    return { ready: true };
  });

  // Every request handler that uses storage or the source, from its first await to its last:
  // shutdown waits for them before storage closes, so none touches a closed pool.
  const inFlight = new Set<Promise<unknown>>();
  const track = <T>(handled: Promise<T>): Promise<T> => {
    inFlight.add(handled);
    void handled.finally(() => inFlight.delete(handled)).catch(() => undefined);
    return handled;
  };

  // The token is verified from the headers, before the body is read: a client without a valid
  // token never gets to send (or trickle) a body.
  const identities = new WeakMap<FastifyRequest, SyncIdentity>();
  // A hook that answers returns the reply, so Fastify runs no handler after it.
  const authenticate = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    try {
      identities.set(request, await authenticator.verify(request.headers.authorization));
      return undefined;
    } catch (e) {
      return sendError(reply, e, errors);
    }
  };
  const identityOf = (request: FastifyRequest): SyncIdentity => {
    const identity = identities.get(request);
    if (!identity) throw new ServiceError(ErrorCode.INTERNAL, 'a request reached its handler unauthenticated');
    return identity;
  };
  // Over the cap a new stream is refused before anything is read (PowerSync's PSYNC_S2304).
  const maxStreams = options.maxConcurrentConnections ?? DEFAULT_MAX_CONCURRENT_CONNECTIONS;
  const capStreams = async (_request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    if (openStreams.size >= maxStreams) {
      return sendError(
        reply,
        new ServiceError(
          ErrorCode.TOO_MANY_CONNECTIONS,
          `${openStreams.size} sync streams are open, the most this process serves (api.parameters.max_concurrent_connections)`,
        ),
        errors,
      );
    }
    return undefined;
  };

  // Each costs a read of the source's head: at most 5 per second per user, bursts of 10.
  const writeCheckpointLimiter = new WriteCheckpointLimiter();

  const createWriteCheckpoint = async (request: FastifyRequest, clientId: unknown, reply: FastifyReply) => {
    try {
      const identity = identityOf(request);
      const problem = clientIdProblem(clientId);
      if (problem) throw new ServiceError(ErrorCode.REQUEST_INVALID, `client_id: ${problem}`);
      writeCheckpointLimiter.admit(identity.userId);
      if (!options.sourceApi)
        throw new ServiceError(ErrorCode.INTERNAL, 'no source is configured for write checkpoints');
      const headPosition = await options.sourceApi.headPosition();
      const id = await storage.createManagedWriteCheckpoint({
        userId: identity.userId,
        clientId: clientId as string,
        headPosition,
      });
      return reply.send({ data: { write_checkpoint: id.toString() } });
    } catch (e) {
      return sendError(reply, e, errors);
    }
  };
  app.get('/write-checkpoint2.json', { onRequest: authenticate }, (request, reply) =>
    track(createWriteCheckpoint(request, (request.query as Record<string, unknown>).client_id, reply)),
  );
  app.post('/sync/checkpoint-request', { onRequest: authenticate }, (request, reply) =>
    track(createWriteCheckpoint(request, (request.body as Record<string, unknown> | undefined)?.client_id, reply)),
  );

  app.post('/sync/stream', { onRequest: [capStreams, authenticate] }, (request, reply) => {
    const abort = new AbortController();
    openStreams.add(abort);
    return track(serveStream(request, reply, abort).finally(() => openStreams.delete(abort)));
  });

  const serveStream = async (request: FastifyRequest, reply: FastifyReply, abort: AbortController): Promise<void> => {
    let lines: AsyncGenerator<SyncLine> | undefined;
    let first: IteratorResult<SyncLine> | undefined;
    // The response's close means the client went away (the request's close only means its body was read).
    reply.raw.on('close', () => abort.abort());
    try {
      const identity = identityOf(request);
      const body = decodeSyncRequest(request.body);
      lines = syncStream({
        storage,
        identity,
        request: body,
        signal: abort.signal,
        compile: options.compile,
        logger: logger.child({ user: identity.userId }),
        ...(options.limits ? { limits: options.limits } : {}),
        ...(options.keepaliveSeconds !== undefined ? { keepaliveSeconds: options.keepaliveSeconds } : {}),
        budget,
      });
      // The first line decides the status: errors before it are proper HTTP errors.
      first = await lines.next();
    } catch (e) {
      abort.abort();
      await lines?.return(undefined);
      return sendError(reply, e, errors);
    }

    const encoding = options.allowBson === false ? NDJSON : chooseEncoding(request.headers.accept);
    const userAgent = request.headers['x-user-agent'] ?? request.headers['user-agent'];
    const gzip =
      chooseStreamCompression({
        acceptEncoding: request.headers['accept-encoding'],
        userAgent: Array.isArray(userAgent) ? userAgent.join(' ') : userAgent,
        policy: options.gzip ?? 'auto',
      }) === 'gzip';
    reply.hijack();
    const res: ServerResponse = reply.raw;
    res.writeHead(200, {
      // Headers hooks set on the reply (CORS) are not sent by a hijacked reply: carry them over.
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': encoding === NDJSON ? `${NDJSON}; charset=utf-8` : encoding,
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      ...(gzip ? { 'content-encoding': 'gzip' } : {}),
    });
    // Level 1: sync data is repetitive JSON that compresses well even at the fastest level, and
    // the default level costs several times the CPU for a few percent of size.
    const zip = gzip ? zlib.createGzip({ flush: zlib.constants.Z_SYNC_FLUSH, level: 1 }) : undefined;
    zip?.pipe(res);
    const socket = res.socket;
    const out: StreamOutput = {
      stream: zip ?? res,
      sent: () => socket?.bytesWritten ?? 0,
      budget,
      stalledTimeoutMs,
    };
    let stalled = false;
    const clientGone = () => stalled || res.destroyed || res.writableEnded;
    try {
      for (let next = first; !next.done; next = await lines.next()) {
        if (!(await write(out, encodeLine(next.value, encoding), abort.signal))) {
          stalled = true;
          logger.debug('closing a sync stream whose client took nothing for a while', {
            seconds: stalledTimeoutMs / 1000,
          });
          break;
        }
        if (abort.signal.aborted) break;
      }
    } catch (e) {
      // Mid-stream: the status is sent; end the stream and let the client reconnect.
      if (!abort.signal.aborted) logger.warn('sync stream failed', { error: toServiceError(e) });
    } finally {
      abort.abort();
      await lines.return(undefined).catch(() => undefined);
      if (clientGone()) {
        // Nothing more can reach the client: free the compressor and the socket at once.
        zip?.destroy();
        res.destroy();
      } else if (zip) zip.end();
      else res.end();
    }
  };

  activity.set(app, () => ({
    openStreams: openStreams.size,
    handlers: inFlight.size,
    bufferedBytes: budget.used,
    waitingReads: budget.waiting,
  }));

  // preClose, not onClose: the server only finishes closing once every response has ended,
  // so open sync streams are ended first (their clients reconnect to another process), and
  // their handlers are waited for so that storage closes only after the last one let go of it.
  app.addHook('preClose', async () => {
    for (const abort of openStreams) abort.abort();
    await Promise.allSettled([...inFlight]);
  });
  return app;
}
