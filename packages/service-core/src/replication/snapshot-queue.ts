/**
 * The snapshot queue: copies tables while the stream runs, `concurrency` tables at a time.
 * Each table is read in key-ordered chunks after its last saved key, written through its own
 * insert-if-absent batch, with progress saved after each flushed chunk; at the end the
 * source position becomes the table's boundary (architecture.md section 4).
 */
import type { Logger } from '@bucketsync/lib-services';
import type { SqliteRow, StoredTable } from '../storage/storage-types.js';
import type { SyncConfigStorage } from '../storage/sync-config-storage.js';
import type { WriteBatchHooks } from '../storage/write-batch.js';
import type { Snapshotter } from './source-module.js';

export interface SnapshotQueueOptions {
  storage: SyncConfigStorage;
  snapshotter: Snapshotter;
  logger: Logger;
  /** Tables copied at the same time. Default 2. */
  concurrency?: number;
  /** Rows per chunk. Default 10,000. */
  chunkSize?: number;
  /** Flush hooks for the snapshot batches (tests inject races with them). */
  hooks?: WriteBatchHooks;
  signal: AbortSignal;
}

function tableName(table: StoredTable): string {
  return `${table.schema}.${table.name}`;
}

export class SnapshotQueue {
  private readonly pending: StoredTable[] = [];
  private readonly queuedIds = new Set<number>();
  private active = 0;
  private failure: unknown;
  private idleWaiters: (() => void)[] = [];
  private readonly concurrency: number;
  private readonly chunkSize: number;
  /** Per table id: rows of the chunk read from the source and not yet known to be written. */
  private readonly inflight = new Map<number, readonly SqliteRow[]>();
  /** Per table id: truncates the stream applied (see `truncated`). */
  private readonly truncations = new Map<number, number>();
  /** Replaced identities whose copy must not write any more (see `cancel`). */
  private readonly cancelled = new Set<number>();
  /** Running copies by table id. */
  private readonly running = new Map<number, Promise<void>>();
  private holds = 0;
  private failureWatchers: (() => void)[] = [];

  constructor(private readonly options: SnapshotQueueOptions) {
    this.concurrency = Math.max(1, options.concurrency ?? 2);
    this.chunkSize = Math.max(1, options.chunkSize ?? 10_000);
  }

  /** Queues a table (once; re-adding a queued table is a no-op) and starts a worker if one is free. */
  add(table: StoredTable): void {
    if (this.queuedIds.has(table.id)) return;
    this.queuedIds.add(table.id);
    this.pending.push(table);
    this.pump();
  }

  /** Number of tables queued or being copied, plus holds (see `hold`). */
  get size(): number {
    return this.pending.length + this.active + this.holds;
  }

