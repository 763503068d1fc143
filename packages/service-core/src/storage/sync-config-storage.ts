/**
 * Storage of one deployed sync config: its op log, current rows, parameter index and
 * checkpoints. Replication writes through write batches; the sync engine reads checkpoints,
 * bucket data, checksums and parameter lookups (architecture.md sections 2, 6, 7).
 */
import type {
  BucketChecksum,
  Checkpoint,
  OpId,
  OplogEntry,
  SourceTableDescriptor,
  SqliteRow,
  StorageSyncConfig,
  StoredTable,
} from './storage-types.js';
import type { WriteBatch, WriteBatchOptions } from './write-batch.js';
import type { ByteBudget } from './byte-budget.js';

/** Lifecycle state of a deployed sync config (architecture.md section 5). */
export type SyncConfigState = 'processing' | 'active' | 'stopped' | 'terminated';

/** Replication status of a deployed config, for the coordinator and diagnostics. */
export interface SyncConfigStatus {
  readonly configId: number;
  readonly state: SyncConfigState;
  /** Where the streamer resumes; undefined before replication started. */
  readonly resumePosition: string | undefined;
  /** The initial snapshot was marked done. */
  readonly snapshotDone: boolean;
  readonly checkpoint: Checkpoint;
  /** Last position passed to `commit` / `keepalive`, checkpoint or not. */
  readonly lastCommitPosition: string | undefined;
  /** Every table identity storage holds for this config (dropped ones excluded). */
  readonly tables: readonly StoredTable[];
  /** The last error reported with `reportError`, cleared by the next checkpoint. */
  readonly lastError: string | undefined;
}

/** A new table identity plus the older identities of the same table it replaces. */
export interface ResolvedTable {
  readonly table: StoredTable;
  /**
   * Older live identities of the same table the coordinator must `drop`: the ones this call
   * replaced, and any a crash left behind between creating a new identity and dropping the old.
   */
  readonly replaced: readonly StoredTable[];
  /** True when this identity was created by this call (it needs a snapshot). */
  readonly created: boolean;
}

/** One change to the visible checkpoint, delivered to watchers. */
export interface CheckpointEvent {
  readonly configId: number;
  readonly checkpoint: Checkpoint;
  /**
   * Ops at or below this op id may have been compacted. A client being sent a checkpoint
   * below it must get a newer checkpoint instead of `checkpoint_complete` (invariant 8).
   */
  readonly compactedThrough: OpId;
}

/**
 * What may have changed between two checkpoints of a config (`from` exclusive, `to` inclusive),
 * so the sync engine re-reads only what a connection syncs that changed. Every set is a
 * superset: it may name something that did not change (e.g. written after `to`), never miss
 * something that did. `undefined` means "unknown: treat everything as changed" (too many
 * changes to list, or a backend that cannot tell).
 */
export interface CheckpointChanges {
  readonly from: OpId;
  readonly to: OpId;
  /** Buckets that may have ops with op ids in (from, to]. */
  readonly buckets: ReadonlySet<string> | undefined;
  /** Serialized parameter lookups that may have index entries in (from, to]. */
  readonly parameterLookups: ReadonlySet<string> | undefined;
  /** Users that may have a custom write checkpoint in (from, to]. */
  readonly customWriteCheckpointUsers: ReadonlySet<string> | undefined;
}

/** A request for bucket data. */
export interface BucketDataRequest {
  /** Read ops up to this checkpoint op id only. */
  readonly checkpoint: OpId;
  /** Buckets and the op id after which to read each. */
  readonly buckets: ReadonlyArray<{ readonly bucket: string; readonly after: OpId }>;
  /** Max ops per chunk. Default 10,000. */
  readonly chunkOps?: number;
  /** Approximate max bytes of op data per chunk (a chunk has at least one op). Default 1 MiB. */
  readonly chunkBytes?: number;
  /**
   * The process's budget for sync data in memory: a read of ops takes a lease of its byte limit
   * before it starts and returns it once its ops are handed out; a read ahead is made only while
   * the budget is less than half spent, so a stream whose client is slow holds one read's worth.
   * Unbounded when absent.
   */
  readonly budget?: ByteBudget;
}

/** One chunk of a bucket's ops (the wire's `data` line). */
export interface BucketDataChunk {
  readonly bucket: string;
  readonly after: OpId;
  /** Op id of the last op in this chunk (= `after` when empty). */
  readonly nextAfter: OpId;
  /** More ops up to the checkpoint follow in a later chunk. */
  readonly hasMore: boolean;
  readonly ops: readonly OplogEntry[];
  /**
   * True when a compaction after this checkpoint may have touched these ops (see
   * `CheckpointEvent.compactedThrough`); the sender must move the client to a newer checkpoint.
   */
  readonly checkpointInvalidated: boolean;
}

