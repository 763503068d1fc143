export { closestKey, decodeConfig, formatConfigIssues, unknownKeyProblem } from './config-codec.js';
export { Lifecycle, sleep, type Disposer } from './lifecycle.js';
export { createLogger, isLogLevel, type LogFields, type Logger, type LoggerOptions, type LogLevel } from './logger.js';
