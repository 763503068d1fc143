/**
 * Postgres source errors: driver errors are translated here, at the module's edge, into
 * catalogue errors that name the true cause (unreachable, login rejected, unknown database,
 * missing permission, wal_level, history lost) with its fix and whether retrying can help.
 * The coordinator reads `retryable`: retryable errors are retried with backoff, the rest stop.
 */
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';

/** What a driver error means: the catalogue code, whether retrying can help, and an optional hint with the SQL to run. */
export interface PostgresErrorClass {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  /** Appended to the details: the specific fix for this occurrence (e.g. the ALTER ROLE to run). */
  readonly hint?: string;
}

/**
 * Node errno codes of a server that cannot be reached now (down, restarting, a network or DNS
 * problem): retrying can help. A misspelt host name (ENOTFOUND) looks like a DNS outage, so it
 * is retried too; the log says so at each attempt and the fix names DNS.
 */
const NETWORK_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * SQLSTATE classes of a server that is unavailable for now: 08 connection exception, 40
 * transaction rollback, 53 insufficient resources, 57 operator intervention (shutting down,
 * starting up), 58 system error.
 */
const UNAVAILABLE_SQLSTATE_CLASSES = new Set(['08', '40', '53', '57', '58']);

/** Driver errors without a code for a connection that was lost or could not be made in time. */
const LOST_CONNECTION = /timeout|Connection terminated|not queryable/i;

/**
 * Classifies a raw driver error (a `pg` DatabaseError with a SQLSTATE `code`, or a Node
 * system error with an errno `code`). Pure: no I/O. Returns undefined for anything else.
 */
