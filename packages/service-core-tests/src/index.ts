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
