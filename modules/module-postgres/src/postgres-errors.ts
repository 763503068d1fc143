/**
 * Postgres source errors: history loss (the slot is gone or invalidated) is its own permanent
 * error, so replication restarts into a fresh copy; everything else is classified by
 * lib-postgres (connection problems retryable, configuration problems permanent).
 */
import { classifyPostgresError } from '@bucketsync/lib-postgres';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';

export function classifyPostgresSourceError(error: unknown, doing: string, slot?: string): ServiceError {
  const e = error as { code?: string; message?: string };
  const message = e?.message ?? '';
  if (
    slot &&
    ((e?.code === '42704' && /replication slot/.test(message)) ||
      /can no longer get changes from replication slot|has been invalidated|requested WAL segment .* has already been removed/.test(
        message,
      ))
  ) {
    return new ServiceError(ErrorCode.SOURCE_HISTORY_LOST, `replication slot "${slot}": ${message}`, { cause: error });
  }
  return classifyPostgresError(error, doing);
}
