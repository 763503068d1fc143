/**
 * The one retry policy of BucketSync: which failures are retried, and how long to wait.
 * Delays double from `initialDelayMs` to `maxDelayMs` and go back to the start after a
 * success. Pure (no timers): callers sleep for `next()` themselves and log what it says.
 */
import type { ServiceError } from '@bucketsync/service-errors';

export interface RetryBackoffOptions {
  /** First delay. Default 1 s. */
  initialDelayMs?: number;
  /** Cap of the doubling. Default 60 s. */
  maxDelayMs?: number;
}

export class RetryBackoff {
  private readonly initial: number;
  private readonly max: number;
  private delay: number;

  constructor(options: RetryBackoffOptions = {}) {
    this.initial = options.initialDelayMs ?? 1000;
    this.max = Math.max(options.maxDelayMs ?? 60_000, this.initial);
    this.delay = this.initial;
  }

  /** The delay before the next attempt; each call doubles the following one up to the cap. */
  next(): number {
    const delay = this.delay;
    this.delay = Math.min(this.delay * 2, this.max);
    return delay;
  }

  /** After a success: the next failure waits the initial delay again. */
  reset(): void {
    this.delay = this.initial;
  }
}

/**
 * Whether a failure is retried: only when the error says retrying can help (the server is
 * unreachable, restarting, out of connections). Everything else (bad credentials, a missing
 * setting or right, an unexpected BS9001) stops: it does not pass by itself.
 */
export function shouldRetry(error: ServiceError): boolean {
  return error.retryable;
}

/** A delay for log lines: `1 s`, `0.25 s`, `60 s`. */
export function formatDelay(ms: number): string {
  return `${Number((ms / 1000).toFixed(2))} s`;
}
