export { BSON_STREAM, chooseEncoding, encodeLine, NDJSON, type SyncEncoding } from './sync-line-encoder.js';
export {
  clientIdProblem,
  createSyncServer,
  syncServerActivity,
  type Authenticator,
  type SyncServerActivity,
  type SyncServerOptions,
} from './sync-server.js';
export { acceptsGzip, chooseStreamCompression, type GzipPolicy, type StreamCompression } from './stream-compression.js';
export { RequestErrors, toServiceError, type ErrorAnswer, type ErrorBody } from './request-errors.js';
export { WriteCheckpointLimiter, type WriteCheckpointLimiterOptions } from './write-checkpoint-limiter.js';
