/**
 * One sync client of the soak: a `POST /sync/stream` NDJSON reader that resumes where it left
 * off when a stream ends. Cheap by default (data lines are counted, not parsed, so hundreds fit
 * in one process); a probe client parses everything, verifies bucket checksums at each
 * checkpoint_complete and reports when stamped rows become visible to the lag tracker.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { LagTracker } from './lag-tracker.js';

export interface SoakClientOptions {
  endpoint: URL;
  userId: string;
  /** A token for the user; called on every (re)connect. */
  token(): Promise<string>;
  agent: http.Agent;
  /** Set for probe clients: stamped rows they see are reported here. */
  probe?: LagTracker;
  /** Probe only: also report updates of the global bucket (one probe does, so each is reported once). */
  reportNotices?: boolean;
  /** Soak clock (milliseconds). */
  now(): number;
}

const DATA = Buffer.from('{"data":');
const OP_ID = Buffer.from('"op_id":');
const NEWLINE = 0x0a;

function startsWith(line: Buffer, prefix: Buffer): boolean {
  return line.length >= prefix.length && line.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

function countOccurrences(haystack: Buffer, needle: Buffer): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + needle.length)) n++;
  return n;
}

/** The `exp` claim of a JWT, in epoch seconds (Infinity when it has none). */
function tokenExpiry(token: string): number {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      exp?: number;
    };
    return typeof payload.exp === 'number' ? payload.exp : Infinity;
  } catch {
    return Infinity;
  }
}

interface WireBucket {
  bucket: string;
  checksum: number;
}

interface WireOp {
  op_id: string;
  op: string;
  object_type?: string;
  object_id?: string;
  checksum: number;
  data?: string | null;
}

/** Bucket state as of a checkpoint: what a resumed connection asks for, and (probe) running checksums. */
interface Holding {
  opId: string;
  buckets: Map<string, number>;
  /** Probe only: running checksum per bucket of the ops received. */
  sums: Map<string, number>;
  ops: number;
}

export class SoakClient {
  readonly clientId = randomUUID();
  /** Ops received in checkpoints that completed (data ops of an unfinished checkpoint are not counted until it completes). */
  ops = 0;
  lines = 0;
  checkpointsCompleted = 0;
  connects = 0;
  /** Streams that ended or failed while the soak was running, other than at their token's expiry. */
  unexpectedEnds = 0;
  /** Streams the service ended because their token expired (the client reconnects with a new one). */
  tokenExpiries = 0;
  /** Protocol problems: HTTP errors, malformed or out-of-order lines, checksum mismatches. */
  readonly problems: string[] = [];
  problemCount = 0;
  /** Soak clock time of the first checkpoint_complete. */
  firstCompleteAt: number | undefined;

  private stopped = false;
  private request: http.ClientRequest | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** The last completed checkpoint. */
  private held: Holding = { opId: '0', buckets: new Map(), sums: new Map(), ops: 0 };
  /** The checkpoint being received, if any. */
  private current: Holding | undefined;
  /** Probe only: stamped rows of the checkpoint being received. */
  private arriving: string[] = [];

  constructor(private readonly options: SoakClientOptions) {}

  get userId(): string {
    return this.options.userId;
  }

  /** Op id of the last completed checkpoint. */
  get completedOpId(): string {
    return this.held.opId;
  }

  start(): void {
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.request?.destroy();
  }

