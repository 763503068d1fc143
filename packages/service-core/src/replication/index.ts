export type { ChangeEvent, RowChangeEvent } from './change-event.js';
export { ReplicationCoordinator, type ReplicationCoordinatorOptions } from './replication-coordinator.js';
export { ReplicationEngine, type ReplicationEngineOptions } from './replication-engine.js';
export { holderIsDeadLocalProcess, lockHolderName } from './lock-holder.js';
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
