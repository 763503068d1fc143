/**
 * A JWKS fetched from a URL: loaded on first use with a timeout, cached, refreshed when older
 * than the refresh interval, and refreshed early when a token names an unknown kid. Fetches
 * are deduplicated and at most one starts per `minRefreshIntervalMs`, so a flood of tokens
 * with made-up kids (or a down JWKS server) cannot turn into a flood of requests. Redirects are
 * not followed and the body is read incrementally up to `maxBytes` (docs/auth.md).
 */
import type { Logger } from '@bucketsync/lib-services';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { parseJwksKey, type AuthKey } from './auth-config.js';

export interface RemoteJwksOptions {
  /** The JWKS URL (`client_auth.jwks_uri`). */
  uri: string;
  /** Abort a fetch after this long (connecting and reading the whole body). */
  timeoutMs: number;
  /** Largest accepted response body, in bytes; a larger one is aborted and fails the fetch. */
  maxBytes: number;
  /** Refetch keys older than this on the next use. */
  refreshIntervalMs: number;
  /** Minimum time between the starts of two fetches, successful or not. */
  minRefreshIntervalMs: number;
  /** Clock in epoch milliseconds; injectable for tests. */
  now: () => number;
  logger: Logger;
  /** The fetch implementation; default the global `fetch`. */
  fetch?: typeof fetch;
}

/** Removes credentials from a URL before it appears in a message or log. */
export function redactUrl(uri: string): string {
  try {
    const url = new URL(uri);
    url.username = '';
    url.password = '';
    url.search = '';
    return url.toString();
  } catch {
    return '(invalid URL)';
  }
}

/** ` to <url>` for a redirect's Location (resolved and redacted), or '' without a usable one. */
function redirectTarget(location: string | null, base: string): string {
  if (!location) return '';
  try {
    return ` to ${redactUrl(new URL(location, base).toString())}`;
  } catch {
    return '';
  }
}

/** One JWKS URL's keys, owned by the TokenVerifier; see the file summary for the fetch rules. */
export class RemoteJwks {
  readonly uri: string;
  private readonly displayUri: string;
  private readonly options: RemoteJwksOptions;
  private keys: readonly AuthKey[] | undefined;
  private loadedAt = 0;
  private lastAttemptAt: number | undefined;
  private lastError: ServiceError | undefined;
  private inFlight: Promise<void> | undefined;

  constructor(options: RemoteJwksOptions) {
    this.options = options;
    this.uri = options.uri;
    this.displayUri = redactUrl(options.uri);
  }

  /**
   * The current keys. Fetches when nothing is cached, when the cache is older than the refresh
   * interval, or when `refresh` is set (an unknown kid) — each subject to the rate limit.
   * Throws ServiceError AUTH_KEYS_UNAVAILABLE only when no keys were ever loaded; once loaded,
   * a failed refresh keeps serving the previous keys (and logs a warning).
   */
  async getKeys(refresh = false): Promise<readonly AuthKey[]> {
    const now = this.options.now();
    const stale = this.keys === undefined || now - this.loadedAt >= this.options.refreshIntervalMs;
    if (stale || refresh) {
      if (this.inFlight) {
        await this.inFlight;
      } else if (this.lastAttemptAt === undefined || now - this.lastAttemptAt >= this.options.minRefreshIntervalMs) {
        this.inFlight = this.load().finally(() => {
          this.inFlight = undefined;
        });
        await this.inFlight;
      }
    }
    if (this.keys === undefined) {
      throw (
        this.lastError ??
        new ServiceError(ErrorCode.AUTH_KEYS_UNAVAILABLE, `JWKS from ${this.displayUri} has not been loaded`)
      );
    }
    return this.keys;
  }

  private async load(): Promise<void> {
    this.lastAttemptAt = this.options.now();
    try {
      const keys = await this.fetchKeys();
      this.keys = keys;
      this.loadedAt = this.options.now();
      this.lastError = undefined;
      this.options.logger.debug('loaded JWKS', { uri: this.displayUri, kids: keys.map((k) => k.kid ?? null) });
    } catch (error) {
      const serviceError =
        error instanceof ServiceError
          ? error
          : new ServiceError(ErrorCode.AUTH_KEYS_UNAVAILABLE, `could not fetch JWKS from ${this.displayUri}`, {
              cause: error,
            });
      this.lastError = serviceError;
      this.options.logger.warn(
        this.keys === undefined ? 'could not load JWKS' : 'could not refresh JWKS; keeping the previous keys',
        { uri: this.displayUri, error: serviceError },
      );
    }
  }

  /**
   * The response body as text, read chunk by chunk and cancelled as soon as it passes
   * `maxBytes`, so a huge (or endless) response costs at most that much memory.
   */
  private async readLimited(response: Response, unavailable: (details: string) => ServiceError): Promise<string> {
    const limit = this.options.maxBytes;
    const tooLarge = () => unavailable(`the response is larger than ${limit} bytes`);
    const declared = Number(response.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > limit) {
      await response.body?.cancel().catch(() => {});
      throw tooLarge();
    }
    if (!response.body) return '';
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
    return new TextDecoder().decode(Buffer.concat(chunks, total));
  }

  private async fetchKeys(): Promise<AuthKey[]> {
    const doFetch = this.options.fetch ?? fetch;
    const unavailable = (details: string, cause?: unknown) =>
      new ServiceError(ErrorCode.AUTH_KEYS_UNAVAILABLE, `JWKS from ${this.displayUri}: ${details}`, { cause });
    let body: unknown;
    try {
      const response = await doFetch(this.uri, {
        headers: { accept: 'application/json' },
        // A redirect could move the fetch to another host (or to http://); the configured URL
        // is the one trusted, so a redirect is a failure.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      if (response.type === 'opaqueredirect' || (response.status >= 300 && response.status < 400)) {
        await response.body?.cancel().catch(() => {});
        const target = redirectTarget(response.headers.get('location'), this.uri);
        throw unavailable(
          `answered with a redirect (HTTP ${response.status}${target}); redirects are not followed, ` +
            'configure the final URL in client_auth.jwks_uri',
        );
      }
      if (!response.ok) {
        await response.body?.cancel().catch(() => {});
        throw unavailable(`HTTP ${response.status} ${response.statusText}`.trim());
      }
      body = JSON.parse(await this.readLimited(response, unavailable));
    } catch (error) {
      if (error instanceof ServiceError) throw error;
      const name = (error as { name?: unknown }).name;
      if (name === 'TimeoutError' || name === 'AbortError') {
        throw unavailable(`no answer within ${this.options.timeoutMs} ms`, error);
      }
      if (error instanceof SyntaxError) throw unavailable('the response is not JSON', error);
      const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
      const reason = cause?.code ?? cause?.message ?? (error as Error).message;
      throw unavailable(`request failed (${String(reason)})`, error);
    }
    const rawKeys = (body as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(rawKeys)) {
      throw unavailable('the response has no "keys" list');
    }
    const keys: AuthKey[] = [];
    rawKeys.forEach((raw, index) => {
      const parsed = parseJwksKey(raw, this.displayUri);
      if (typeof parsed === 'string') {
        this.options.logger.warn('skipping unusable JWKS key', { uri: this.displayUri, index, reason: parsed });
      } else {
        keys.push(parsed);
      }
    });
    return keys;
  }
}
