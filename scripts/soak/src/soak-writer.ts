/**
 * The soak's writes to the source database: steady small transactions spread over the users
 * (each one carrying a row for a probe user, so lag is sampled continuously), bursts of a few
 * big transactions, and periodic updates of the global bucket's notices. Every row a probe
 * will see is registered with the lag tracker; rows per user are counted so each client's
 * delivery can be checked at the end.
 */
import pg from 'pg';
import type { LagTracker } from './lag-tracker.js';

export const SOURCE_SCHEMA_SQL = `
  CREATE TABLE items (id bigint PRIMARY KEY, owner text NOT NULL, payload text, written_at timestamptz NOT NULL DEFAULT now());
  CREATE TABLE notices (id int PRIMARY KEY, body text NOT NULL, version bigint NOT NULL);
  INSERT INTO notices SELECT n, 'notice ' || n, 0 FROM generate_series(1, 5) n;
  CREATE PUBLICATION soak FOR TABLE items, notices;
`;

/** Rows of the global bucket at the start (the notices inserted by SOURCE_SCHEMA_SQL). */
export const INITIAL_NOTICES = 5;

export const SYNC_CONFIG = `# The soak: each user syncs their own items; everyone syncs the notices.
bucket_definitions:
  by_owner:
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT id, owner, payload, written_at FROM items WHERE owner = bucket.owner
  everyone:
    data:
      - SELECT id, body, version FROM notices
`;

/**
 * The flaky soak's extra data: a `documents` table of `rows` rows of about `bytes` each, in a
 * bucket every user syncs, so that every stream has megabytes to send and a client dropping after
 * a random number of bytes drops in the middle of the data. The text is hex (md5 digests), which
 * gzip shrinks only to about half, so gzipped streams are long too.
 */
export function documentsSql(rows: number, bytes: number): string {
  const digests = Math.max(1, Math.ceil(bytes / 32));
  return `
  CREATE TABLE documents (id int PRIMARY KEY, body text NOT NULL);
  INSERT INTO documents
    SELECT n, (SELECT string_agg(md5(n::text || '.' || g::text), '') FROM generate_series(1, ${digests}) g)
    FROM generate_series(1, ${rows}) n;
  ALTER PUBLICATION soak ADD TABLE documents;
`;
}

/** SYNC_CONFIG plus the documents bucket (documentsSql). */
export const FLAKY_SYNC_CONFIG = `${SYNC_CONFIG}  documents:
    data:
      - SELECT id, body FROM documents
`;

/** User ids of the soak: `u0`...; the first `probes` of them are the probe users. */
export function userName(index: number): string {
  return `u${index}`;
}

export interface BurstRecord {
  /** Soak clock (ms) when the first transaction started / the last committed. */
  startedAt: number;
  endedAt: number;
  rows: number;
  transactions: number;
}

export interface SoakWriterOptions {
  sourceUrl: string;
  users: number;
  probes: number;
  payloadBytes: number;
  lag: LagTracker;
  now(): number;
}

export class SoakWriter {
  /** Rows committed per user index. */
  readonly rowsByUser: Uint32Array;
  steadyRows = 0;
  steadyTransactions = 0;
  burstRows = 0;
  noticeUpdates = 0;
  readonly bursts: BurstRecord[] = [];
  /** Steady transactions skipped because the writer fell behind its schedule. */
  skippedTransactions = 0;
  readonly errors: string[] = [];

  private nextId = 1;
  private nextVersion = 1;
  private userCursor = 0;
  private probeCursor = 0;
  private steady: pg.Client | undefined;
  private burst: pg.Client | undefined;

  constructor(private readonly options: SoakWriterOptions) {
    this.rowsByUser = new Uint32Array(options.users);
  }

  get rowsWritten(): number {
    return this.steadyRows + this.burstRows;
  }

  async open(): Promise<void> {
    this.steady = new pg.Client({ connectionString: this.options.sourceUrl });
    this.burst = new pg.Client({ connectionString: this.options.sourceUrl });
    await this.steady.connect();
    await this.burst.connect();
  }

  async close(): Promise<void> {
    await this.steady?.end().catch(() => undefined);
    await this.burst?.end().catch(() => undefined);
  }

  private error(e: unknown): void {
    if (this.errors.length < 5) this.errors.push((e as Error).message);
  }

