/**
 * Opening Postgres connections the way every BucketSync component needs them: session
 * settings that make text output unambiguous (UTC, ISO dates, hex bytea, full float
 * precision), and driver errors translated into catalogue errors with retryability.
 */
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import pg from 'pg';

/** Session settings applied to every connection; decoders rely on them. */
export const SESSION_SETTINGS: Record<string, string> = {
  TimeZone: 'UTC',
  DateStyle: 'ISO, YMD',
  IntervalStyle: 'iso_8601',
  extra_float_digits: '3',
  bytea_output: 'hex',
};

export interface PostgresConnectOptions {
  /** `postgres://user:password@host:port/database?sslmode=...` */
  uri: string;
  /** Shown in pg_stat_activity. */
  applicationName?: string;
  /** Open a logical replication connection (`replication=database`). */
  replication?: boolean;
  connectTimeoutMs?: number;
}

function clientConfig(options: PostgresConnectOptions): pg.ClientConfig {
  const options_ = Object.entries(SESSION_SETTINGS)
    .map(([k, v]) => `-c ${k}=${v.replace(/ /g, '\\ ')}`)
    .join(' ');
  return {
    connectionString: options.uri,
    application_name: options.applicationName ?? 'bucketsync',
    connectionTimeoutMillis: options.connectTimeoutMs ?? 15_000,
    options: options_,
    ...(options.replication ? { replication: 'database' } : {}),
  } as pg.ClientConfig;
}

/** Connects one client; a failure becomes a ServiceError naming the server (without the password). */
export async function connectPostgres(options: PostgresConnectOptions): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(options));
  // The driver emits 'error' on every unexpected disconnect (a terminated backend, a server
  // restart), even when a running query also fails with it; unhandled, it ends the process.
  // The running query, or the next one, reports the failure to the caller instead.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (e) {
    await client.end().catch(() => undefined);
    throw classifyPostgresError(e, `connecting to ${redactUri(options.uri)}`);
  }
  return client;
}

/** Options of `createPostgresPool`, beyond those of one connection. */
export interface PostgresPoolOptions extends PostgresConnectOptions {
  /** Most connections open at once; callers beyond it wait for one. Default 10. */
  max?: number;
  /** An idle connection is closed after this many ms. Default 10 s (the driver's). */
  idleTimeoutMs?: number;
}

/** A pool with the same session settings, guarded against lost connections (`guardPool`). */
export function createPostgresPool(options: PostgresPoolOptions): pg.Pool {
  return guardPool(
    new pg.Pool({
      ...clientConfig(options),
      max: options.max ?? 10,
      idleTimeoutMillis: options.idleTimeoutMs ?? 10_000,
    }),
  );
}

/**
 * Keeps a lost connection from crashing the process. The pool only listens for errors of
 * idle clients; a checked-out client whose server goes away between two queries emits an
 * 'error' nobody handles. The failure reaches the caller through its next query instead.
 */
export function guardPool(pool: pg.Pool): pg.Pool {
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** Query parameters of a connection URI whose values are secrets. */
const SECRET_QUERY_PARAMETERS = /pass|secret|token|key|credential/i;

/** The URI without its password (in the user part or the query), for messages and logs. */
export function redactUri(uri: string): string {
  try {
    const url = new URL(uri);
    if (url.password) url.password = '***';
    // libpq also takes secrets as query parameters (`?password=...`, `sslpassword`, `sslkey` paths).
    for (const key of [...url.searchParams.keys()]) {
      if (SECRET_QUERY_PARAMETERS.test(key)) url.searchParams.set(key, '***');
    }
    return url.toString();
  } catch {
    return '(unparseable connection URI)';
  }
}

const RETRYABLE_SQLSTATE_CLASSES = new Set(['08', '53', '57', '58', '40']);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * Translates a driver error: connection loss, shutdown, resource exhaustion and
 * serialization failures are retryable; bad credentials, missing objects and permission
 * errors are permanent (retrying cannot help until someone changes something).
 */
export function classifyPostgresError(error: unknown, doing: string): ServiceError {
  if (error instanceof ServiceError) return error;
  const e = error as { code?: string; message?: string };
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const message = e?.message ?? String(error);
  if (code && NETWORK_CODES.has(code)) {
    return new ServiceError(ErrorCode.SOURCE_UNREACHABLE, `${doing}: ${message}`, { cause: error, retryable: true });
  }
  if (code && /^[0-9A-Z]{5}$/.test(code)) {
    // 55006 object_in_use: e.g. a replication slot still held by a connection that is closing.
    const retryable = RETRYABLE_SQLSTATE_CLASSES.has(code.slice(0, 2)) || code === '55006';
    if (retryable) {
      return new ServiceError(ErrorCode.SOURCE_UNREACHABLE, `${doing}: ${message} (SQLSTATE ${code})`, {
        cause: error,
        retryable: true,
      });
    }
    return new ServiceError(ErrorCode.SOURCE_MISCONFIGURED, `${doing}: ${message} (SQLSTATE ${code})`, {
      cause: error,
      retryable: false,
    });
  }
  if (/timeout|terminated|Connection terminated/i.test(message)) {
    return new ServiceError(ErrorCode.SOURCE_UNREACHABLE, `${doing}: ${message}`, { cause: error, retryable: true });
  }
  return new ServiceError(ErrorCode.INTERNAL, `${doing}: ${message}`, { cause: error });
}
