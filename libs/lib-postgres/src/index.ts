export { ArrayLiteralError, parseArrayLiteral, type ArrayLiteralElement } from './postgres-array-literal.js';
export {
  classifyPostgresError,
  connectPostgres,
  createPostgresPool,
  guardPool,
  redactUri,
  SESSION_SETTINGS,
  type PostgresConnectOptions,
  type PostgresPoolOptions,
} from './postgres-connection.js';
export {
  decodeByteaHex,
  PgOid,
  PostgresTypeDecoder,
  type ColumnDecoder,
  type PostgresTypeDecoderOptions,
  type PostgresTypeInfo,
} from './postgres-type-decoder.js';
export { loadPostgresTypes } from './postgres-types.js';