  /**
   * Keeps the queue from counting as idle until the returned release is called: the
   * coordinator holds it while it replaces a table identity, between stopping the old copy
   * and queueing the new one, so the snapshot is not marked done in between.
   */
  hold(): () => void {
    this.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      this.notifyIfIdle();
    };
  }

  /**
   * Called by the coordinator when the stream applies a truncate of `table`, before storage
   * truncates. A chunk read before the source truncate can reach storage after it, where
   * nothing would remove it again (the truncate only removes rows storage holds). So: a chunk
   * still being read is dropped by its worker (every row it could hold is either gone or
   * re-inserted later in the stream), and the rows of a chunk already read but maybe not yet
   * written are returned: the coordinator deletes them in the stream, and the tombstones make
   * their snapshot write a no-op (invariant 4). Found by the source contract suite.
   */
  truncated(table: StoredTable): readonly SqliteRow[] {
    this.truncations.set(table.id, (this.truncations.get(table.id) ?? 0) + 1);
    return this.inflight.get(table.id) ?? [];
  }

  /**
   * Stops the copies of `tables`, identities a schema change replaced: queued ones never start
   * and running ones stop before their next write. Resolves when none of them can write any
   * more, so the coordinator can drop their rows without a late chunk bringing some back.
   */
  async cancel(tables: readonly StoredTable[]): Promise<void> {
    for (const table of tables) {
      this.cancelled.add(table.id);
      const index = this.pending.findIndex((p) => p.id === table.id);
      if (index >= 0) {
        this.pending.splice(index, 1);
        this.queuedIds.delete(table.id);
      }
    }
    await Promise.all(tables.map((t) => this.running.get(t.id)));
    this.notifyIfIdle();
  }

  /**
   * Rejects with the first copy failure; resolves when `signal` aborts. The coordinator races
   * it with the stream once the initial snapshot is done, so a failed copy (of a table added
   * or copied again later) fails the run and is retried instead of going unnoticed.
   */
  whenFailed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.failure) reject(this.failure);
        else if (signal.aborted) resolve();
        else this.failureWatchers.push(check);
      };
      signal.addEventListener('abort', () => check(), { once: true });
      check();
    });
  }

  /** Resolves when nothing is queued or running; rejects with the first copy failure. */
  whenIdle(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.idleWaiters.push(() => (this.failure ? reject(this.failure) : resolve()));
    });
  }

  private pump(): void {
    while (this.active < this.concurrency && this.pending.length > 0 && !this.failure) {
      const table = this.pending.shift()!;
      this.active++;
      const run = this.copy(table)
        .catch((e: unknown) => {
          this.failure ??= e;
          const watchers = this.failureWatchers;
          this.failureWatchers = [];
          for (const w of watchers) w();
        })
        .finally(() => {
          this.active--;
          this.queuedIds.delete(table.id);
          this.running.delete(table.id);
          this.notifyIfIdle();
          this.pump();
        });
      this.running.set(table.id, run);
    }
  }

  private notifyIfIdle(): void {
    if (this.failure || this.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private async copy(table: StoredTable): Promise<void> {
    const { storage, snapshotter, logger, signal } = this.options;
    const log = logger.child({ table: tableName(table) });
    const batch = storage.createWriteBatch({
      mode: 'snapshot',
      signal,
      ...(this.options.hooks ? { hooks: this.options.hooks } : {}),
    });
    let current = table;
    try {
      let copied = table.snapshotProgress?.copiedRows ?? 0;
      const afterKey = table.snapshotProgress?.lastKey;
      log.info(afterKey ? 'resuming table copy' : 'copying table', { copiedRows: copied });
      const started = Date.now();
      const truncations = () => this.truncations.get(table.id) ?? 0;
      let truncationsBeforeRead = truncations();
      for await (const chunk of snapshotter.readChunks(table, {
        chunkSize: this.chunkSize,
        signal,
        ...(afterKey !== undefined ? { afterKey } : {}),
      })) {
        if (this.cancelled.has(table.id)) {
          log.info('table copy stopped: a schema change replaced the table', { copiedRows: copied });
          return;
        }
        // Truncated while this chunk was read: drop its rows (see `truncated`), keep the key.
        if (truncations() === truncationsBeforeRead) {
          this.inflight.set(table.id, chunk.rows);
          for (const row of chunk.rows) await batch.save({ tag: 'insert', table: current, after: row });
          copied += chunk.rows.length;
        }
        current = await batch.updateTableProgress(current, {
          lastKey: chunk.lastKey,
          copiedRows: copied,
          ...(chunk.estimatedTotalRows !== undefined ? { totalRows: chunk.estimatedTotalRows } : {}),
        });
        await batch.flush();
        this.inflight.delete(table.id);
        truncationsBeforeRead = truncations();
        const total = chunk.estimatedTotalRows;
        log.info('copied chunk', {
          copiedRows: copied,
          ...(total ? { estimatedTotalRows: total, percent: Math.min(100, Math.round((copied / total) * 100)) } : {}),
        });
      }
      if (this.cancelled.has(table.id)) return;
      // A reader may end early on abort: a table is only done when it was read to the end.
      signal.throwIfAborted();
      const boundary = await snapshotter.currentPosition(signal);
      await batch.markTableSnapshotDone([current], boundary);
      const seconds = (Date.now() - started) / 1000;
      log.info('table copy done', {
        copiedRows: copied,
        boundary,
        rowsPerSecond: Math.round(copied / Math.max(seconds, 0.001)),
      });
    } finally {
      this.inflight.delete(table.id);
      await batch.close();
    }
  }
}
