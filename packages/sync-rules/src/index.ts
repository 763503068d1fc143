/**
 * @bucketsync/sync-rules: the sync config engine. Parse a sync config with `parseSyncConfig`,
 * then evaluate source rows (`evaluateRow`, `evaluateParameterRow`) and connections
 * (`resolveConnection`). Language reference: docs/sync-config.md.
 */
export { parseSyncConfig, type ParseSyncConfigOptions, type ParseSyncConfigResult } from './sync-config-parser.js';
export type { SyncConfig, EvaluatedParameterOrError } from './sync-config.js';
export type { Diagnostic } from './diagnostic.js';
export type { EvaluatedRow, EvaluatedRowOrError, EvaluationError } from './data-query.js';
export { serializeParameterLookup, type EvaluatedParameters, type ParameterLookup } from './parameter-lookup.js';
export {
  DEFAULT_CONNECTION_LIMIT,
  type BucketSubscription,
  type ConnectionBuckets,
  type ConnectionLimits,
  type ConnectionRequest,
  type ConnectionResolution,
  type ResolvedBucket,
  type StreamError,
  type StreamSubscriptionRequest,
} from './connection-resolver.js';
export { formatBucketId, parseBucketId, bucketParametersJson, type BucketIdParts } from './bucket-id.js';
export { matchTable, type SourceTableRef, type TablePattern } from './table-pattern.js';
export {
  castToText,
  compareValues,
  isSqliteValue,
  sqliteTypeOf,
  valueKey,
  type SqliteRow,
  type SqliteType,
  type SqliteValue,
} from './sqlite-value.js';
export {
  JsonSyntaxError,
  jsToJsonText,
  jsonValueToSqlite,
  parseJsonPreservingBigInts,
  parseJsonRow,
  parseJsonValue,
  rowToJson,
  type JsonObject,
  type JsonValue,
} from './json-text.js';
export {
  formatDate,
  formatTimestamp,
  toSyncValue,
  type SourceValueKind,
  type ToSyncValueOptions,
} from './source-value.js';
export type { BucketDefinition } from './bucket-definition.js';
export type { StreamDefinition } from './stream-definition.js';
export type { EventDefinition } from './event-definition.js';
