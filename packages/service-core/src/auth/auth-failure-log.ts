/**
 * Counts failed client authentications by error code and logs them at a bounded rate: per code,
 * at most `maxLinesPerWindow` lines per window, then one line saying how many were not logged
 * (written with the next failure after the window ends). A flood of bad tokens cannot flood the log.
 */
import type { Logger } from '@bucketsync/lib-services';
import { ServiceError } from '@bucketsync/service-errors';

export interface AuthFailureLogOptions {
  logger: Logger;
  /** Clock in epoch milliseconds. */
  now: () => number;
  /** Lines logged per code and window. Default 5. */
  maxLinesPerWindow?: number;
  /** The window, in milliseconds. Default 30 000. */
  windowMs?: number;
}

interface CodeWindow {
  start: number;
  logged: number;
  notLogged: number;
}

/** Code counted for a failure that is not a ServiceError (a bug in the verifier, not a client). */
const UNEXPECTED = 'unexpected';

/** Owned by the TokenVerifier, which records every failed `verify`; see the file summary. */
export class AuthFailureLog {
  private readonly options: Required<AuthFailureLogOptions>;
  private readonly counts = new Map<string, number>();
  private readonly windows = new Map<string, CodeWindow>();

  constructor(options: AuthFailureLogOptions) {
    this.options = { maxLinesPerWindow: 5, windowMs: 30_000, ...options };
  }

  /**
   * Counts `error` under its code and logs it unless this code's window is full. `token` (when
   * known) is scrubbed from the line, although verifier messages never contain it.
   */
  record(error: unknown, token?: string): void {
    const code = error instanceof ServiceError ? error.code : UNEXPECTED;
    this.counts.set(code, (this.counts.get(code) ?? 0) + 1);
    const now = this.options.now();
    this.closeWindows(now);

    let window = this.windows.get(code);
    if (!window) {
      window = { start: now, logged: 0, notLogged: 0 };
      this.windows.set(code, window);
    }
    if (window.logged >= this.options.maxLinesPerWindow) {
      window.notLogged += 1;
      return;
    }
    window.logged += 1;
    const details = error instanceof ServiceError ? (error.details ?? error.message) : String(error);
    const fields: Record<string, unknown> = { code, reason: scrub(details, token) };
    if (window.logged === this.options.maxLinesPerWindow) {
      const seconds = Math.ceil((window.start + this.options.windowMs - now) / 1000);
      fields.note = `further ${code} failures in the next ${seconds}s are counted, not logged`;
    }
    this.options.logger.warn('client authentication failed', fields);
  }

  /** Failed authentications since start, by error code (`PSYNC_S2103: 12`). */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  /** Ends windows older than `windowMs`, writing the not-logged count of each that had one. */
  private closeWindows(now: number): void {
    for (const [code, window] of this.windows) {
      if (now - window.start < this.options.windowMs) continue;
      this.windows.delete(code);
      if (window.notLogged > 0) {
        this.options.logger.warn(`${window.notLogged} more client authentication failures (${code}) were not logged`, {
          code,
          notLogged: window.notLogged,
          windowSeconds: this.options.windowMs / 1000,
        });
      }
    }
  }
}

/** Removes the token from a log line, should a message ever carry it. */
function scrub(text: string, token: string | undefined): string {
  return token && token.length >= 8 ? text.split(token).join('(token)') : text;
}
