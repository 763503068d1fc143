/**
 * What changed between two checkpoints, looked up once per process and shared by every
 * connection that moves from the same checkpoint, and the per-connection decisions built on it:
 * which buckets need a fresh checksum, which need no data read at all, and whether parameter
 * lookups or a custom write checkpoint must be read again.
 */
import type { ResolvedBucket } from '@bucketsync/sync-rules';
import type { OpId } from '../storage/storage-types.js';
import type { CheckpointChanges, SyncConfigStorage } from '../storage/sync-config-storage.js';
import type { WireBucketChecksum } from './sync-lines.js';

/** Looked-up changes kept per config: one entry per `from` op id, the newest `to` wins. */
const MAX_SHARED_ENTRIES = 32;

/**
 * Shares `getCheckpointChanges(from, to)` across connections: connections that sent the same
 * checkpoint ask with the same `from`, and one lookup answers all of them. An answer for a later
 * `to` also answers an earlier one (its sets are a superset), so it is reused; a later `to`
 * than any answer starts a new lookup that replaces the entry.
 */
export class SharedCheckpointChanges {
  private readonly byFrom = new Map<OpId, { to: OpId; changes: Promise<CheckpointChanges> }>();

  constructor(
    private readonly load: (from: OpId, to: OpId) => Promise<CheckpointChanges>,
    private readonly maxEntries = MAX_SHARED_ENTRIES,
  ) {}

  /** Changes in (from, to]; `from >= to` answers "nothing changed" without a lookup. */
  get(from: OpId, to: OpId): Promise<CheckpointChanges> {
    if (from >= to) return Promise.resolve(noChanges(from, to));
    const entry = this.byFrom.get(from);
    if (entry && entry.to >= to) return entry.changes;
    const changes = this.load(from, to);
    this.byFrom.delete(from);
    this.byFrom.set(from, { to, changes });
    if (this.byFrom.size > this.maxEntries) {
      const oldest = this.byFrom.keys().next().value;
      if (oldest !== undefined) this.byFrom.delete(oldest);
    }
    // A failed lookup is not kept: the next connection asks again.
    changes.catch(() => {
      if (this.byFrom.get(from)?.changes === changes) this.byFrom.delete(from);
    });
    return changes;
  }
}

const shared = new WeakMap<SyncConfigStorage, SharedCheckpointChanges>();

/** The process-wide shared lookup of a config (storage hands out one object per config). */
export function sharedCheckpointChanges(config: SyncConfigStorage): SharedCheckpointChanges {
  let changes = shared.get(config);
  if (!changes) {
    changes = new SharedCheckpointChanges((from, to) => config.getCheckpointChanges(from, to));
    shared.set(config, changes);
  }
  return changes;
}

const EMPTY: ReadonlySet<string> = new Set();

/** "Nothing changed" between two op ids. */
export function noChanges(from: OpId, to: OpId): CheckpointChanges {
  return { from, to, buckets: EMPTY, parameterLookups: EMPTY, customWriteCheckpointUsers: EMPTY };
}

/** True when any of `names` may have changed; an unknown set (undefined) means everything may have. */
export function mayHaveChanged(set: ReadonlySet<string> | undefined, names: Iterable<string>): boolean {
  if (set === undefined) return true;
  for (const name of names) if (set.has(name)) return true;
  return false;
}

/** The last checkpoint line a connection sent: the base that changes are relative to. */
export interface SentCheckpoint {
  readonly opId: OpId;
  readonly buckets: ReadonlyMap<string, WireBucketChecksum>;
  /** `compactedThrough` of the checkpoint event the checksums were read for. */
  readonly compactedThrough: OpId;
}

export interface BucketReadPlanInput {
  /** The checkpoint about to be sent. */
  readonly checkpoint: OpId;
  /** The connection's buckets at that checkpoint. */
  readonly buckets: readonly ResolvedBucket[];
  /** The last checkpoint line sent, if any. */
  readonly sent: SentCheckpoint | undefined;
  /** Changes between `sent.opId` and `checkpoint`; undefined = unknown. */
  readonly changes: CheckpointChanges | undefined;
  /** `compactedThrough` of the checkpoint event being handled. */
  readonly compactedThrough: OpId;
  /** The op id the client holds each bucket through. */
  readonly clientAfter: ReadonlyMap<string, OpId>;
}

export interface BucketReadPlan {
  /** Buckets whose checksum must be read at the checkpoint; the others keep the sent one. */
  readonly checksums: string[];
  /**
   * Buckets the client already holds through the checkpoint without any read: it holds them
   * through the sent checkpoint and they have no op since.
   */
  readonly upToDate: string[];
}

/**
 * Decides the reads of one checkpoint of a connection. A checksum is re-read for a bucket that
 * is new to the connection, may have changed, or after a compaction (which lowers counts). Data
 * is skipped for a bucket without ops since the sent checkpoint that the client holds through it.
 */
export function planBucketReads(input: BucketReadPlanInput): BucketReadPlan {
  const { sent, changes } = input;
  const changed = sent && changes && changes.from === sent.opId ? changes.buckets : undefined;
  const compacted = sent !== undefined && sent.compactedThrough !== input.compactedThrough;
  const checksums: string[] = [];
  const upToDate: string[] = [];
  for (const { bucket } of input.buckets) {
    const unchanged = changed !== undefined && !changed.has(bucket) && input.checkpoint >= sent!.opId;
    if (!unchanged || compacted || !sent!.buckets.has(bucket)) checksums.push(bucket);
    const after = input.clientAfter.get(bucket) ?? 0n;
    if (unchanged && after < input.checkpoint && after >= sent!.opId) upToDate.push(bucket);
  }
  return { checksums, upToDate };
}
