/**
 * The only place raw Postgres storage config is read and normalised: the `storage` section
 * of the service config (`type: postgresql`, `uri`, optional `schema`, pool size, row size
 * limit), plus connection opening with one-line errors that name the (redacted) URI.
 */
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import pg from 'pg';
import { guardPool, redactUri } from '@bucketsync/lib-postgres';

/** Raw config as written in the service config file. */
export interface PostgresStorageConfig {
  /** `postgres://user:password@host:port/database`. Required. */
  readonly uri: string;
  /** Schema holding the storage tables. Default `bucketsync`. */
  readonly schema?: string;
  /** Max pooled connections. Default 10. */
  readonly maxPoolSize?: number;
  /** Largest row (JSON bytes of one output row) stored; larger rows are skipped with ROW_TOO_LARGE. Default 15 MiB. */
  readonly maxRowBytes?: number;
}

export interface NormalisedPostgresStorageConfig {
  readonly uri: string;
  readonly schema: string;
  readonly maxPoolSize: number;
  readonly maxRowBytes: number;
}

export const DEFAULT_MAX_ROW_BYTES = 15 * 1024 * 1024;

/** Validates raw config; throws CONFIG_INVALID naming each bad field. */
export function normalisePostgresStorageConfig(raw: unknown, source = 'storage'): NormalisedPostgresStorageConfig {
  const problems: string[] = [];
  const input = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null) problems.push(`${source}: expected an object`);
  const uri = input.uri;
  if (typeof uri !== 'string' || !/^postgres(ql)?:\/\//.test(uri)) {
    problems.push(
      `${source}.uri: expected a postgres:// URI (got ${uri === undefined ? 'nothing' : JSON.stringify(redactUri(String(uri)))})`,
    );
  }
  const schema = input.schema ?? 'bucketsync';
  if (typeof schema !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) {
    problems.push(`${source}.schema: expected an identifier of letters, digits and _ (got ${JSON.stringify(schema)})`);
  }
  const maxPoolSize = input.maxPoolSize ?? input.max_pool_size ?? 10;
  if (typeof maxPoolSize !== 'number' || !Number.isInteger(maxPoolSize) || maxPoolSize < 2) {
    problems.push(`${source}.max_pool_size: expected an integer of at least 2`);
  }
  const maxRowBytes = input.maxRowBytes ?? input.max_row_bytes ?? DEFAULT_MAX_ROW_BYTES;
  if (typeof maxRowBytes !== 'number' || !Number.isInteger(maxRowBytes) || maxRowBytes < 1024) {
    problems.push(`${source}.max_row_bytes: expected an integer of at least 1024`);
  }
  if (problems.length > 0) throw new ServiceError(ErrorCode.CONFIG_INVALID, `\n  - ${problems.join('\n  - ')}\n`);
  return {
    uri: uri as string,
    schema: schema as string,
    maxPoolSize: maxPoolSize as number,
    maxRowBytes: maxRowBytes as number,
  };
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ECONNRESET',
  'EHOSTUNREACH',
  'EPIPE',
]);
/**
 * SQLSTATE classes of a server that is unavailable for now: 08 connection exception, 53
 * insufficient resources, 57 operator intervention (shutting down, starting up, restarting).
 */
const UNAVAILABLE_SQLSTATE_CLASSES = new Set(['08', '53', '57']);
/** Driver errors without a code for a connection that was lost or could not be made in time. */
const LOST_CONNECTION = /Connection terminated|not queryable|timeout exceeded when trying to connect/i;

/**
 * Translates a driver error into a ServiceError: connection problems (refused, lost, the
 * server shutting down or restarting) and missing databases become STORAGE_UNREACHABLE
 * naming the URI, retryable unless retrying cannot help; a ServiceError passes through unchanged.
 */
export function translatePostgresError(error: unknown, uri: string): ServiceError {
  if (error instanceof ServiceError) return error;
  const e = error as { code?: string; message?: string };
  const where = redactUri(uri);
  const reason = (e.message ?? String(error)).split('\n')[0];
  if (
    (e.code && (CONNECTION_CODES.has(e.code) || UNAVAILABLE_SQLSTATE_CLASSES.has(e.code.slice(0, 2)))) ||
    (!e.code && LOST_CONNECTION.test(reason ?? ''))
  ) {
    return new ServiceError(ErrorCode.STORAGE_UNREACHABLE, `${where}: ${reason}`, { cause: error });
  }
  if (e.code === '28P01' || e.code === '28000' || e.code === '3D000') {
    // Bad credentials or a missing database do not fix themselves.
    return new ServiceError(ErrorCode.STORAGE_UNREACHABLE, `${where}: ${reason}`, { cause: error, retryable: false });
  }
  if (error instanceof TypeError) {
    return new ServiceError(ErrorCode.STORAGE_UNREACHABLE, `${where}: not a valid connection URI (${reason})`, {
      cause: error,
      retryable: false,
    });
  }
  return new ServiceError(ErrorCode.INTERNAL, `storage query failed on ${where}: ${reason}`, { cause: error });
}

/**
 * Opens a pool and checks it can connect (so a wrong URI fails here, in one line, instead of
 * at the first query). Throws STORAGE_UNREACHABLE naming the redacted URI.
 */
export async function openPostgresPool(config: { uri: string; maxPoolSize: number }): Promise<pg.Pool> {
  let pool: pg.Pool;
  try {
    pool = new pg.Pool({ connectionString: config.uri, max: config.maxPoolSize, connectionTimeoutMillis: 10_000 });
  } catch (e) {
    throw translatePostgresError(e, config.uri);
  }
  // A client losing its connection must not crash the process.
  guardPool(pool);
  try {
    const client = await pool.connect();
    client.release();
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw translatePostgresError(e, config.uri);
  }
  return pool;
}
