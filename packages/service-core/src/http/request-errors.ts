/**
 * What a client sees of an error, and what the log sees. A client error (4xx) names the field at
 * fault and goes back as it is. A server fault (5xx) goes back as its catalogue text and an error
 * id, never its details: those can hold a storage URI, an SQL error or an index name; the log
 * line with the same id has them. Server faults are logged at most `burst` times per cause per
 * window (a broken dependency fails every request); the rest are counted and summed up later.
 * "Not ready yet" (503) is a state, not a fault: logged once per window, with Retry-After.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '@bucketsync/lib-services';
import { ERROR_CATALOGUE, ErrorCode, ServiceError } from '@bucketsync/service-errors';

/** The JSON body of an error answer (sync-protocol.md "Auth"). */
export interface ErrorBody {
  error: { code: string; status: number; description: string; id?: string };
}

export interface ErrorAnswer {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
}

export interface RequestErrorsOptions {
  /** Log lines per cause (error code) per window. Default 5. */
  burst?: number;
  /** The window, ms. Default 30 s. */
  windowMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export function toServiceError(error: unknown): ServiceError {
  if (error instanceof ServiceError) return error;
  return new ServiceError(ErrorCode.INTERNAL, describeThrown(error), { cause: error });
}

/** Text for anything thrown: an object without a prototype has no toString (found by the fuzz suite). */
function describeThrown(error: unknown): string {
  if (error instanceof Error) return error.message;
  try {
    return String(error);
  } catch {
    return Object.prototype.toString.call(error);
  }
}

export class RequestErrors {
  private readonly burst: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  /** Per cause: when its window started, lines logged and lines held back in it. */
  private readonly windows = new Map<string, { start: number; logged: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    options: RequestErrorsOptions = {},
  ) {
    this.burst = options.burst ?? 5;
    this.windowMs = options.windowMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  /** The answer for `error`, logging it as its kind asks. */
  answer(error: unknown): ErrorAnswer {
    const e = toServiceError(error);
    if (e.code === ErrorCode.SYNC_NOT_READY) {
      if (this.mayLog('not-ready', 1)) this.logger.warn('clients are told to retry later', { reason: e.message });
      return { status: e.status, body: e.toResponseBody(), headers: { 'retry-after': '5' } };
    }
    if (e.status < 500) return { status: e.status, body: e.toResponseBody(), headers: {} };
    const id = randomUUID();
    if (this.mayLog(e.code, this.burst)) this.logger.error('request failed', { errorId: id, error: e });
    const entry = ERROR_CATALOGUE[e.code];
    return {
      status: e.status,
      body: {
        error: {
          code: e.code,
          status: e.status,
          description: `[${e.code}] ${entry.message} The service log has the details under error id ${id}.`,
          id,
        },
      },
      headers: {},
    };
  }

  /** Whether a line of `cause` may be logged now; says how many were held back when a window ends. */
  private mayLog(cause: string, perWindow: number): boolean {
    const now = this.now();
    let window = this.windows.get(cause);
    if (!window || now - window.start >= this.windowMs) {
      if (window && window.suppressed > 0) {
        this.logger.warn('some request errors were not logged', { cause, notLogged: window.suppressed });
      }
      window = { start: now, logged: 0, suppressed: 0 };
      this.windows.set(cause, window);
    }
    if (window.logged < perWindow) {
      window.logged++;
      return true;
    }
    window.suppressed++;
    return false;
  }
}
