import { classifyPostgresError } from '@bucketsync/lib-postgres';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { describe, expect, it } from 'vitest';
import { classifyPostgresDriverError, classifyPostgresSourceError } from '../src/postgres-errors.js';

/** The shape of a pg DatabaseError or a Node system error: what the classifier reads. */
const driverError = (code: string, message: string, detail?: string) =>
  Object.assign(new Error(message), { code, ...(detail ? { detail } : {}) });

describe('classifying Postgres driver errors', () => {
  it.each([
    ['28P01', 'password authentication failed for user "app"', ErrorCode.SOURCE_AUTH_FAILED, false],
    ['28000', 'no pg_hba.conf entry for host "10.0.0.1"', ErrorCode.SOURCE_AUTH_FAILED, false],
    ['3D000', 'database "ap" does not exist', ErrorCode.SOURCE_DATABASE_MISSING, false],
    ['42501', 'permission denied for table todos', ErrorCode.SOURCE_PERMISSION_DENIED, false],
    ['42501', 'must be superuser or replication role to start walsender', ErrorCode.SOURCE_PERMISSION_DENIED, false],
    ['55000', 'logical decoding requires wal_level >= logical', ErrorCode.SOURCE_LOGICAL_REPLICATION_OFF, false],
    ['ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432', ErrorCode.SOURCE_UNREACHABLE, true],
    ['ENOTFOUND', 'getaddrinfo ENOTFOUND db.example', ErrorCode.SOURCE_UNREACHABLE, true],
    ['EHOSTUNREACH', 'connect EHOSTUNREACH 10.0.0.9:5432', ErrorCode.SOURCE_UNREACHABLE, true],
    ['ETIMEDOUT', 'connect ETIMEDOUT 10.0.0.9:5432', ErrorCode.SOURCE_UNREACHABLE, true],
    ['57P01', 'terminating connection due to administrator command', ErrorCode.SOURCE_UNREACHABLE, true],
    ['53300', 'sorry, too many clients already', ErrorCode.SOURCE_UNREACHABLE, true],
    ['55006', 'replication slot "s" is active for PID 12', ErrorCode.SOURCE_UNREACHABLE, true],
    ['42P01', 'relation "x" does not exist', ErrorCode.SOURCE_MISCONFIGURED, false],
  ])('%s (%s) is %s, retryable: %s', (code, message, expected, retryable) => {
    expect(classifyPostgresDriverError(driverError(code, message))).toMatchObject({ code: expected, retryable });
  });

  it('names the REPLICATION attribute for a user that may not start a WAL sender (Postgres 16 wording)', () => {
    const kind = classifyPostgresDriverError(
      driverError(
        '42501',
        'permission denied to start WAL sender',
        'Only roles with the REPLICATION attribute may start a WAL sender process.',
      ),
    );
    expect(kind?.hint).toContain('WITH REPLICATION');
  });

  it('treats a lost connection without a code as unreachable, and anything else as unknown', () => {
    expect(classifyPostgresDriverError(new Error('Connection terminated unexpectedly'))).toMatchObject({
      code: ErrorCode.SOURCE_UNREACHABLE,
      retryable: true,
    });
    expect(classifyPostgresDriverError(new Error('boom'))).toBeUndefined();
  });
});

describe('translating source errors', () => {
  it('reclassifies what lib-postgres wrapped by its driver cause, keeping the redacted URI', () => {
    const wrapped = classifyPostgresError(
      driverError('28P01', 'password authentication failed for user "app"'),
      'connecting to postgres://app:***@db:5432/app',
    );
    expect(wrapped.code).toBe(ErrorCode.SOURCE_MISCONFIGURED); // what lib-postgres says
    const error = classifyPostgresSourceError(wrapped, 'creating the replication slot');
    expect(error.code).toBe(ErrorCode.SOURCE_AUTH_FAILED);
    expect(error.retryable).toBe(false);
    expect(error.message).toBe(
      '[BS3004] The source database rejected the login: connecting to postgres://app:***@db:5432/app: ' +
        'password authentication failed for user "app" (SQLSTATE 28P01). ' +
        'Correct the user name and password in the source connection settings (replication.connections: uri, or ' +
        'username and password); if the server names pg_hba.conf, allow this host there. Then restart the service.',
    );
    expect(error.message).not.toContain('not set up for replication');
  });

  it('is idempotent: a translated error classified again is returned unchanged', () => {
    const once = classifyPostgresSourceError(driverError('3D000', 'database "ap" does not exist'), 'connecting');
    expect(classifyPostgresSourceError(once, 'listing tables')).toBe(once);
    expect(once.code).toBe(ErrorCode.SOURCE_DATABASE_MISSING);
    expect(once.message).toContain('connecting: database "ap" does not exist (SQLSTATE 3D000)');
  });

  it('passes errors made on purpose through and wraps unknown ones as internal', () => {
    const missing = new ServiceError(ErrorCode.SOURCE_MISCONFIGURED, 'publication "p" does not exist');
    expect(classifyPostgresSourceError(missing, 'listing tables')).toBe(missing);
    const unknown = classifyPostgresSourceError(new Error('boom'), 'streaming');
    expect(unknown.code).toBe(ErrorCode.INTERNAL);
    expect(unknown.message).toContain('streaming: boom');
  });

  it('turns a dropped slot into history loss only when a slot is named', () => {
    const dropped = driverError('42704', 'replication slot "bucketsync_c1" does not exist');
    expect(classifyPostgresSourceError(dropped, 'streaming', 'bucketsync_c1').code).toBe(ErrorCode.SOURCE_HISTORY_LOST);
    expect(classifyPostgresSourceError(dropped, 'streaming').code).toBe(ErrorCode.SOURCE_MISCONFIGURED);
  });
});
