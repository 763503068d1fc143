export { BSON_STREAM, chooseEncoding, encodeLine, NDJSON, type SyncEncoding } from './sync-line-encoder.js';
export { createSyncServer, type Authenticator, type SyncServerOptions } from './sync-server.js';
export { acceptsGzip, chooseStreamCompression, type GzipPolicy, type StreamCompression } from './stream-compression.js';
