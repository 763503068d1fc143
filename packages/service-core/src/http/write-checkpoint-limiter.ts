/**
 * Per-user rate limit for write checkpoints: a token bucket per user (a steady rate and a small
 * burst), amortised O(1) per call. Users are kept in least-recently-seen order; idle users, whose bucket
 * would be full anyway, are dropped as others arrive, and never more than `maxUsers` are held.
 */
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';

export interface WriteCheckpointLimiterOptions {
  /** Write checkpoints per second each user may create in the long run. Default 5. */
  ratePerSecond?: number;
  /** Write checkpoints a user may create at once after being idle. Default 10. */
  burst?: number;
  /**
   * Most users tracked at once. Past it the least recently seen user is forgotten (it starts
   * over with a full burst), so memory stays bounded under any number of users. Default 100,000.
   */
  maxUsers?: number;
  /** Clock in ms, for tests. Default `Date.now`. */
  now?: () => number;
}

interface UserBucket {
  /** Tokens left at `at`. */
  tokens: number;
  at: number;
}

/**
 * Decides whether a user may create a write checkpoint now. Each write checkpoint reads the
 * source's head position, so an unlimited client can keep the user's own database busy. Meant
 * for the write-checkpoint routes (sync-server.ts), asked before the head position is read.
 */
export class WriteCheckpointLimiter {
  private readonly rate: number;
  private readonly burst: number;
  private readonly maxUsers: number;
  private readonly now: () => number;
  /** Insertion order is least recently seen first (an entry is re-inserted when seen). */
  private readonly users = new Map<string, UserBucket>();
  /** Time after which an untouched bucket is full again, so forgetting it changes nothing. */
  private readonly refillMs: number;

  constructor(options: WriteCheckpointLimiterOptions = {}) {
    this.rate = options.ratePerSecond ?? 5;
    this.burst = options.burst ?? 10;
    this.maxUsers = options.maxUsers ?? 100_000;
    this.now = options.now ?? Date.now;
    if (!(this.rate > 0) || !(this.burst >= 1) || !(this.maxUsers >= 1)) {
      throw new RangeError('WriteCheckpointLimiter needs ratePerSecond > 0, burst >= 1 and maxUsers >= 1');
    }
    this.refillMs = (this.burst / this.rate) * 1000;
  }

  /** Users currently tracked; for tests and metrics. */
  get trackedUsers(): number {
    return this.users.size;
  }

  /**
   * Takes one write checkpoint from `userId`'s allowance. Returns 0 when it may go ahead,
   * otherwise how many ms until it may (nothing is taken then).
   */
  take(userId: string): number {
    const now = this.now();
    const seen = this.users.get(userId);
    let tokens = this.burst;
    if (seen !== undefined) {
      tokens = Math.min(this.burst, seen.tokens + (Math.max(0, now - seen.at) * this.rate) / 1000);
      this.users.delete(userId); // re-inserted below: moves to most recently seen
    }
    const allowed = tokens >= 1;
    if (allowed) tokens -= 1;
    this.users.set(userId, seen === undefined ? { tokens, at: now } : Object.assign(seen, { tokens, at: now }));
    this.evict(now);
    return allowed ? 0 : Math.ceil(((1 - tokens) * 1000) / this.rate);
  }

  /** Like `take`, but throws a retryable 429 ServiceError (`BS5005`) when `userId` is over its limit. */
  admit(userId: string): void {
    const waitMs = this.take(userId);
    if (waitMs > 0) {
      throw new ServiceError(
        ErrorCode.WRITE_CHECKPOINT_RATE_LIMITED,
        `this user asks for write checkpoints faster than ${this.rate} per second (burst ${this.burst}); retry in ${waitMs} ms`,
      );
    }
  }

  /** Drops at most two least recently seen users: any over `maxUsers`, or idle ones. O(1).
   * Two per call keep pace with the one user a call may add. */
  private evict(now: number): void {
    for (let i = 0; i < 2; i++) {
      const oldest = this.users.entries().next();
      if (oldest.done) return;
      const [userId, bucket] = oldest.value;
      const idle = now - bucket.at >= this.refillMs;
      if (!idle && this.users.size <= this.maxUsers) return;
      this.users.delete(userId);
    }
  }
}
