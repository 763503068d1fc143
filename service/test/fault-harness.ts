/**
 * What the fault tests need beside the service harness: a raw HTTP sync stream that keeps the
 * rows it was sent, polling with a deadline, the service's JSON log lines, the storage's
 * config states, the source's replication slots, and throwaway Postgres clusters of their own
 * (to stop, or to run with settings the shared one must not have).
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { createRunDirectory, freePort, startPostgres, type RunningServer } from '@bucketsync/dev-databases';
import pg from 'pg';
import { storageIdentity } from '../src/module-table.js';
import type { ServiceHarness } from './service-harness.js';

/** Polls `probe` until `accept` holds; fails naming `what` and the last value after `timeoutMs`. */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T> | T,
  accept: (value: T) => boolean,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value: T | undefined;
    let failure: unknown;
    try {
      value = await probe();
      if (accept(value)) return value;
    } catch (e) {
      failure = e;
    }
    if (Date.now() > deadline) {
      const last = failure !== undefined ? `error ${String(failure)}` : `value ${JSON.stringify(value)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last ${last}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One JSON log line of the service. */
export interface LogLine {
  level: string;
  message: string;
  [field: string]: unknown;
}

/** The service's JSON log lines (other output is ignored). */
export function logLines(output: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const text of output.split('\n')) {
    if (!text.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(text) as LogLine);
    } catch {
      // a line still being written
    }
  }
  return lines;
}

/** Log lines of `level` whose text (message and fields) contains every one of `parts`. */
export function logsWith(output: string, level: string, ...parts: string[]): LogLine[] {
  return logLines(output).filter((l) => {
    if (l.level !== level) return false;
    const text = JSON.stringify(l);
    return parts.every((p) => text.includes(JSON.stringify(p).slice(1, -1)));
  });
}

/** The sync configs of the service's storage, oldest first. */
export async function syncConfigStates(
  storageUrl: string,
  h: ServiceHarness,
): Promise<{ id: number; state: string }[]> {
  const client = new pg.Client({ connectionString: storageUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: number; state: string }>(
      `SELECT id, state FROM ${h.storageSchema}.sync_configs ORDER BY id`,
    );
    return rows;
  } finally {
    await client.end();
  }
}

/** The source's replication slots that belong to the service (by its storage id), by name. */
export async function serviceSlots(
  h: ServiceHarness,
  storageUrl: string,
): Promise<{ slot_name: string; active: boolean; wal_status: string | null }[]> {
  const identity = storageIdentity({ type: 'postgresql', uri: storageUrl, schema: h.storageSchema });
  const { rows } = await h.source.query<{ slot_name: string; active: boolean; wal_status: string | null }>(
    'SELECT slot_name, active, wal_status FROM pg_replication_slots WHERE slot_name LIKE $1 ORDER BY slot_name',
    [`bucketsync_${identity}_%`],
  );
  return rows;
}

/** A throwaway Postgres cluster of one test: `url` is its database `faults`. */
export interface ThrowawayPostgres {
  server: RunningServer;
  url: string;
  stop(): Promise<void>;
}

export async function startThrowawayPostgres(settings: Record<string, string> = {}): Promise<ThrowawayPostgres> {
  const runDir = createRunDirectory();
  try {
    const server = await startPostgres({
      dataDir: path.join(runDir, 'postgres'),
      port: await freePort(),
      databases: ['faults'],
      settings,
    });
    return {
      server,
      url: server.databaseUrl('faults'),
      async stop() {
        await server.stop();
        rmSync(runDir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(runDir, { recursive: true, force: true });
    throw e;
  }
}

interface WireOp {
  op: 'PUT' | 'REMOVE' | 'MOVE' | 'CLEAR';
  object_type?: string;
  object_id?: string;
  data?: string | null;
}

/**
 * A raw HTTP sync stream (NDJSON) that applies what it is sent, as a client would: the rows of
 * each bucket, published at every `checkpoint_complete`. It does not reconnect.
 */
export class SyncStreamReader {
  /** Rows by bucket, as received (including data of a checkpoint not complete yet). */
  private readonly buckets = new Map<string, Map<string, string>>();
  /** Rows (`<table>/<id>` -> data JSON) as of the last `checkpoint_complete`. */
  completeRows = new Map<string, string>();
  /** Buckets of the last checkpoint. */
  checkpointBuckets: string[] = [];
  completes = 0;
  ended = false;
  /** Resolves when the server ends the stream or the connection drops. */
  readonly done: Promise<void>;
  private readonly abort = new AbortController();

  private constructor(response: Response) {
    this.done = this.read(response).catch(() => undefined);
    void this.done.then(() => (this.ended = true));
  }

  static async open(endpoint: string, token: string): Promise<SyncStreamReader> {
    const abort = new AbortController();
    const response = await fetch(`${endpoint}/sync/stream`, {
      method: 'POST',
      headers: { authorization: `Token ${token}`, 'content-type': 'application/json', accept: 'application/x-ndjson' },
      body: '{}',
      signal: abort.signal,
    });
    if (response.status !== 200) throw new Error(`sync stream answered ${response.status}: ${await response.text()}`);
    const reader = new SyncStreamReader(response);
    reader.abort.signal.addEventListener('abort', () => abort.abort());
    return reader;
  }

  /** Rows as `<id>:<field value>`, sorted, as of the last complete checkpoint. */
  rows(field: string): string[] {
    return [...this.completeRows]
      .map(
        ([key, data]) => `${key.slice(key.indexOf('/') + 1)}:${(JSON.parse(data) as Record<string, unknown>)[field]}`,
      )
      .sort();
  }

  /** Waits for the `n`th `checkpoint_complete` (counting from the start of the stream). */
  async waitForComplete(n = 1, timeoutMs = 20_000): Promise<void> {
    await waitUntil(
      `checkpoint_complete #${n}`,
      () => this.completes,
      (c) => c >= n || this.ended,
      timeoutMs,
    );
    if (this.completes < n) throw new Error(`the sync stream ended after ${this.completes} complete checkpoints`);
  }

  close(): void {
    this.abort.abort();
  }

  private async read(response: Response): Promise<void> {
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.trim() !== '') this.apply(JSON.parse(line) as Record<string, unknown>);
      }
    }
  }

  private apply(line: Record<string, unknown>): void {
    if ('checkpoint' in line) {
      const checkpoint = line.checkpoint as { buckets: { bucket: string }[] };
      this.checkpointBuckets = checkpoint.buckets.map((b) => b.bucket);
      for (const name of [...this.buckets.keys()])
        if (!this.checkpointBuckets.includes(name)) this.buckets.delete(name);
    } else if ('checkpoint_diff' in line) {
      const diff = line.checkpoint_diff as { updated_buckets: { bucket: string }[]; removed_buckets: string[] };
      for (const name of diff.removed_buckets) this.buckets.delete(name);
      this.checkpointBuckets = [
        ...new Set([
          ...this.checkpointBuckets.filter((b) => !diff.removed_buckets.includes(b)),
          ...diff.updated_buckets.map((b) => b.bucket),
        ]),
      ];
    } else if ('data' in line) {
      const data = line.data as { bucket: string; data: WireOp[] };
      let rows = this.buckets.get(data.bucket);
      if (!rows) this.buckets.set(data.bucket, (rows = new Map()));
      for (const op of data.data) {
        const key = `${op.object_type}/${op.object_id}`;
        if (op.op === 'PUT') rows.set(key, op.data ?? 'null');
        else if (op.op === 'REMOVE') rows.delete(key);
        else if (op.op === 'CLEAR') rows.clear();
      }
    } else if ('checkpoint_complete' in line) {
      const all = new Map<string, string>();
      for (const rows of this.buckets.values()) for (const [key, data] of rows) all.set(key, data);
      this.completeRows = all;
      this.completes++;
    }
  }
}
