export type { SyncLine, WireBucketChecksum, WireOp, WireStreamStatus } from './sync-lines.js';
export { decodeSyncRequest, type SyncRequest } from './sync-request.js';
export { liveSyncStreams, syncStream, type SyncIdentity, type SyncStreamOptions } from './sync-stream.js';
