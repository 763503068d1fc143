/**
 * The write batch: the one way replication writes into bucket storage. The replication
 * coordinator applies every source change through it; storage evaluates rows against the
 * sync config and turns them into bucket ops (architecture.md sections 2-4).
 */
import type { ServiceError } from '@bucketsync/service-errors';
import type { Checkpoint, SqliteRow, StoredTable, TableSnapshotProgress } from './storage-types.js';

/**
 * `streaming` applies changes as they come (normal mode). `snapshot` is insert-if-absent: a
 * row is skipped when storage holds a live record or a tombstone for its key (invariant 4).
 */
export type WriteBatchMode = 'streaming' | 'snapshot';

interface SaveBase {
  /** The table's storage identity (from `SyncConfigStorage.resolveTable`). */
  readonly table: StoredTable;
  /**
   * Position of this change, sorting after every earlier change of the stream (for example
   * the commit position plus the change's index in its transaction). When given, a change at
   * or before the position storage last applied to the same row is skipped, which makes
   * re-applying events after a crash harmless (invariant 6). Snapshot saves leave it out.
   */
  readonly position?: string;
}

/** A row change handed to `WriteBatch.save`. */
export type SaveOperation =
  | (SaveBase & { readonly tag: 'insert'; readonly after: SqliteRow })
  | (SaveBase & {
      readonly tag: 'update';
      readonly after: SqliteRow;
      /** The old row (at least its key columns) when the key changed; otherwise omitted. */
      readonly before?: SqliteRow;
    })
  | (SaveBase & { readonly tag: 'delete'; readonly before: SqliteRow });

/** What `flush` did. */
export interface FlushResult {
  /** Rows applied (saves that were not skipped). */
  readonly rowsApplied: number;
  /** Rows skipped: insert-if-absent hits, replays, oversized or unevaluable rows. */
  readonly rowsSkipped: number;
  /** Bucket ops and parameter entries written. */
  readonly opsWritten: number;
  /** Highest op id written by this flush (`0n` if none). */
  readonly lastOpId: bigint;
}

/** What `commit` / `keepalive` did. */
export interface CommitResult {
  /** True when this call exposed a new checkpoint. */
  readonly checkpointCreated: boolean;
  /** The checkpoint clients can see after this call. */
  readonly checkpoint: Checkpoint;
  /** Why no checkpoint was created, when one was not (for logs and status). */
  readonly blockedBy?: string;
}

/** Information passed to the flush hooks. */
export interface FlushHookContext {
  readonly mode: WriteBatchMode;
  /** Saves about to be written (before) or just written (after). */
  readonly pendingSaves: number;
}

/**
 * Hooks around each flush (invariant 9). Tests use them to inject a source change between a
 * snapshot read and its write, deterministically; production code leaves them unset.
 */
export interface WriteBatchHooks {
  /**
   * Runs after the rows of a flush were read from the source (they are buffered in the
   * batch) and before storage reads or writes anything for them. Default: none.
   */
  beforeFlush?(context: FlushHookContext): Promise<void> | void;
  /** Runs after a flush is durable. Default: none. */
  afterFlush?(context: FlushHookContext & { result: FlushResult }): Promise<void> | void;
}

/** Options of `SyncConfigStorage.createWriteBatch`. */
export interface WriteBatchOptions {
  /** Default `streaming`. The snapshot queue uses `snapshot` (insert-if-absent). */
  readonly mode?: WriteBatchMode;
  readonly hooks?: WriteBatchHooks;
  /**
   * Called for a row that is skipped because of bad input (larger than the row size limit:
   * ROW_TOO_LARGE; the sync config could not evaluate it). Default: log an error naming the
   * table and the row's key. The batch never throws for a bad row: one row must not stop
   * replication.
   */
  readonly onRowError?: (error: ServiceError, row: { table: StoredTable; key: string }) => void;
  /** Saves buffered before an automatic flush. Default 10,000; bounds memory. */
  readonly maxBufferedRows?: number;
  /** Approximate bytes of buffered row data before an automatic flush. Default 16 MiB. */
  readonly maxBufferedBytes?: number;
  /** Aborts long-running work (flush waits, hooks). */
  readonly signal?: AbortSignal;
}

