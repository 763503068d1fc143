/**
 * One flaky client: a raw `POST /sync/stream` over node:http that follows its plan (flaky-plan.ts)
 * and drops the connection where the plan says, never parsing the body, so one process can start
 * hundreds a second. Reports what happened: status, bytes read, who ended the connection, and
 * the write checkpoint call if it made one.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { FlakyPlan } from './flaky-plan.js';

const NDJSON = 'application/x-ndjson';
const BSON_STREAM = 'application/vnd.powersync.bson-stream';

/** What one HTTP exchange came to. */
export interface FlakyAnswer {
  /** HTTP status, if the response headers arrived. */
  status: number | undefined;
  /** The `error.code` of an error answer's JSON body, if any. */
  code?: string;
  /** A socket error not caused by this client (ECONNREFUSED, ECONNRESET, ...). */
  error?: string;
}

export interface FlakyOutcome extends FlakyAnswer {
  plan: FlakyPlan;
  /** Body bytes read, as they came over the wire (gzipped for a gzip stream). */
  bytes: number;
  /**
   * `dropped`: this client closed the connection (as planned, or at its lifetime cap);
   * `answered`: a complete non-200 answer; `service-ended`: the service ended a 200 stream;
   * `error`: the connection failed.
   */
  end: 'dropped' | 'answered' | 'service-ended' | 'error';
  /** Where a drop happened: before the response headers, with no body read, or with some body read. */
  droppedAt?: 'before-headers' | 'after-headers' | 'mid-data';
  /** A 200 answer's content type and encoding were the ones asked for (undefined without a 200). */
  answeredAsAsked?: boolean;
  /** Dropped by the lifetime cap before the planned drop point was reached. */
  cappedByLifetime: boolean;
  /** Milliseconds from the start until the response headers arrived, if they did. */
  headersMs?: number;
  /** Milliseconds from the start until the TCP connection was up, if it came up. */
  connectedMs?: number;
  writeCheckpoint?: FlakyAnswer;
  durationMs: number;
}

export interface FlakyConnectionOptions {
  endpoint: URL;
  token: string;
  agent: http.Agent;
  /** Every connection is dropped by then, whatever its plan (a stream with nothing more to send never ends). */
  maxLifeMs: number;
  /** Drops the connection at once (the end of the run). */
  signal: AbortSignal;
}

