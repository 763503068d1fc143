export type { ChangeEvent, RowChangeEvent } from './change-event.js';
export { CoalescedRead, type CoalescedReadOptions, type ReadScheduler } from './coalesced-read.js';
export { ReplicationCoordinator, type ReplicationCoordinatorOptions } from './replication-coordinator.js';
export { ReplicationEngine, type ReplicationEngineOptions } from './replication-engine.js';
export { holderIsDeadLocalProcess, lockHolderName } from './lock-holder.js';
export { formatDelay, RetryBackoff, shouldRetry, type RetryBackoffOptions } from './retry-backoff.js';
export { SnapshotQueue, type SnapshotQueueOptions } from './snapshot-queue.js';
export {
  DEFAULT_SOURCE_CAPABILITIES,
  type SnapshotChunk,
  type Snapshotter,
  type SourceApi,
  type SourceCapabilities,
  type SourceContext,
  type SourceModule,
  type SourceTablePattern,
  type Streamer,
} from './source-module.js';