  /**
   * Writes `rowsPerSecond` in `transactionsPerSecond` transactions until the signal aborts.
   * Keeps to a fixed schedule; a transaction more than a second late is skipped (and counted)
   * rather than written in a catch-up rush.
   */
  async runSteady(options: {
    rowsPerSecond: number;
    transactionsPerSecond: number;
    signal: AbortSignal;
  }): Promise<void> {
    const { rowsPerSecond, transactionsPerSecond, signal } = options;
    if (rowsPerSecond <= 0 || transactionsPerSecond <= 0) return;
    const periodMs = 1000 / transactionsPerSecond;
    const started = this.options.now();
    let carry = 0;
    for (let k = 0; !signal.aborted; k++) {
      const due = started + k * periodMs;
      const wait = due - this.options.now();
      if (wait > 0) await sleep(wait, signal);
      if (signal.aborted) break;
      if (this.options.now() - due > 1000) {
        this.skippedTransactions++;
        continue;
      }
      carry += rowsPerSecond / transactionsPerSecond;
      const rows = Math.max(1, Math.floor(carry));
      carry -= rows;
      await this.writeSteady(rows);
    }
  }

  private async writeSteady(rows: number): Promise<void> {
    const { users, probes, lag } = this.options;
    const ids: string[] = [];
    const owners: string[] = [];
    const stamped: string[] = [];
    for (let i = 0; i < rows; i++) {
      // The first row of every transaction goes to a probe user, so lag is sampled steadily.
      const user = i === 0 && probes > 0 ? this.probeCursor++ % probes : this.userCursor++ % users;
      const id = String(this.nextId++);
      ids.push(id);
      owners.push(userName(user));
      if (user < probes) stamped.push(`i${id}`);
    }
    for (const key of stamped) lag.expect(key);
    try {
      await this.steady!.query(
        'INSERT INTO items (id, owner, payload) SELECT id, owner, $3::text FROM unnest($1::bigint[], $2::text[]) AS t(id, owner)',
        [ids, owners, 'x'.repeat(this.options.payloadBytes)],
      );
    } catch (e) {
      lag.abandon(stamped);
      this.error(e);
      return;
    }
    lag.committed(stamped, this.options.now());
    for (const owner of owners) this.rowsByUser[Number(owner.slice(1))]!++;
    this.steadyRows += rows;
    this.steadyTransactions++;
  }

  /** Writes `rows` rows over all users in `transactions` transactions, one after the other. */
  async writeBurst(rows: number, transactions: number): Promise<BurstRecord> {
    const { users, probes, lag } = this.options;
    const startedAt = this.options.now();
    const per = Math.ceil(rows / transactions);
    let written = 0;
    let count = 0;
    for (let left = rows; left > 0; left -= per) {
      const n = Math.min(per, left);
      const first = this.nextId;
      this.nextId += n;
      const stamped: string[] = [];
      for (let id = first; id < first + n; id++) if (id % users < probes) stamped.push(`i${id}`);
      for (const key of stamped) lag.expect(key);
      try {
        await this.burst!.query(
          `INSERT INTO items (id, owner, payload)
             SELECT i, 'u' || (i % $3), repeat('x', $4) FROM generate_series($1::bigint, $2::bigint) i`,
          [first, first + n - 1, users, this.options.payloadBytes],
        );
      } catch (e) {
        lag.abandon(stamped);
        this.error(e);
        continue;
      }
      lag.committed(stamped, this.options.now());
      for (let id = first; id < first + n; id++) this.rowsByUser[id % users]!++;
      written += n;
      count++;
    }
    this.burstRows += written;
    const record = { startedAt, endedAt: this.options.now(), rows: written, transactions: count };
    this.bursts.push(record);
    return record;
  }

  /** Updates one notice of the global bucket (every client receives it), stamped with a new version. */
  async updateNotice(): Promise<void> {
    const { lag } = this.options;
    const version = this.nextVersion++;
    const key = `n${version}`;
    lag.expect(key);
    try {
      await this.burst!.query('UPDATE notices SET version = $1, body = $2 WHERE id = $3', [
        version,
        `notice version ${version}`,
        1 + (version % INITIAL_NOTICES),
      ]);
    } catch (e) {
      lag.abandon([key]);
      this.error(e);
      return;
    }
    lag.committed([key], this.options.now());
    this.noticeUpdates++;
  }
}

/** Resolves after `ms`, or at once when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
