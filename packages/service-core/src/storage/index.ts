export type { BucketStorage, DeployResult, ReplicationLock } from './bucket-storage.js';
export {
  addChecksums,
  normaliseChecksum,
  putChecksum,
  removeChecksum,
  sumChecksums,
  type OpRowKey,
} from './checksum.js';
export { formatOpId, MAX_OP_ID, maxOpId, parseOpId } from './op-id.js';
export { opSubkey, replicaKey } from './replica-key.js';
export {
  bucketRefs,
  diffParameterLookups,
  diffRowBuckets,
  type BucketRowRef,
  type ParameterEntryChange,
  type RowBucketDiff,
} from './row-diff.js';
export { columnsChangeNeedsCopy, sameColumns } from './table-columns.js';
export type * from './storage-types.js';
export type * from './sync-config-storage.js';
export type * from './write-batch.js';
export { ByteBudget, type BudgetLease } from './byte-budget.js';
