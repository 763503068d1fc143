export { BSON_STREAM, chooseEncoding, encodeLine, NDJSON, type SyncEncoding } from './sync-line-encoder.js';
export { clientIdProblem, createSyncServer, type Authenticator, type SyncServerOptions } from './sync-server.js';
export { acceptsGzip, chooseStreamCompression, type GzipPolicy, type StreamCompression } from './stream-compression.js';
export { RequestErrors, toServiceError, type ErrorAnswer, type ErrorBody } from './request-errors.js';