/** Options of `compact`. */
export interface CompactOptions {
  /** Only these buckets. Default: every bucket with ops. */
  readonly buckets?: readonly string[];
  /** Only ops at or below this op id. Default: the current checkpoint. */
  readonly maxOpId?: OpId;
  readonly signal?: AbortSignal;
}

/** What `compact` did. */
export interface CompactResult {
  readonly bucketsCompacted: number;
  /** Ops turned into MOVE. */
  readonly opsMoved: number;
  /** Ops removed by collapsing leading runs into CLEAR. */
  readonly opsCleared: number;
}

/** Storage of one deployed sync config. */
export interface SyncConfigStorage {
  /** Storage id of the deployed config. */
  readonly configId: number;
  /** The sync config text as deployed. */
  readonly content: string;
  /** The compiled config rows are evaluated with. */
  readonly syncConfig: StorageSyncConfig;

  /**
   * Returns the storage identity of a source table, creating a new one when the table is new,
   * its object id / key columns changed, or its columns changed in a way that can alter
   * existing rows (`columnsChangeNeedsCopy`); older identities are returned in `replaced`.
   * Other column changes are recorded on the existing identity. Called by the coordinator on
   * every schema (relation) event and when listing tables for the snapshot. A new identity
   * starts with its snapshot pending.
   */
  resolveTable(descriptor: SourceTableDescriptor): Promise<ResolvedTable>;

  /**
   * Creates a write batch. Called by the coordinator (one streaming batch) and by each
   * snapshot worker (`mode: 'snapshot'`). See `WriteBatch`.
   */
  createWriteBatch(options?: WriteBatchOptions): WriteBatch;

  /** Replication status. Called by the coordinator at start (to resume) and by diagnostics. */
  getStatus(): Promise<SyncConfigStatus>;

  /** The checkpoint clients may see now. Called by the sync engine per connection. */
  getCheckpoint(): Promise<Checkpoint>;

  /**
   * Yields the current checkpoint, then each change, until `signal` aborts. All watchers of a
   * process share one storage listener (fan-out); a slow watcher sees only the latest
   * checkpoint. Called by the sync engine for every open connection, which uses the event's
   * checkpoint as is (it does not call `getCheckpoint` per checkpoint).
   */
  watchCheckpoints(signal: AbortSignal): AsyncIterable<CheckpointEvent>;

  /**
   * What may have changed between checkpoint op ids `from` and `to` (see `CheckpointChanges`).
   * Called by the sync engine once per new checkpoint and shared by every connection of the
   * process that moves from `from` (sync/checkpoint-changes.ts), so its cost is per checkpoint,
   * not per connection; a backend may use the call to warm its checksum cache at `to`. A set
   * that misses a change leaves clients without data they should get; over-reporting only costs
   * reads. `from >= to` returns empty sets.
   */
  getCheckpointChanges(from: OpId, to: OpId): Promise<CheckpointChanges>;

  /**
   * Bucket ops after each bucket's `after`, up to the checkpoint, in op id order, in chunks
   * bounded by op count and bytes, each with `hasMore`. Called by the sync engine to send
   * `data` lines. Reading past the checkpoint would break consistency.
   */
  getBucketData(request: BucketDataRequest, signal?: AbortSignal): AsyncIterable<BucketDataChunk>;

  /**
   * Checksum and op count of each bucket at the checkpoint (the wrapping 32-bit sum of its ops'
   * checksums), from an incremental per-bucket cache shared by every connection. Buckets without
   * ops get checksum 0. Called by the sync engine for a connection's first checkpoint, and later
   * for the buckets `getCheckpointChanges` reports changed (all of them after a compaction).
   */
  getChecksums(checkpoint: OpId, buckets: readonly string[]): Promise<Map<string, BucketChecksum>>;

  /**
   * Parameter-index lookups: for each serialized lookup key, the output rows of the newest
   * entry of every source row at or before the checkpoint (a deleted row contributes
   * nothing). Called by the sync engine to resolve a connection's buckets.
   */
  getParameterSets(checkpoint: OpId, lookups: readonly string[]): Promise<Map<string, SqliteRow[]>>;

  /**
   * The newest custom write checkpoint of a user visible at the checkpoint, if any. Called by
   * the sync engine to fill `write_checkpoint` at a connection's first checkpoint, and later only
   * when `getCheckpointChanges` names the user.
   */
  getCustomWriteCheckpoint(userId: string, checkpoint: OpId): Promise<bigint | undefined>;

  /**
   * Compaction: ops superseded by a later op of the same row become MOVE (data dropped), a
   * leading run of REMOVE / MOVE collapses into one CLEAR; checksums are unchanged
   * (invariant 7). Watchers learn `compactedThrough`. Called by a background job or the CLI.
   */
  compact(options?: CompactOptions): Promise<CompactResult>;

  /**
   * Records a replication error for status and diagnostics. Called by the coordinator when the
   * stream stops on an error; cleared by the next checkpoint.
   */
  reportError(error: unknown): Promise<void>;
}