export function classifyPostgresDriverError(error: unknown): PostgresErrorClass | undefined {
  const e = error as { code?: unknown; message?: unknown; detail?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const text = `${typeof e?.message === 'string' ? e.message : ''} ${typeof e?.detail === 'string' ? e.detail : ''}`;
  if (code && NETWORK_ERRNOS.has(code)) return { code: ErrorCode.SOURCE_UNREACHABLE, retryable: true };
  if (code && /^[0-9A-Z]{5}$/.test(code)) {
    // 28P01 invalid_password, 28000 invalid_authorization_specification (no pg_hba.conf entry, unknown role)
    if (code === '28P01' || code === '28000') return { code: ErrorCode.SOURCE_AUTH_FAILED, retryable: false };
    if (code === '3D000') return { code: ErrorCode.SOURCE_DATABASE_MISSING, retryable: false };
    if (code === '42501') {
      // A user without REPLICATION opening a replication connection: "must be superuser or
      // replication role to start walsender" (<= 15), "permission denied to start WAL sender" (16+).
      if (/walsender|WAL sender|replication/i.test(text)) {
        return {
          code: ErrorCode.SOURCE_PERMISSION_DENIED,
          retryable: false,
          hint: 'the user needs the REPLICATION attribute: ALTER ROLE <user> WITH REPLICATION;',
        };
      }
      return {
        code: ErrorCode.SOURCE_PERMISSION_DENIED,
        retryable: false,
        hint: 'grant the privilege the server names, e.g. GRANT SELECT ON <table> TO <user>;',
      };
    }
    // 55000 object_not_in_prerequisite_state: "logical decoding requires wal_level >= logical".
    if (/wal_level/.test(text)) {
      return {
        code: ErrorCode.SOURCE_LOGICAL_REPLICATION_OFF,
        retryable: false,
        hint: 'run ALTER SYSTEM SET wal_level = logical; (or set it in postgresql.conf) and restart Postgres',
      };
    }
    // 55006 object_in_use: e.g. a replication slot still held by a connection that is closing.
    if (UNAVAILABLE_SQLSTATE_CLASSES.has(code.slice(0, 2)) || code === '55006') {
      return { code: ErrorCode.SOURCE_UNREACHABLE, retryable: true };
    }
    return { code: ErrorCode.SOURCE_MISCONFIGURED, retryable: false };
  }
  if (LOST_CONNECTION.test(text)) return { code: ErrorCode.SOURCE_UNREACHABLE, retryable: true };
  return undefined;
}

/**
 * Translates any error met while `doing` something on the source into a ServiceError. A
 * ServiceError made here or by lib-postgres keeps its wording (lib-postgres names the redacted
 * URI) but gets the code of its driver cause; with `slot`, errors saying the slot is gone or
 * invalidated become SOURCE_HISTORY_LOST.
 */
export function classifyPostgresSourceError(error: unknown, doing: string, slot?: string): ServiceError {
  let driver = error;
  let details: string | undefined;
  if (error instanceof ServiceError) {
    // Errors made on purpose (a missing publication, a table without a key) have no driver cause.
    if (error.cause === undefined || error.cause instanceof ServiceError) return error;
    driver = error.cause;
    details = error.details;
  }
  const e = driver as { code?: string; message?: string; detail?: string };
  const message = e?.message ?? String(driver);
  const detail = e?.detail ?? '';
  const history = slot ? historyLoss(e?.code, message, detail) : undefined;
  if (history) {
    return new ServiceError(
      ErrorCode.SOURCE_HISTORY_LOST,
      `replication slot "${slot}" is gone or was invalidated: ${history}. If it recurs, raise max_slot_wal_keep_size ` +
        '(or set -1): the server invalidates a slot once BucketSync is stopped or behind by more WAL than that; ' +
        "and make sure nothing else drops BucketSync's slots",
      { cause: driver },
    );
  }
  const kind = classifyPostgresDriverError(driver);
  // Already translated (classified twice on its way up): keep it as it is.
  if (error instanceof ServiceError && (!kind || (kind.code === error.code && kind.retryable === error.retryable)))
    return error;
  if (!kind) {
    return new ServiceError(ErrorCode.INTERNAL, `${doing}: ${message}`, { cause: driver });
  }
  const sqlstate = e?.code && /^[0-9A-Z]{5}$/.test(e.code) ? ` (SQLSTATE ${e.code})` : '';
  const what = details ?? `${doing}: ${message}${sqlstate}`;
  return new ServiceError(kind.code, kind.hint ? `${what}; ${kind.hint}` : what, {
    cause: driver,
    retryable: kind.retryable,
  });
}

/** Why a slot's history is gone, when the error says so. */
function historyLoss(code: string | undefined, message: string, detail: string): string | undefined {
  if (code === '42704' && /replication slot/.test(message)) return `it was dropped (${message})`;
  // Postgres 13-15 say "cannot read from", 16+ "can no longer get changes from"; the detail says why.
  if (
    /can no longer get changes from replication slot|cannot read from logical replication slot|has been invalidated/.test(
      `${message} ${detail}`,
    )
  ) {
    return `it was invalidated (${detail || message})`;
  }
  if (/requested WAL segment .* has already been removed/.test(message))
    return `the WAL it needs was removed (${message})`;
  return undefined;
}

/** A client that can run a query: a pg Client or PoolClient. */
interface Queryable {
  query<R extends Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/**
 * Checks what logical replication needs before a slot is created or a stream started:
 * `wal_level = logical`, a role with the REPLICATION attribute, and the publication. Fails
 * with the code of the first missing one and the SQL to run. Called by the streamer.
 */
export async function checkReplicationPrerequisites(client: Queryable, publication?: string): Promise<void> {
  const { rows } = await client.query<{
    wal_level: string;
    role: string;
    can_replicate: boolean;
    publication_exists: boolean;
  }>(
    `SELECT current_setting('wal_level') AS wal_level, current_user AS role,
            (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_replicate,
            EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1) AS publication_exists`,
    [publication ?? null],
  );
  const row = rows[0]!;
  if (row.wal_level !== 'logical') {
    throw new ServiceError(
      ErrorCode.SOURCE_LOGICAL_REPLICATION_OFF,
      `wal_level is "${row.wal_level}", but logical replication needs wal_level = logical. ` +
        'Run ALTER SYSTEM SET wal_level = logical; (or set it in postgresql.conf) and restart Postgres',
    );
  }
  if (!row.can_replicate) {
    throw new ServiceError(
      ErrorCode.SOURCE_PERMISSION_DENIED,
      `the user "${row.role}" may not start logical replication. Run ALTER ROLE "${row.role}" WITH REPLICATION; as a superuser`,
    );
  }
  if (publication !== undefined && !row.publication_exists) {
    throw new ServiceError(
      ErrorCode.SOURCE_MISCONFIGURED,
      `publication "${publication}" does not exist. Create it as the tables' owner: CREATE PUBLICATION "${publication}" FOR ALL TABLES;`,
    );
  }
}