/**
 * The write batch (architecture.md section 2). One batch per writer: the streamer has one,
 * each snapshot worker has its own (mode `snapshot`). Batches of one config may run
 * concurrently; storage serialises their flushes.
 */
export interface WriteBatch {
  /** The batch's mode, fixed at creation. */
  readonly mode: WriteBatchMode;

  /**
   * Buffers one row change. Called by the coordinator for every insert / update / delete of
   * the stream, and by the snapshotter for every copied row (as inserts). Flushes on its own
   * when the buffer is full. A bad row is reported through `onRowError` and skipped; it never
   * throws for row content. Wrong use (a save after close) throws.
   */
  save(operation: SaveOperation): Promise<void>;

  /**
   * Removes every row of the given tables from their buckets and parameter index (REMOVE
   * ops, empty parameter entries), keeping tombstones while snapshots can run. Called for a
   * source TRUNCATE. Flushes pending saves first, so order is kept.
   */
  truncate(tables: readonly StoredTable[]): Promise<void>;

  /**
   * Like `truncate`, then forgets the tables' identities. Called when a table is dropped or
   * gets a new identity (schema change). Missing it leaves stale rows in buckets forever.
   */
  drop(tables: readonly StoredTable[]): Promise<void>;

  /**
   * Writes buffered saves durably. Never creates a checkpoint, so it is safe in the middle of
   * a source transaction (invariant 1). Returns `null` when nothing was buffered.
   */
  flush(): Promise<FlushResult | null>;

  /**
   * Flushes, then records a source transaction boundary at `position` and saves it as the
   * resume position. Creates a checkpoint only when the initial snapshot is done, `position`
   * is at or past the last checkpoint and past every table's snapshot boundary (invariant 2);
   * otherwise the checkpoint stays blocked and `blockedBy` says why. Called by the
   * coordinator at every transaction commit of the stream, never in the middle of one: a
   * commit mid-transaction would expose half a transaction to clients.
   */
  commit(position: string): Promise<CommitResult>;

  /**
   * A position reached with no data change (source keepalive, an empty transaction). Same
   * rules as `commit`; lets write checkpoints resolve while the source is idle. Refuses to
   * create a checkpoint while saves since the last commit are pending (they may be half a
   * transaction). Called by the coordinator between transactions.
   */
  keepalive(position: string): Promise<CommitResult>;

  /**
   * Saves where the streamer resumes after a restart, without creating a checkpoint. Called
   * by the coordinator once the stream's start position is fixed (before the first commit).
   */
  setResumePosition(position: string): Promise<void>;

  /**
   * Marks the tables' copies complete at `position` (their snapshot boundary): no checkpoint
   * is exposed before the stream passes it. Called by the snapshot queue after a table's last
   * chunk is flushed (this flushes the batch first). Returns the updated tables.
   */
  markTableSnapshotDone(tables: readonly StoredTable[], position: string): Promise<StoredTable[]>;

  /**
   * Queues a table for a (re-)snapshot: it counts as pending until `markTableSnapshotDone`.
   * Called when a table appears, changes identity, or needs a re-read. Forgetting it lets
   * `markSnapshotDone` succeed with a table that was never copied.
   */
  markTableSnapshotRequired(table: StoredTable): Promise<StoredTable>;

  /**
   * Marks the initial snapshot done, with `position` as a boundary for the first checkpoint.
   * Refuses with ServiceError SNAPSHOT_PENDING naming the tables while any table snapshot is
   * pending, including one queued after the snapshot queue started (invariant 3). Called by
   * the coordinator when the snapshot queue drains.
   */
  markSnapshotDone(position: string): Promise<void>;

  /**
   * Saves a table's copy progress (last key, rows copied). Written with the next flush so the
   * progress never runs ahead of the data (a restart resumes from the last durable chunk).
   */
  updateTableProgress(table: StoredTable, progress: TableSnapshotProgress): Promise<StoredTable>;

  /**
   * Records a custom write checkpoint (`event_definitions`) for a user; it becomes visible with
   * the next checkpoint. Called by the coordinator when a write-checkpoint event fires.
   */
  addCustomWriteCheckpoint(entry: { userId: string; checkpoint: bigint }): Promise<void>;

  /** Flushes nothing and releases resources; pending unflushed saves are dropped. Idempotent. */
  close(): Promise<void>;
}
