/**
 * The test-client's building blocks, for scripts and tests that drive a sync stream without
 * the CLI (the demo, benchmarks). The CLI itself is `bin/bucketsync-test-client`.
 */
export {
  SyncClientState,
  SyncProtocolError,
  addChecksum,
  type BucketChecksum,
  type BucketSnapshot,
  type ChecksumMismatch,
  type StreamDescription,
  type StreamError,
  type SyncLineEvent,
  type SyncStateSnapshot,
} from './sync-client-state.js';
export {
  BsonFramer,
  NdjsonFramer,
  SyncStreamFramingError,
  createFramer,
  formatOfContentType,
  readSyncLines,
  BSON_CONTENT_TYPE,
  NDJSON_CONTENT_TYPE,
  type SyncStreamFormat,
  type SyncStreamFramer,
} from './stream-reader.js';
export {
  SyncConnectionError,
  SyncHttpError,
  openSyncStream,
  syncRequestBody,
  syncStreamUrl,
  type StreamSubscriptions,
  type SyncRequestOptions,
} from './sync-request.js';
export { signHs256Token, type Hs256TokenOptions } from './hs256-token.js';
export { clientAuthSection, newHs256Jwk, type Hs256Jwk } from './generate-key-command.js';
export {
  ClientAuthConfigError,
  loadClientAuthConfig,
  parseClientAuthConfig,
  type ClientAuthConfig,
  type Hs256Key,
} from './client-auth-config.js';
