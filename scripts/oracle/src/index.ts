export { FAULT_KINDS, runOracle, type FaultKind, type OracleOptions, type OracleReport } from './run-oracle.js';
export { Random } from './random.js';
