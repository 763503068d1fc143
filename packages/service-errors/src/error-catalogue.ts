/**
 * The error catalogue: every error BucketSync reports has a stable code, a message saying
 * what happened, how to fix it, and whether retrying can help. Codes never change meaning;
 * add new ones at the end of their range. Auth codes use the PowerSync `PSYNC_S21xx` codes on
 * the wire because clients refresh their token when they see them (docs/errors.md).
 */
export interface CatalogueEntry {
  /** Stable code, shown to users and on the wire. */
  readonly code: string;
  /** What happened, in one sentence. */
  readonly message: string;
  /** What the user should do about it. */
  readonly fix: string;
  /** True when the same operation may succeed later without anyone changing anything. */
  readonly retryable: boolean;
  /** HTTP status used when the error reaches a client. */
  readonly status: number;
}

function entry(code: string, message: string, fix: string, retryable: boolean, status = 500): CatalogueEntry {
  return { code, message, fix, retryable, status };
}

export const ErrorCode = {
  // 1xxx: configuration
  CONFIG_INVALID: 'BS1001',
  CONFIG_FILE_UNREADABLE: 'BS1002',
  SYNC_CONFIG_INVALID: 'BS1101',
  // 2xxx: auth (wire codes the PowerSync clients recognise)
  AUTH_MISSING: 'PSYNC_S2101',
  AUTH_INVALID_TOKEN: 'PSYNC_S2102',
  AUTH_EXPIRED: 'PSYNC_S2103',
  AUTH_UNKNOWN_KEY: 'PSYNC_S2104',
  AUTH_BAD_CLAIMS: 'PSYNC_S2105',
  AUTH_KEYS_UNAVAILABLE: 'PSYNC_S2106',
  // 3xxx: source databases
  SOURCE_UNREACHABLE: 'BS3001',
  SOURCE_HISTORY_LOST: 'BS3002',
  SOURCE_MISCONFIGURED: 'BS3003',
  SOURCE_AUTH_FAILED: 'BS3004',
  SOURCE_DATABASE_MISSING: 'BS3005',
  SOURCE_PERMISSION_DENIED: 'BS3006',
  SOURCE_LOGICAL_REPLICATION_OFF: 'BS3007',
  // 4xxx: bucket storage
  STORAGE_UNREACHABLE: 'BS4001',
  SNAPSHOT_PENDING: 'BS4002',
  ROW_TOO_LARGE: 'BS4003',
  // 5xxx: client requests
  REQUEST_INVALID: 'BS5001',
  TOO_MANY_BUCKETS: 'BS5002',
  /** Wire code PowerSync uses for "no sync rules available"; clients retry it. */
  SYNC_NOT_READY: 'PSYNC_S2302',
  /** PowerSync's wire code for "too many connections"; clients retry it. */
  TOO_MANY_CONNECTIONS: 'PSYNC_S2304',
  REQUEST_TOO_LARGE: 'BS5003',
  REQUEST_UNSUPPORTED_TYPE: 'BS5004',
  WRITE_CHECKPOINT_RATE_LIMITED: 'BS5005',
  // 9xxx: bugs
  INTERNAL: 'BS9001',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const ERROR_CATALOGUE: Readonly<Record<ErrorCode, CatalogueEntry>> = {
  BS1001: entry(
    'BS1001',
    'The service config is invalid.',
    'Fix the fields listed in this error and start again.',
    false,
  ),
  BS1002: entry(
    'BS1002',
    'The config file could not be read.',
    'Check the path given with -c / --config and that the file is readable YAML or JSON.',
    false,
  ),
  BS1101: entry(
    'BS1101',
    'The sync config has errors.',
    'Fix the diagnostics listed (file:line:col); `bucketsync validate <file>` checks a sync config offline.',
    false,
    400,
  ),
  PSYNC_S2101: entry(
    'PSYNC_S2101',
    'No authorization token was sent.',
    'Send the JWT as `Authorization: Token <jwt>` (or `Bearer <jwt>`).',
    false,
    401,
  ),
  PSYNC_S2102: entry(
    'PSYNC_S2102',
    'The authorization token is malformed or its signature does not verify.',
    'Sign tokens with a key configured under client_auth and send them unmodified.',
    false,
    401,
  ),
  PSYNC_S2103: entry(
    'PSYNC_S2103',
    'The authorization token has expired or is not valid yet.',
    'Fetch a fresh token; check the clocks of the token issuer and the service.',
    false,
    401,
  ),
  PSYNC_S2104: entry(
    'PSYNC_S2104',
    'The authorization token was signed with an unknown key.',
    "Add the key to client_auth (jwks keys or jwks_uri) or sign with a known key's kid.",
    false,
    401,
  ),
  PSYNC_S2105: entry(
    'PSYNC_S2105',
    'The authorization token has invalid claims.',
    'Tokens need sub, iat and exp, an aud from client_auth.audience, and a lifetime within the cap.',
    false,
    401,
  ),
  PSYNC_S2106: entry(
    'PSYNC_S2106',
    'The keys to verify the authorization token could not be loaded.',
    'Check that client_auth.jwks_uri is reachable from the service.',
    true,
    401,
  ),
  BS3001: entry(
    'BS3001',
    'The source database cannot be reached.',
    'Check the host and port in the source connection settings, that the database server is running, and that this machine can reach it (DNS, firewall).',
    true,
  ),
  BS3002: entry(
    'BS3002',
    'The source database no longer has the change history replication needs.',
    'Nothing to do: replication restarts with a fresh copy while clients keep syncing from the old one.',
    false,
  ),
  BS3003: entry(
    'BS3003',
    'The source database is not set up for replication.',
    'Run the SQL or change the settings named in this error, then restart the service.',
    false,
  ),
  BS3004: entry(
    'BS3004',
    'The source database rejected the login.',
    'Correct the user name and password in the source connection settings (replication.connections: uri, or username and password); if the server names pg_hba.conf, allow this host there. Then restart the service.',
    false,
  ),
  BS3005: entry(
    'BS3005',
    'The database named in the source connection settings does not exist on that server.',
    'Correct the database name (the path of the uri, or database) in replication.connections, or create that database, then restart the service.',
    false,
  ),
  BS3006: entry(
    'BS3006',
    'The source database user lacks a permission replication needs.',
    'Run the GRANT or ALTER ROLE named in this error as a superuser or the owner, then restart the service.',
    false,
  ),
  BS3007: entry(
    'BS3007',
    'The source database server does not allow logical replication.',
    'Change the server setting named in this error, restart the database server, then restart the service.',
    false,
  ),
  BS4001: entry(
    'BS4001',
    'The bucket storage database cannot be reached or refused the connection.',
    'Check the storage connection settings (host, port, database, user name, password) and that the database server is running.',
    true,
  ),
  BS4002: entry(
    'BS4002',
    'The snapshot cannot be marked done while table snapshots are pending.',
    'Finish (markTableSnapshotDone) the tables named in this error first.',
    false,
  ),
  BS4003: entry(
    'BS4003',
    'A row is larger than the configured limit and was skipped.',
    'Make the row smaller or raise the row size limit in the service config.',
    false,
  ),
  BS5001: entry('BS5001', 'The request is invalid.', 'Fix the field named in this error.', false, 400),
  BS5002: entry(
    'BS5002',
    'The connection would sync more buckets than allowed.',
    'Narrow the sync config definitions named in this error, or raise max_buckets_per_connection.',
    false,
    400,
  ),
  BS5003: entry(
    'BS5003',
    'The request body is larger than the service accepts.',
    'Send a smaller request: fewer buckets, subscriptions or parameters.',
    false,
    413,
  ),
  BS5004: entry(
    'BS5004',
    'The request body has a type the service does not read.',
    'Send the body as JSON, with Content-Type: application/json.',
    false,
    415,
  ),
  BS5005: entry(
    'BS5005',
    'Write checkpoints are asked for faster than the service allows for one user.',
    'The client retries by itself; a client asks once per upload, so a loop asking without uploading is the likely cause.',
    true,
    429,
  ),
  PSYNC_S2302: entry(
    'PSYNC_S2302',
    'No sync config is active yet.',
    'The client retries by itself; the service logs "first consistent checkpoint" when clients can sync.',
    true,
    503,
  ),
  PSYNC_S2304: entry(
    'PSYNC_S2304',
    'This process serves as many sync streams as it may.',
    'The client retries by itself; add API processes or raise api.parameters.max_concurrent_connections.',
    true,
    429,
  ),
  BS9001: entry('BS9001', 'An internal error occurred.', 'Report it with the logs around this message.', false),
};
