import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { describe, expect, it } from 'vitest';
import { WriteCheckpointLimiter } from '../src/http/write-checkpoint-limiter.js';

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

describe('WriteCheckpointLimiter', () => {
  it('allows a burst, then the steady rate, and says how long to wait', () => {
    const c = clock();
    const limiter = new WriteCheckpointLimiter({ ratePerSecond: 5, burst: 3, now: c.now });
    expect([limiter.take('u'), limiter.take('u'), limiter.take('u')]).toEqual([0, 0, 0]);
    expect(limiter.take('u')).toBe(200); // one token per 200 ms
    c.t += 100;
    expect(limiter.take('u')).toBe(100);
    c.t += 100;
    expect(limiter.take('u')).toBe(0);
    expect(limiter.take('u')).toBeGreaterThan(0);
  });

  it('holds a user to the rate over a long run', () => {
    const c = clock();
    const limiter = new WriteCheckpointLimiter({ ratePerSecond: 10, burst: 5, now: c.now });
    let allowed = 0;
    // 10 s of a client asking every millisecond.
    for (let ms = 0; ms < 10_000; ms++) {
      if (limiter.take('greedy') === 0) allowed++;
      c.t += 1;
    }
    expect(allowed).toBeGreaterThanOrEqual(100);
    expect(allowed).toBeLessThanOrEqual(5 + 100);
  });

  it('limits each user on its own', () => {
    const c = clock();
    const limiter = new WriteCheckpointLimiter({ ratePerSecond: 1, burst: 2, now: c.now });
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a') > 0]).toEqual([0, 0, true]);
    expect([limiter.take('b'), limiter.take('b')]).toEqual([0, 0]);
  });

  it('a refused call takes nothing', () => {
    const c = clock();
    const limiter = new WriteCheckpointLimiter({ ratePerSecond: 1, burst: 1, now: c.now });
    expect(limiter.take('u')).toBe(0);
    for (let i = 0; i < 50; i++) expect(limiter.take('u')).toBeGreaterThan(0);
    c.t += 1000;
    expect(limiter.take('u')).toBe(0);
  });

  it('admit throws a retryable 429 naming the wait', () => {
    const c = clock();
    const limiter = new WriteCheckpointLimiter({ ratePerSecond: 2, burst: 1, now: c.now });
    limiter.admit('u');
    let error: unknown;
    try {
      limiter.admit('u');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(ErrorCode.WRITE_CHECKPOINT_RATE_LIMITED);
    expect((error as ServiceError).status).toBe(429);
    expect((error as ServiceError).retryable).toBe(true);
    expect((error as ServiceError).message).toContain('retry in 500 ms');
  });

  it('forgets idle users as others arrive, without changing anyone’s allowance', () => {
    const c = clock();
    const limiter = new WriteCheckpointLimiter({ ratePerSecond: 10, burst: 10, now: c.now });
    for (let i = 0; i < 1000; i++) limiter.take(`user-${i}`);
    expect(limiter.trackedUsers).toBe(1000);
    c.t += 1000; // every bucket is full again after burst / rate = 1 s
    for (let i = 0; i < 600; i++) limiter.take(`new-${i}`);
    // Each call drops up to two idle users: all 1,000 old ones are gone.
    expect(limiter.trackedUsers).toBe(600);
    // A user seen recently is not forgotten: its used allowance still counts.
    for (let i = 0; i < 10; i++) limiter.take('busy');
    limiter.take('someone-else');
    expect(limiter.take('busy')).toBeGreaterThan(0);
  });

  it('never tracks more than maxUsers, however many users come at once', () => {
    const c = clock();
    const limiter = new WriteCheckpointLimiter({ ratePerSecond: 1, burst: 5, maxUsers: 100, now: c.now });
    for (let i = 0; i < 10_000; i++) {
      limiter.take(`user-${i}`);
      expect(limiter.trackedUsers).toBeLessThanOrEqual(100);
    }
    expect(limiter.trackedUsers).toBe(100);
  });

  it('keeps a user that is seen often, evicting the least recently seen', () => {
    const c = clock();
    const limiter = new WriteCheckpointLimiter({ ratePerSecond: 1, burst: 2, maxUsers: 3, now: c.now });
    limiter.take('hot');
    limiter.take('hot');
    for (let i = 0; i < 20; i++) {
      limiter.take(`cold-${i}`);
      expect(limiter.take('hot')).toBeGreaterThan(0); // still remembered, still limited
    }
  });

  it('is not fooled by a clock that steps back', () => {
    const c = clock();
    const limiter = new WriteCheckpointLimiter({ ratePerSecond: 1, burst: 1, now: c.now });
    expect(limiter.take('u')).toBe(0);
    c.t -= 60_000;
    expect(limiter.take('u')).toBeGreaterThan(0);
  });

  it('refuses settings that would allow nothing', () => {
    expect(() => new WriteCheckpointLimiter({ ratePerSecond: 0 })).toThrow(RangeError);
    expect(() => new WriteCheckpointLimiter({ burst: 0.5 })).toThrow(RangeError);
  });
});
