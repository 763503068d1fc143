export { comparePositions, maxPosition } from './position.js';
export * from './storage/index.js';
export * from './replication/index.js';
