export { comparePositions, maxPosition } from './position.js';
