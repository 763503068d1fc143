import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { describe, expect, it } from 'vitest';
import { replicationFailureAction } from '../src/replication/replication-engine.js';

describe('what the replication engine does after a job failed', () => {
  it('starts a fresh copy when the source lost its history', () => {
    expect(replicationFailureAction(new ServiceError(ErrorCode.SOURCE_HISTORY_LOST, 'slot gone'))).toBe('fresh-copy');
  });

  it('starts an unexpected failure again later: a bug is not known to be permanent, and a stall serves stale data', () => {
    expect(replicationFailureAction(new Error('Connection terminated unexpectedly'))).toBe('restart-later');
    expect(replicationFailureAction(new ServiceError(ErrorCode.INTERNAL, 'oops'))).toBe('restart-later');
    expect(replicationFailureAction('a thrown string')).toBe('restart-later');
  });

  it('stops on a classified permanent error, which needs someone to fix something first', () => {
    for (const code of [
      ErrorCode.SOURCE_AUTH_FAILED,
      ErrorCode.SOURCE_DATABASE_MISSING,
      ErrorCode.SOURCE_PERMISSION_DENIED,
      ErrorCode.SOURCE_LOGICAL_REPLICATION_OFF,
      ErrorCode.SOURCE_MISCONFIGURED,
    ]) {
      expect(replicationFailureAction(new ServiceError(code, 'x')), code).toBe('stop');
    }
  });
});
