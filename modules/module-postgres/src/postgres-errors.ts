/**
 * Postgres source errors: history loss (the slot is gone or invalidated) is its own permanent
 * error, so replication restarts into a fresh copy; everything else is classified by
 * lib-postgres (connection problems retryable, configuration problems permanent).
 */
import { classifyPostgresError } from '@bucketsync/lib-postgres';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';

export function classifyPostgresSourceError(error: unknown, doing: string, slot?: string): ServiceError {
  const e = error as { code?: string; message?: string; detail?: string };
  const message = e?.message ?? '';
  const detail = e?.detail ?? '';
  let cause: string | undefined;
  if (slot && e?.code === '42704' && /replication slot/.test(message)) {
    cause = `it was dropped (${message})`;
  } else if (
    slot &&
    // Postgres 13-15 say "cannot read from", 16+ "can no longer get changes from"; the detail says why.
    /can no longer get changes from replication slot|cannot read from logical replication slot|has been invalidated/.test(
      `${message} ${detail}`,
    )
  ) {
    cause = `it was invalidated (${detail || message})`;
  } else if (slot && /requested WAL segment .* has already been removed/.test(message)) {
    cause = `the WAL it needs was removed (${message})`;
  }
  if (cause) {
    return new ServiceError(
      ErrorCode.SOURCE_HISTORY_LOST,
      `replication slot "${slot}" is gone or was invalidated: ${cause}. If it recurs, raise max_slot_wal_keep_size ` +
        '(or set -1): the server invalidates a slot once BucketSync is stopped or behind by more WAL than that; ' +
        "and make sure nothing else drops BucketSync's slots",
      { cause: error },
    );
  }
  return classifyPostgresError(error, doing);
}

/**
 * Checks what logical replication needs before creating a slot or streaming: `wal_level =
 * logical` and a role with the REPLICATION attribute. Fails with what to change.
 */
export async function checkReplicationPrerequisites(client: {
  query<R extends Record<string, unknown>>(text: string): Promise<{ rows: R[] }>;
}): Promise<void> {
  const { rows } = await client.query<{ wal_level: string; role: string; can_replicate: boolean }>(
    `SELECT current_setting('wal_level') AS wal_level, current_user AS role,
            (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_replicate`,
  );
  const row = rows[0]!;
  if (row.wal_level !== 'logical') {
    throw new ServiceError(
      ErrorCode.SOURCE_MISCONFIGURED,
      `wal_level is "${row.wal_level}", but logical replication needs wal_level = logical. ` +
        'Run ALTER SYSTEM SET wal_level = logical; (or set it in postgresql.conf) and restart Postgres',
    );
  }
  if (!row.can_replicate) {
    throw new ServiceError(
      ErrorCode.SOURCE_MISCONFIGURED,
      `the user "${row.role}" may not start logical replication. Run ALTER ROLE "${row.role}" WITH REPLICATION; as a superuser`,
    );
  }
}
