/**
 * The replication coordinator (architecture.md sections 2 and 4): fixes the stream's start
 * position, then runs the streamer and the snapshot queue concurrently, applies every change
 * through one write batch, marks the snapshot done when the queue drains, acknowledges only
 * committed positions, and retries retryable failures with backoff. Modules never decide
 * when a checkpoint may appear; storage enforces the invariants, this drives them.
 */
import { sleep, type Logger } from '@bucketsync/lib-services';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import type { SourceTableDescriptor, SqliteRow, StoredTable } from '../storage/storage-types.js';
import { sameColumns } from '../storage/table-columns.js';
import type { SyncConfigStorage } from '../storage/sync-config-storage.js';
import type { WriteBatch, WriteBatchHooks } from '../storage/write-batch.js';
import type { ChangeEvent } from './change-event.js';
import { formatDelay, RetryBackoff, shouldRetry } from './retry-backoff.js';
import { SnapshotQueue } from './snapshot-queue.js';
import type { Snapshotter, SourceTablePattern, Streamer } from './source-module.js';

export interface ReplicationCoordinatorOptions {
  storage: SyncConfigStorage;
  snapshotter: Snapshotter;
  streamer: Streamer;
  /** Table patterns of the sync config (what to copy and stream). */
  patterns: readonly SourceTablePattern[];
  logger: Logger;
  /** Tables copied at the same time. Default 2. */
  tableConcurrency?: number;
  /** Rows per snapshot chunk. Default 10,000. */
  chunkSize?: number;
  /** Backoff between retries of retryable failures. Default 1 s doubling to 60 s. */
  retry?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Flush hooks for the snapshot batches (tests). */
  snapshotHooks?: WriteBatchHooks;
  /** Called when the first consistent checkpoint of this config appears. */
  onConsistent?: () => void | Promise<void>;
}

function tableKey(table: { schema: string; name: string; connectionTag?: string }): string {
  return `${table.connectionTag ?? 'default'}\u0000${table.schema}\u0000${table.name}`;
}

/** Nothing storage needs to hear about changed: same identity, key and columns. */
function sameDescription(a: SourceTableDescriptor, b: SourceTableDescriptor): boolean {
  return (
    String(a.objectId ?? '') === String(b.objectId ?? '') &&
    a.replicaIdColumns.length === b.replicaIdColumns.length &&
    a.replicaIdColumns.every((c, i) => c === b.replicaIdColumns[i]) &&
    (b.columns === undefined || sameColumns(a.columns, b.columns))
  );
}

export class ReplicationCoordinator {
  private readonly tables = new Map<string, StoredTable>();

  constructor(private readonly options: ReplicationCoordinatorOptions) {}

  /**
   * Replicates until `signal` aborts. Retryable failures restart the work after a backoff
   * that doubles from `retry.initialDelayMs` to `retry.maxDelayMs` and resets once a
   * checkpoint is committed, resuming from the saved position and table progress; each is
   * logged once, saying when the next attempt comes.
   * A permanent failure (bad credentials, missing rights or settings, history lost, an
   * unexpected error) is reported to storage and thrown without retrying: the caller says
   * what happens next.
   */
  async run(signal: AbortSignal): Promise<void> {
    const backoff = new RetryBackoff(this.options.retry);
    while (!signal.aborted) {
      const attempt = new AbortController();
      const forward = () => attempt.abort(signal.reason);
      signal.addEventListener('abort', forward, { once: true });
      if (signal.aborted) forward();
      try {
        await this.runOnce(attempt.signal, () => backoff.reset());
        return;
      } catch (e) {
        if (signal.aborted) return;
        const error =
          e instanceof ServiceError
            ? e
            : new ServiceError(ErrorCode.INTERNAL, (e as Error)?.message ?? String(e), { cause: e });
        await this.options.storage.reportError(error).catch(() => undefined);
        if (!shouldRetry(error)) throw error;
        const delay = backoff.next();
        this.options.logger.warn(`replication failed; retrying in ${formatDelay(delay)}`, {
          error,
          retryInMs: delay,
        });
        await sleep(delay, signal).catch(() => undefined);
      } finally {
        attempt.abort();
        signal.removeEventListener('abort', forward);
      }
    }
  }

