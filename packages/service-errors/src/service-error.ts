import { ERROR_CATALOGUE, type CatalogueEntry, type ErrorCode } from './error-catalogue.js';

export interface ServiceErrorOptions {
  /** The underlying error (driver error, parse error, ...). */
  cause?: unknown;
  /** Overrides the catalogue's retryability for this occurrence. */
  retryable?: boolean;
}

/**
 * The one base error of BucketSync. Its message reads: `[CODE] <what happened>: <details>.
 * <how to fix>`. Modules translate driver errors into it at their edge; the replication
 * coordinator reads `retryable` to decide whether to retry.
 */
export class ServiceError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly status: number;
  /** The specifics of this occurrence, without the catalogue text. */
  readonly details: string | undefined;
  readonly fix: string;

  constructor(code: ErrorCode, details?: string, options: ServiceErrorOptions = {}) {
    const entry: CatalogueEntry = ERROR_CATALOGUE[code];
    const what = details ? `${entry.message.replace(/\.$/, '')}: ${details}` : entry.message;
    super(`[${code}] ${what}${/[.!?]$/.test(what) ? '' : '.'} ${entry.fix}`, { cause: options.cause });
    this.name = 'ServiceError';
    this.code = code;
    this.retryable = options.retryable ?? entry.retryable;
    this.status = entry.status;
    this.details = details;
    this.fix = entry.fix;
  }

  /** The JSON shape sent to clients: `{"error":{"code","status","description"}}`. */
  toResponseBody(): { error: { code: string; status: number; description: string } } {
    return { error: { code: this.code, status: this.status, description: this.message } };
  }
}

/** True for a ServiceError (or any error) that says retrying may help. */
export function isRetryable(error: unknown): boolean {
  return error instanceof ServiceError ? error.retryable : false;
}