/** The `error.code` of an error body (sync-protocol.md "Auth"), if it is one. */
function errorCode(body: string): string | undefined {
  try {
    const code = (JSON.parse(body) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

/** `GET /write-checkpoint2.json?client_id=...`: its status and error code. */
function writeCheckpoint(clientId: string, options: FlakyConnectionOptions): Promise<FlakyAnswer> {
  return new Promise((resolve) => {
    let answer: FlakyAnswer = { status: undefined };
    let timedOut = false;
    const request = http.get(
      {
        host: options.endpoint.hostname,
        port: options.endpoint.port,
        path: `/write-checkpoint2.json?client_id=${encodeURIComponent(clientId)}`,
        agent: options.agent,
        headers: { authorization: `Token ${options.token}` },
        signal: options.signal,
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (d: string) => (body += body.length < 2000 ? d : ''));
        response.on('end', () => {
          const code = response.statusCode === 200 ? undefined : errorCode(body);
          answer = { status: response.statusCode, ...(code ? { code } : {}) };
        });
      },
    );
    const timer = setTimeout(() => {
      timedOut = true;
      request.destroy();
    }, options.maxLifeMs);
    request.on('error', (e: NodeJS.ErrnoException) => {
      if (answer.status === undefined && !timedOut && !options.signal.aborted)
        answer = { status: undefined, error: e.code ?? e.message };
    });
    request.on('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

/** Runs one flaky connection to its end; never rejects. */
export async function runFlakyConnection(plan: FlakyPlan, options: FlakyConnectionOptions): Promise<FlakyOutcome> {
  const clientId = randomUUID();
  const checkpoint = plan.writeCheckpoint ? writeCheckpoint(clientId, options) : undefined;
  const stream = streamOnce(plan, clientId, options);
  const [outcome, wc] = await Promise.all([stream, checkpoint]);
  return wc ? { ...outcome, writeCheckpoint: wc } : outcome;
}

function streamOnce(plan: FlakyPlan, clientId: string, options: FlakyConnectionOptions): Promise<FlakyOutcome> {
  const started = performance.now();
  const body = JSON.stringify({
    buckets: [],
    include_checksum: true,
    raw_data: true,
    client_id: clientId,
    parameters: {},
  });
  return new Promise((resolve) => {
    let response: http.IncomingMessage | undefined;
    let headersMs: number | undefined;
    let connectedMs: number | undefined;
    let status: number | undefined;
    let bytes = 0;
    let errorBody = '';
    let answeredAsAsked: boolean | undefined;
    let dropped = false;
    let cappedByLifetime = false;
    let serviceEnded = false;
    let failure: string | undefined;
    const timers: NodeJS.Timeout[] = [];
    const after = (ms: number, f: () => void) => timers.push(setTimeout(f, ms));

    const request = http.request({
      host: options.endpoint.hostname,
      port: options.endpoint.port,
      path: '/sync/stream',
      method: 'POST',
      agent: options.agent,
      headers: {
        authorization: `Token ${options.token}`,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        accept: plan.encoding === 'bson' ? `${BSON_STREAM}, ${NDJSON};q=0.5` : NDJSON,
        'accept-encoding': plan.gzip ? 'gzip' : 'identity',
      },
    });
    const drop = () => {
      if (dropped || serviceEnded) return;
      dropped = true;
      request.destroy();
    };
    const onAbort = () => drop();
    options.signal.addEventListener('abort', onAbort, { once: true });
    after(options.maxLifeMs, () => {
      if (!dropped && !serviceEnded && status === 200) cappedByLifetime = true;
      drop();
    });

    request.on('error', (e: NodeJS.ErrnoException) => {
      if (!dropped) failure ??= e.code ?? e.message;
    });
    request.on('close', () => {
      for (const t of timers) clearTimeout(t);
      options.signal.removeEventListener('abort', onAbort);
      const end: FlakyOutcome['end'] =
        status !== undefined && status !== 200 && failure === undefined && !dropped
          ? 'answered'
          : serviceEnded
            ? 'service-ended'
            : dropped
              ? 'dropped'
              : 'error';
      const code = status !== undefined && status !== 200 ? errorCode(errorBody) : undefined;
      resolve({
        plan,
        status,
        ...(code ? { code } : {}),
        ...(end === 'error' ? { error: failure ?? 'the connection closed without an answer or an end' } : {}),
        bytes,
        end,
        ...(end === 'dropped'
          ? { droppedAt: response === undefined ? 'before-headers' : bytes > 0 ? 'mid-data' : 'after-headers' }
          : {}),
        ...(answeredAsAsked !== undefined ? { answeredAsAsked } : {}),
        cappedByLifetime,
        ...(headersMs !== undefined ? { headersMs } : {}),
        ...(connectedMs !== undefined ? { connectedMs } : {}),
        durationMs: Math.round(performance.now() - started),
      });
    });

    request.on('socket', (socket) =>
      socket.once('connect', () => (connectedMs = Math.round(performance.now() - started))),
    );
    const { drop: point } = plan;
    if (point.kind === 'before-headers') request.on('finish', () => after(point.afterMs, drop));

    request.on('response', (res) => {
      response = res;
      headersMs = Math.round(performance.now() - started);
      status = res.statusCode;
      // "aborted" after our own drop is expected; otherwise the service broke the stream off.
      res.on('error', (e: NodeJS.ErrnoException) => {
        if (!dropped) failure ??= e.code ?? e.message;
      });
      if (status !== 200) {
        res.setEncoding('utf8');
        res.on('data', (d: string) => (errorBody += errorBody.length < 2000 ? d : ''));
        return;
      }
      const type = String(res.headers['content-type'] ?? '');
      const gzipped = res.headers['content-encoding'] === 'gzip';
      answeredAsAsked = type.startsWith(plan.encoding === 'bson' ? BSON_STREAM : NDJSON) && gzipped === plan.gzip;
      res.on('end', () => {
        if (!dropped) serviceEnded = true;
      });
      switch (point.kind) {
        case 'before-headers': // the headers were quicker than the planned drop
        case 'after-headers':
          return drop();
        case 'after-bytes':
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            if (bytes >= point.bytes) drop();
          });
          return;
        case 'stall': {
          const stall = () => {
            res.pause();
            after(point.stallMs, drop);
          };
          if (point.bytes === 0) return stall();
          const onData = (chunk: Buffer) => {
            bytes += chunk.length;
            if (bytes < point.bytes) return;
            res.off('data', onData);
            stall();
          };
          res.on('data', onData);
          return;
        }
        case 'slow':
          after(point.forMs, drop);
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            res.pause();
            after((chunk.length / point.bytesPerSecond) * 1000, () => res.resume());
          });
          return;
      }
    });
    request.end(body);
  });
}