  /** One attempt: resolve the start, queue pending tables, run stream and snapshots together. */
  private async runOnce(signal: AbortSignal, onProgress: () => void): Promise<void> {
    const { storage, snapshotter, streamer, logger } = this.options;
    this.tables.clear();
    let status = await storage.getStatus();
    let start = status.resumePosition;
    const control = storage.createWriteBatch({ signal });
    const stream = storage.createWriteBatch({ signal });
    const queue = new SnapshotQueue({
      storage,
      snapshotter,
      logger,
      signal,
      ...(this.options.tableConcurrency !== undefined ? { concurrency: this.options.tableConcurrency } : {}),
      ...(this.options.chunkSize !== undefined ? { chunkSize: this.options.chunkSize } : {}),
      ...(this.options.snapshotHooks ? { hooks: this.options.snapshotHooks } : {}),
    });
    try {
      if (start === undefined) {
        // Check the prerequisites (publication, keys, read rights) before the start position
        // exists: on Postgres it is a slot, which holds WAL on the source until it is dropped.
        await snapshotter.listTables(this.options.patterns, signal);
        start = await streamer.createStartPosition(signal);
        try {
          await control.setResumePosition(start);
        } catch (e) {
          // Nothing resumes from a position that was never saved: release it now rather than
          // leave it holding history until the next attempt replaces it.
          await streamer
            .destroy()
            .catch((d: unknown) => logger.warn('could not release the unsaved start position', { error: d }));
          throw e;
        }
        logger.info('replication start position fixed', { position: start });
      }

      const listed = await snapshotter.listTables(this.options.patterns, signal);
      for (const descriptor of listed) await this.resolve(descriptor, control, queue);
      // A copy pending for a table the source no longer has (dropped or renamed while it was
      // copied) would hold checkpoints forever: drop it.
      const names = new Set(listed.map(tableKey));
      const gone = (await storage.getStatus()).tables.filter((t) => !t.snapshotDone && !names.has(tableKey(t)));
      if (gone.length > 0) {
        logger.info('dropping pending copies of tables the source no longer has', {
          tables: gone.map((t) => `${t.schema}.${t.name}`),
        });
        await control.drop(gone);
      }
      status = await storage.getStatus();

      // Stream and snapshot concurrently; the first failure stops both.
      const both = new AbortController();
      const stop = () => both.abort();
      signal.addEventListener('abort', stop, { once: true });
      if (signal.aborted) stop(); // an abort that came first never fires the listener
      const fail = (e: unknown) => {
        both.abort();
        throw e;
      };
      await Promise.all([
        this.streamLoop(start, stream, queue, both.signal, onProgress).catch(fail),
        (async (snapshotDone: boolean) => {
          if (!snapshotDone) await this.finishInitialSnapshot(queue, control, both.signal);
          // Later copies (tables added, or copied again after a schema change) fail the run too.
          await queue.whenFailed(both.signal);
        })(status.snapshotDone).catch(fail),
      ]).finally(() => signal.removeEventListener('abort', stop));
    } finally {
      await stream.close();
      await control.close();
    }
  }

  /** Waits for the queue to drain, then marks the snapshot done; retries if a table was queued meanwhile. */
  private async finishInitialSnapshot(queue: SnapshotQueue, control: WriteBatch, signal: AbortSignal): Promise<void> {
    for (;;) {
      await queue.whenIdle();
      if (signal.aborted) return;
      const position = await this.options.snapshotter.currentPosition(signal);
      try {
        await control.markSnapshotDone(position);
        this.options.logger.info('initial snapshot done', { position });
        return;
      } catch (e) {
        if (e instanceof ServiceError && e.code === ErrorCode.SNAPSHOT_PENDING && queue.size > 0) continue;
        throw e;
      }
    }
  }

  /**
   * Applies the stream. Transactions that arrive together are committed together: the
   * batch commits once, at the last transaction boundary of each arrival, so a burst of small
   * source transactions costs one storage flush instead of one each. Every commit is still at
   * a boundary (invariant 2), and row positions keep re-applies harmless (invariant 6).
   */
  private async streamLoop(
    start: string,
    batch: WriteBatch,
    queue: SnapshotQueue,
    signal: AbortSignal,
    onProgress: () => void,
  ): Promise<void> {
    const { streamer, logger } = this.options;
    let consistent = false;
    let transactionsEnded = false;
    for await (const events of streamer.stream(start, signal)) {
      // Commit once, at the last boundary of this arrival; changes after it (the start of a
      // transaction still arriving) are applied after that commit, so no checkpoint ever
      // covers part of a transaction.
      const last = events.findLastIndex((e) => e.type === 'commit' || e.type === 'keepalive');
      for (let i = 0; i < events.length; i++) {
        const event = events[i]!;
        if (event.type === 'commit' || event.type === 'keepalive') {
          if (event.type === 'commit') transactionsEnded = true;
          if (i !== last) continue;
          const result = transactionsEnded ? await batch.commit(event.position) : await batch.keepalive(event.position);
          transactionsEnded = false;
          if (result.checkpointCreated) {
            onProgress();
            if (!consistent) {
              consistent = true;
              logger.info('first consistent checkpoint', {
                opId: String(result.checkpoint.opId),
                position: event.position,
              });
              await this.options.onConsistent?.();
            }
          }
          streamer.acknowledge(event.position);
          continue;
        }
        await this.apply(event, batch, queue, signal);
      }
    }
  }

