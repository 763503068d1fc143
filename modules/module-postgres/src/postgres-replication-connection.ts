/**
 * A logical replication connection (`replication=database`): slot creation, START_REPLICATION
 * with pgoutput, and the copy-both stream of XLogData / keepalive frames, read in batches
 * with back-pressure (the socket pauses while the consumer is behind), plus standby status
 * updates that acknowledge flushed positions so the server can release WAL.
 */
import { connectPostgres } from '@bucketsync/lib-postgres';
import type pg from 'pg';
import { classifyPostgresSourceError } from './postgres-errors.js';
import { lsnToText, parseLsn } from './postgres-position.js';

export type ReplicationFrame =
  | { kind: 'data'; walStart: bigint; walEnd: bigint; message: Buffer }
  | { kind: 'keepalive'; walEnd: bigint; replyRequested: boolean };

/** Microseconds between the Unix epoch and the Postgres epoch (2000-01-01). */
const PG_EPOCH_OFFSET_US = 946_684_800_000_000n;

interface CopyDataEvent {
  chunk: Buffer;
}

interface PgConnectionInternals {
  on(event: 'copyData', listener: (msg: CopyDataEvent) => void): void;
  removeAllListeners(event: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  stream: { pause(): void; resume(): void };
}

export interface StartReplicationOptions {
  slot: string;
  publication: string;
  /** Position to stream from: the slot's confirmed position is used when it is later. */
  startLsn: bigint;
  /** Pause reading once this many frames wait for the consumer. Default 2000. */
  highWaterFrames?: number;
  signal?: AbortSignal;
}

export class PostgresReplicationConnection {
  private constructor(private readonly client: pg.Client) {}

  static async connect(
    uri: string,
    applicationName = 'bucketsync-replication',
  ): Promise<PostgresReplicationConnection> {
    try {
      return new PostgresReplicationConnection(await connectPostgres({ uri, applicationName, replication: true }));
    } catch (e) {
      throw classifyPostgresSourceError(e, 'opening a replication connection');
    }
  }

  /**
   * Creates a logical slot with pgoutput and returns its consistent point: the first position
   * whose changes the slot will deliver (the stream's start position).
   */
  async createSlot(slot: string): Promise<{ consistentPoint: bigint }> {
    try {
      const result = await this.client.query<{ consistent_point: string }>(
        `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput NOEXPORT_SNAPSHOT`,
      );
      return { consistentPoint: parseLsn(result.rows[0]!.consistent_point) };
    } catch (e) {
      throw classifyPostgresSourceError(e, `creating replication slot "${slot}"`);
    }
  }

  /**
   * Streams frames until aborted or the server ends the stream. Each yielded array is every
   * frame that arrived since the last one was taken (at least one).
   */
  async *start(options: StartReplicationOptions): AsyncGenerator<ReplicationFrame[]> {
    const connection = (this.client as unknown as { connection: PgConnectionInternals }).connection;
    const highWater = options.highWaterFrames ?? 2000;
    let queue: ReplicationFrame[] = [];
    let paused = false;
    let ended = false;
    let failure: unknown;
    let wake: (() => void) | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };

    connection.on('copyData', ({ chunk }) => {
      const tag = chunk[0];
      if (tag === 0x77 /* w: XLogData */) {
        queue.push({
          kind: 'data',
          walStart: chunk.readBigUInt64BE(1),
          walEnd: chunk.readBigUInt64BE(9),
          // Copied: the driver's parser reuses its read buffer once this event returns, and
          // frames wait in the queue until the consumer takes them.
          message: Buffer.from(chunk.subarray(25)),
        });
      } else if (tag === 0x6b /* k: primary keepalive */) {
        queue.push({ kind: 'keepalive', walEnd: chunk.readBigUInt64BE(1), replyRequested: chunk[17] === 1 });
      }
      if (!paused && queue.length >= highWater) {
        paused = true;
        connection.stream.pause();
      }
      notify();
    });

    const command =
      `START_REPLICATION SLOT ${quoteIdent(options.slot)} LOGICAL ${lsnToText(options.startLsn)} ` +
      `(proto_version '1', publication_names '${options.publication.replace(/'/g, "''")}', messages 'true')`;
    this.client.query(command, (err: Error | null) => {
      ended = true;
      if (err) failure = err;
      notify();
    });
    const onAbort = () => {
      ended = true;
      notify();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) onAbort(); // an abort that came first never fires the listener

    try {
      for (;;) {
        if (queue.length > 0) {
          const batch = queue;
          queue = [];
          if (paused) {
            paused = false;
            connection.stream.resume();
          }
          yield batch;
          continue;
        }
        // Raw driver error: the streamer classifies it (it knows which errors mean history loss).
        if (failure) throw failure;
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      connection.removeAllListeners('copyData');
    }
  }

  /**
   * Tells the server everything up to `flushedLsn` is durably stored, so the slot may release
   * that WAL. Call only with positions whose data storage has committed: acknowledging early
   * loses changes on a crash.
   */
  sendStatus(flushedLsn: bigint, replyRequested = false): void {
    const buffer = Buffer.alloc(34);
    buffer[0] = 0x72; // r: standby status update
    buffer.writeBigUInt64BE(flushedLsn, 1); // written
    buffer.writeBigUInt64BE(flushedLsn, 9); // flushed
    buffer.writeBigUInt64BE(flushedLsn, 17); // applied
    buffer.writeBigInt64BE(BigInt(Date.now()) * 1000n - PG_EPOCH_OFFSET_US, 25);
    buffer[33] = replyRequested ? 1 : 0;
    (this.client as unknown as { connection: PgConnectionInternals }).connection.sendCopyFromChunk(buffer);
  }

  /** Closes the connection (ends a running stream). Idempotent. */
  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
