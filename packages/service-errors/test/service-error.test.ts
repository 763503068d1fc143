import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, ErrorCode, isRetryable, ServiceError } from '../src/index.js';

describe('ServiceError', () => {
  it('reads as code, what happened with details, and how to fix it', () => {
    const error = new ServiceError(ErrorCode.SNAPSHOT_PENDING, 'public.todos, public.lists are still being copied');
    expect(error.message).toBe(
      '[BS4002] The snapshot cannot be marked done while table snapshots are pending: public.todos, public.lists are still being copied. Finish (markTableSnapshotDone) the tables named in this error first.',
    );
    expect(error.code).toBe('BS4002');
    expect(error.retryable).toBe(false);
  });

  it('takes retryability from the catalogue unless overridden', () => {
    expect(isRetryable(new ServiceError(ErrorCode.SOURCE_UNREACHABLE))).toBe(true);
    expect(isRetryable(new ServiceError(ErrorCode.SOURCE_UNREACHABLE, undefined, { retryable: false }))).toBe(false);
    expect(isRetryable(new Error('plain'))).toBe(false);
  });

  it('keeps the cause', () => {
    const cause = new Error('ECONNREFUSED');
    expect(new ServiceError(ErrorCode.STORAGE_UNREACHABLE, 'connect failed', { cause }).cause).toBe(cause);
  });

  it('renders the wire body with the PowerSync auth code clients refresh tokens on', () => {
    const body = new ServiceError(ErrorCode.AUTH_EXPIRED, 'exp was 2026-01-01T00:00:00Z').toResponseBody();
    expect(body.error.code).toBe('PSYNC_S2103');
    expect(body.error.status).toBe(401);
    expect(body.error.description).toContain('exp was 2026-01-01T00:00:00Z');
  });
});

describe('the error catalogue', () => {
  it('has one entry per code, keyed by its own code, each with a message and a fix', () => {
    const codes = Object.values(ErrorCode);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) {
      const entry = ERROR_CATALOGUE[code];
      expect(entry.code).toBe(code);
      expect(entry.message).toMatch(/\.$/);
      expect(entry.fix.length).toBeGreaterThan(10);
    }
  });
});
