import { createLogger } from '@bucketsync/lib-services';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { describe, expect, it } from 'vitest';
import { RequestErrors } from '../src/http/request-errors.js';
import { clientIdProblem } from '../src/http/sync-server.js';

function setup(now = () => 0) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'info', format: 'json', write: (l) => lines.push(JSON.parse(l)) });
  return { lines, errors: new RequestErrors(logger, { burst: 2, windowMs: 1000, now }) };
}

describe('what clients and the log see of an error', () => {
  it('a server fault shows its catalogue text and an id, never its details; the log line has both', () => {
    const { lines, errors } = setup();
    const cause = new ServiceError(
      ErrorCode.STORAGE_UNREACHABLE,
      'postgres://app:***@db.internal:5432/storage: invalid byte sequence for encoding "UTF8": 0x00 (index write_checkpoints_pkey)',
    );
    const answer = errors.answer(cause);
    expect(answer.status).toBe(500);
    const text = JSON.stringify(answer.body);
    for (const internal of ['postgres://', 'db.internal', 'UTF8', 'write_checkpoints_pkey']) {
      expect(text).not.toContain(internal);
    }
    expect(answer.body.error.description).toContain('The bucket storage database cannot be reached');
    expect(answer.body.error.description).toContain(answer.body.error.id!);
    expect(lines).toHaveLength(1);
    expect(JSON.stringify(lines[0])).toContain(answer.body.error.id!);
    expect(JSON.stringify(lines[0])).toContain('write_checkpoints_pkey');
    // A thrown plain error is a BS9001 the same way.
    expect(JSON.stringify(errors.answer(new Error('SELECT * FROM secret_table')).body)).not.toContain('secret_table');
  });

  it('a client error goes back as it is, naming the field, and is not logged', () => {
    const { lines, errors } = setup();
    const answer = errors.answer(new ServiceError(ErrorCode.REQUEST_INVALID, 'client_id: required'));
    expect(answer.status).toBe(400);
    expect(answer.body.error.description).toContain('client_id: required');
    expect(lines).toHaveLength(0);
  });

  it('logs each cause at most `burst` times per window, then says how many it held back', () => {
    let now = 0;
    const { lines, errors } = setup(() => now);
    for (let i = 0; i < 10; i++) errors.answer(new Error(`failure ${i}`));
    expect(lines.filter((l) => l.msg === 'request failed' || l.message === 'request failed')).toHaveLength(2);
    now = 1500;
    errors.answer(new Error('later'));
    expect(JSON.stringify(lines)).toContain('"notLogged":8');
  });

  it('"not ready" is a retryable 503 with Retry-After, logged once per window', () => {
    const { lines, errors } = setup();
    for (let i = 0; i < 3; i++) {
      const answer = errors.answer(new ServiceError(ErrorCode.SYNC_NOT_READY, 'first copy running'));
      expect(answer.status).toBe(503);
      expect(answer.headers['retry-after']).toBe('5');
      expect(answer.body.error.description).toContain('first copy running');
    }
    expect(lines).toHaveLength(1);
  });

  it('client ids: required, capped, no control characters', () => {
    expect(clientIdProblem('5f0c8c2e-6c1b-4a5e-9f3e-1d2b3c4d5e6f')).toBeUndefined();
    expect(clientIdProblem(undefined)).toContain('required');
    expect(clientIdProblem('')).toContain('required');
    expect(clientIdProblem('\u0000')).toContain('control characters');
    expect(clientIdProblem('x'.repeat(8000))).toContain('at most 200 characters');
  });
});
