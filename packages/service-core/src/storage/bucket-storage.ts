/**
 * The bucket storage factory: the entry point a storage module provides. It deploys sync
 * configs, knows which one is active and which is processing, hands out the replication
 * lock, and owns data shared by every config (managed write checkpoints).
 */
import type { SyncConfigStorage } from './sync-config-storage.js';

/** A held replication lock: one replicator per deployed config (architecture.md section 8). */
export interface ReplicationLock {
  readonly configId: number;
  readonly holder: string;
  /** Extends the lease; throws STORAGE_UNREACHABLE if it was lost. Call well within `ttlMs`. */
  refresh(): Promise<void>;
  /** Releases the lease. Idempotent. */
  release(): Promise<void>;
}

/** Result of `deploySyncConfig`. */
export interface DeployResult {
  /** The config that will serve `content` (the new processing one, or the existing one). */
  readonly config: SyncConfigStorage;
  /** False when `content` equals the active or processing config (nothing was deployed). */
  readonly changed: boolean;
}

/** The bucket storage factory (architecture.md section 2). */
export interface BucketStorage {
  /**
   * Deploys sync config text: a no-op when it equals the processing config (or the active one
   * when nothing is processing); otherwise creates a new processing config (stopping an older
   * processing one). Throws ServiceError SYNC_CONFIG_INVALID when it does not compile.
   * Called by the service at start and by the deploy API.
   */
  deploySyncConfig(content: string): Promise<DeployResult>;

  /**
   * The config clients sync from, if any. It stays active until a processing config reaches
   * its first checkpoint, which activates that one and stops this. Called by the sync engine.
   */
  getActiveSyncConfig(): Promise<SyncConfigStorage | undefined>;

  /** The config being replicated towards activation, if any. Called by the coordinator. */
  getProcessingSyncConfig(): Promise<SyncConfigStorage | undefined>;

  /** A deployed config by id (any state), or undefined. */
  getSyncConfig(configId: number): Promise<SyncConfigStorage | undefined>;

  /**
   * Takes the replication lock of a config for `ttlMs` (default 60 s), or returns undefined
   * while another live holder has it. Called by the coordinator before replicating; two
   * replicators on one config would interleave op ids and corrupt checkpoints.
   */
  acquireReplicationLock(
    configId: number,
    options: {
      holder: string;
      ttlMs?: number;
      /** Called with the current holder of an unexpired lease: true takes the lock over (a crashed holder). */
      takeOver?: (currentHolder: string) => boolean;
    },
  ): Promise<ReplicationLock | undefined>;

  /**
   * Restarts replication into a fresh copy after the source lost history: a new processing
   * config with the same content; the active one keeps serving until the new one is
   * consistent. Called by the coordinator on SOURCE_HISTORY_LOST.
   */
  restartReplication(configId: number): Promise<SyncConfigStorage>;

  /**
   * Deletes the data of stopped configs (ops, rows, parameter index) and marks them
   * terminated. Returns how many were cleaned. Called periodically and after activation.
   */
  cleanupStoppedConfigs(): Promise<number>;

  /**
   * Creates a managed write checkpoint for (user, client): the next monotonic id, stored with
   * the source head position it waits for. Called by the write-checkpoint route after reading
   * the source head (architecture.md section 7).
   */
  createManagedWriteCheckpoint(request: { userId: string; clientId: string; headPosition: string }): Promise<bigint>;

  /**
   * The newest managed write checkpoint id of (user, client) whose head position is at or
   * before `position` (a checkpoint's position), if any. Called by the sync engine for every
   * connection at every checkpoint, so a backend should answer from a per-process cache that
   * `createManagedWriteCheckpoint` (in any process) invalidates, and batch its misses; a cache
   * that misses an invalidation delays the client's `write_checkpoint`.
   */
  getManagedWriteCheckpoint(request: {
    userId: string;
    clientId: string;
    position: string;
  }): Promise<bigint | undefined>;

  /** Removes everything this storage holds (schema included). Tests and `teardown` CLI only. */
  teardown(): Promise<void>;

  /** Releases connections and listeners. Idempotent. */
  close(): Promise<void>;
}
