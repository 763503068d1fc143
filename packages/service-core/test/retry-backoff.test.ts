import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { describe, expect, it } from 'vitest';
import { formatDelay, RetryBackoff, shouldRetry } from '../src/replication/retry-backoff.js';

describe('RetryBackoff', () => {
  it('doubles from 1 s to a 60 s cap by default', () => {
    const backoff = new RetryBackoff();
    const delays = Array.from({ length: 9 }, () => backoff.next());
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
  });

  it('starts over after a success', () => {
    const backoff = new RetryBackoff({ initialDelayMs: 100, maxDelayMs: 400 });
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([100, 200, 400, 400]);
    backoff.reset();
    expect(backoff.next()).toBe(100);
  });
});

describe('which failures are retried', () => {
  it('retries what may pass by itself, never bad credentials, missing settings or unexpected errors', () => {
    expect(shouldRetry(new ServiceError(ErrorCode.SOURCE_UNREACHABLE))).toBe(true);
    expect(shouldRetry(new ServiceError(ErrorCode.STORAGE_UNREACHABLE))).toBe(true);
    for (const code of [
      ErrorCode.INTERNAL,
      ErrorCode.SOURCE_AUTH_FAILED,
      ErrorCode.SOURCE_DATABASE_MISSING,
      ErrorCode.SOURCE_PERMISSION_DENIED,
      ErrorCode.SOURCE_LOGICAL_REPLICATION_OFF,
      ErrorCode.SOURCE_MISCONFIGURED,
      ErrorCode.SOURCE_HISTORY_LOST,
    ]) {
      expect(shouldRetry(new ServiceError(code))).toBe(false);
    }
    expect(shouldRetry(new ServiceError(ErrorCode.STORAGE_UNREACHABLE, 'bad password', { retryable: false }))).toBe(
      false,
    );
  });

  it('formats delays for log lines', () => {
    expect(formatDelay(1000)).toBe('1 s');
    expect(formatDelay(250)).toBe('0.25 s');
    expect(formatDelay(60_000)).toBe('60 s');
  });
});