  private problem(text: string): void {
    this.problemCount++;
    if (this.problems.length < 5) this.problems.push(text);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.connects++;
    // Resume from the last completed checkpoint; anything after it is sent again.
    this.current = undefined;
    this.arriving = [];
    const body = JSON.stringify({
      buckets: [...this.held.buckets.keys()].map((name) => ({ name, after: this.held.opId })),
      include_checksum: true,
      raw_data: true,
      client_id: this.clientId,
      parameters: {},
    });
    let token: string;
    try {
      token = await this.options.token();
    } catch (e) {
      this.problem(`could not sign a token: ${(e as Error).message}`);
      return;
    }
    if (this.stopped) return;
    const { endpoint, agent } = this.options;
    const expiresAt = tokenExpiry(token);
    let ended = false;
    const onEnd = (why: string) => {
      if (ended) return;
      ended = true;
      this.request = undefined;
      if (this.stopped) return;
      // The service ends a stream when its token expires (sync-protocol.md "Keepalive").
      if (Date.now() / 1000 >= expiresAt - 1) {
        this.tokenExpiries++;
        void this.connect();
        return;
      }
      this.unexpectedEnds++;
      this.problem(`stream ended: ${why}`);
      this.retryTimer = setTimeout(() => void this.connect(), 1000);
    };
    const request = http.request(
      {
        host: endpoint.hostname,
        port: endpoint.port,
        path: '/sync/stream',
        method: 'POST',
        agent,
        headers: {
          authorization: `Token ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          accept: 'application/x-ndjson',
        },
      },
      (response) => {
        if (response.statusCode !== 200) {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (d: string) => (text += d));
          response.on('end', () => onEnd(`HTTP ${response.statusCode} ${text.slice(0, 300)}`));
          response.on('error', (e) => onEnd(`HTTP ${response.statusCode} ${e.message}`));
          return;
        }
        let pending: Buffer[] = [];
        response.on('data', (chunk: Buffer) => {
          let start = 0;
          for (let nl = chunk.indexOf(NEWLINE); nl >= 0; nl = chunk.indexOf(NEWLINE, start)) {
            const piece = chunk.subarray(start, nl);
            const line = pending.length > 0 ? Buffer.concat([...pending, piece]) : piece;
            pending = [];
            start = nl + 1;
            if (line.length > 0) this.handleLine(line);
          }
          if (start < chunk.length) pending.push(chunk.subarray(start));
        });
        response.on('end', () => onEnd('the server closed the response'));
        response.on('error', (e) => onEnd(e.message));
      },
    );
    this.request = request;
    request.on('error', (e) => onEnd(e.message));
    request.end(body);
  }

  private handleLine(line: Buffer): void {
    this.lines++;
    if (!this.options.probe && startsWith(line, DATA)) {
      // Cheap path: count the ops without parsing. `"op_id":` cannot occur inside the row data,
      // which is a JSON string with its quotes escaped.
      if (!this.current) return this.problem('data before any checkpoint');
      this.current.ops += countOccurrences(line, OP_ID);
      return;
    }
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line.toString('utf8')) as Record<string, unknown>;
    } catch {
      return this.problem(`unparseable line: ${line.subarray(0, 120).toString()}`);
    }
    if ('checkpoint' in parsed) {
      const c = parsed.checkpoint as { last_op_id: string; buckets: WireBucket[] };
      this.current = {
        opId: c.last_op_id,
        buckets: new Map(c.buckets.map((b) => [b.bucket, b.checksum])),
        sums: new Map(this.held.sums),
        ops: 0,
      };
      for (const name of this.current.sums.keys()) if (!this.current.buckets.has(name)) this.current.sums.delete(name);
    } else if ('checkpoint_diff' in parsed) {
      const d = parsed.checkpoint_diff as {
        last_op_id: string;
        updated_buckets: WireBucket[];
        removed_buckets: string[];
      };
      const base = this.current ?? this.held;
      const buckets = new Map(base.buckets);
      const sums = new Map(base.sums);
      for (const b of d.updated_buckets) buckets.set(b.bucket, b.checksum);
      for (const name of d.removed_buckets) {
        buckets.delete(name);
        sums.delete(name);
      }
      this.current = { opId: d.last_op_id, buckets, sums, ops: this.current?.ops ?? 0 };
    } else if ('data' in parsed) {
      if (!this.current) return this.problem('data before any checkpoint');
      this.receiveData(parsed.data as { bucket: string; data: WireOp[] });
    } else if ('checkpoint_complete' in parsed) {
      const last = (parsed.checkpoint_complete as { last_op_id: string }).last_op_id;
      this.complete(last);
    } else if ('partial_checkpoint_complete' in parsed || 'token_expires_in' in parsed) {
      // nothing to do: one priority, and tokens outlive the run
    } else {
      this.problem(`unknown line: ${line.subarray(0, 120).toString()}`);
    }
  }

  private receiveData(data: { bucket: string; data: WireOp[] }): void {
    const current = this.current!;
    current.ops += data.data.length;
    const probe = this.options.probe;
    if (!probe) return;
    let sum = current.sums.get(data.bucket) ?? 0;
    for (const op of data.data) {
      sum = op.op === 'CLEAR' ? op.checksum | 0 : (sum + op.checksum) | 0;
      if (op.op !== 'PUT' || op.data == null) continue;
      if (op.object_type === 'items' && op.object_id !== undefined) this.arriving.push(`i${op.object_id}`);
      else if (op.object_type === 'notices' && this.options.reportNotices) {
        // Version 0 is the initial state, not an update the writer stamped.
        const version = (JSON.parse(op.data) as { version?: unknown }).version;
        if (version !== undefined && String(version) !== '0') this.arriving.push(`n${String(version)}`);
      }
    }
    current.sums.set(data.bucket, sum);
  }

  private complete(lastOpId: string): void {
    const current = this.current;
    if (!current) return this.problem(`checkpoint_complete ${lastOpId} without a checkpoint`);
    if (current.opId !== lastOpId) {
      this.problem(`checkpoint_complete ${lastOpId} does not match the checkpoint's last_op_id ${current.opId}`);
    }
    const probe = this.options.probe;
    if (probe) {
      for (const [bucket, expected] of current.buckets) {
        const actual = current.sums.get(bucket) ?? 0;
        if (actual !== expected) {
          this.problem(
            `checksum mismatch in ${bucket} at ${lastOpId}: received ops sum to ${actual}, expected ${expected}`,
          );
        }
      }
      const at = this.options.now();
      for (const key of this.arriving) probe.delivered(key, at);
      this.arriving = [];
    }
    this.ops += current.ops;
    current.ops = 0;
    this.held = current;
    this.current = undefined;
    this.checkpointsCompleted++;
    this.firstCompleteAt ??= this.options.now();
  }
}