  private async apply(event: ChangeEvent, batch: WriteBatch, queue: SnapshotQueue, signal: AbortSignal): Promise<void> {
    switch (event.type) {
      case 'insert':
      case 'update':
      case 'delete': {
        const table = await this.tableFor(event.table, batch, queue);
        if (!table) return;
        const position = event.position !== undefined ? { position: event.position } : {};
        if (event.type === 'insert') await batch.save({ tag: 'insert', table, after: event.after, ...position });
        else if (event.type === 'delete') await batch.save({ tag: 'delete', table, before: event.before, ...position });
        else {
          let after = event.after;
          if (event.unchangedColumns && event.unchangedColumns.length > 0) {
            const current = await this.readUnchangedValues(table, event.after, signal);
            if (!current) return; // deleted since: its delete follows in the stream
            // The values the change carries win: a re-read can be older than the change (its
            // commit can reach the stream before other sessions see it) or newer (then later
            // changes of the row bring the rest up to date). Only the left-out values are taken.
            const unchanged = new Set(event.unchangedColumns);
            after = { ...current };
            for (const [column, value] of Object.entries(event.after)) {
              if (!unchanged.has(column)) after[column] = value;
            }
          }
          await batch.save({
            tag: 'update',
            table,
            after,
            ...(event.before ? { before: event.before } : {}),
            ...position,
          });
        }
        return;
      }
      case 'schema':
        await this.tableFor(event.table, batch, queue);
        return;
      case 'truncate': {
        const tables: StoredTable[] = [];
        for (const t of event.tables) {
          const table = await this.tableFor(t, batch, queue);
          if (table) tables.push(table);
        }
        if (tables.length === 0) return;
        // Rows a snapshot read before this truncate may be written after it: delete them too, so
        // their tombstones make that write a no-op (see SnapshotQueue.truncated).
        const held = tables.map((table) => ({ table, rows: queue.truncated(table) }));
        await batch.truncate(tables);
        for (const { table, rows } of held) {
          for (const row of rows) await batch.save({ tag: 'delete', table, before: row });
        }
        return;
      }
      case 'commit':
      case 'keepalive':
        return; // boundaries are handled by streamLoop
    }
  }

  /**
   * Reads a row by key for the values an update left out (unchanged TOAST). A row not found may
   * be deleted (its delete follows in the stream), or its insert may have reached the stream
   * before it is visible to other sessions: a short retry tells the two apart.
   */
  private async readUnchangedValues(
    table: StoredTable,
    key: SqliteRow,
    signal: AbortSignal,
  ): Promise<SqliteRow | undefined> {
    // One retry: the window is a few milliseconds, and each retry stalls the stream.
    for (let attempt = 0; ; attempt++) {
      const [current] = await this.options.snapshotter.readRowsByKey(table, [key], signal);
      if (current || attempt >= 1) return current;
      await sleep(50, signal);
    }
  }

  /**
   * The stored table for a streamed table description. A table seen for the first time, or
   * with a new identity (schema change), is resolved in storage; replaced identities are
   * dropped and the new one is queued for a snapshot, concurrently with streaming.
   */
  private async tableFor(
    descriptor: SourceTableDescriptor,
    batch: WriteBatch,
    queue: SnapshotQueue,
  ): Promise<StoredTable | undefined> {
    const known = this.tables.get(tableKey(descriptor));
    if (known && sameDescription(known, descriptor)) return known;
    const { syncConfig } = this.options.storage;
    if (!syncConfig.tableIsRelevant(descriptor) && !syncConfig.tableHasParameterQueries(descriptor)) return undefined;
    if (descriptor.replicaIdColumns.length === 0) {
      throw new ServiceError(
        ErrorCode.SOURCE_MISCONFIGURED,
        descriptor.keyProblem ??
          `table ${descriptor.schema}.${descriptor.name} has no replica key, so its updates and deletes cannot be replicated`,
      );
    }
    return this.resolve(descriptor, batch, queue);
  }

  /** Resolves the table in storage, drops identities it replaced, and queues its copy if pending. */
  private async resolve(
    descriptor: SourceTableDescriptor,
    batch: WriteBatch,
    queue: SnapshotQueue,
  ): Promise<StoredTable> {
    // Not idle until the new identity is queued: the snapshot must not be marked done between.
    const release = queue.hold();
    try {
      const { table, replaced, created } = await this.options.storage.resolveTable(descriptor);
      if (replaced.length > 0) {
        this.options.logger.info('table identity changed; dropping the old one and copying again', {
          table: `${descriptor.schema}.${descriptor.name}`,
        });
        // A copy of a replaced identity still running would write rows after the drop, where
        // nothing removes them again: stop it first.
        await queue.cancel(replaced);
        await batch.drop(replaced);
      }
      let current = table;
      if (created && !table.snapshotDone) current = await batch.markTableSnapshotRequired(table);
      this.tables.set(tableKey(descriptor), current);
      if (!current.snapshotDone) queue.add(current);
      return current;
    } finally {
      release();
    }
  }
}
