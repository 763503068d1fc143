export { defineStorageContract, type StorageFactory, type StorageFactoryOptions } from './storage-contract.js';
export {
  bucketRows,
  finishSnapshot,
  GLOBAL_TODOS,
  ITEMS_BY_TAG,
  pos,
  readBucket,
  sumOfOps,
  table,
  todo,
  TODOS_BY_LIST,
} from './storage-contract-fixtures.js';
export { defineSourceContract } from './source-contract.js';
export {
  diffBucketsWithSource,
  keyOf,
  liveBucketRows,
  outputId,
  OWNERS,
  ownerSyncConfig,
  rowOf,
  rowsOf,
  SpySnapshotter,
  SpyStreamer,
  type ContractTable,
  type OracleDiff,
} from './source-contract-fixtures.js';
export type {
  CreateTableOptions,
  SourceContractFeature,
  SourceHarness,
  SourceHarnessFactory,
  SourceKeyType,
  SourceRow,
  SourceValue,
} from './source-harness.js';
