export { comparePositions, maxPosition } from './position.js';
export * from './storage/index.js';
export * from './replication/index.js';
export * from './sync/index.js';
export * from './http/index.js';
export * from './auth/index.js';
