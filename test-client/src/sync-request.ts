/**
 * Opens `POST /sync/stream` the way the PowerSync SDKs do: the request body of
 * shared/design/sync-protocol.md (no buckets held, raw_data, checksums included), the Accept
 * header choosing NDJSON or BSON, and `Authorization: Token <jwt>`.
 */
import { BSON_CONTENT_TYPE, NDJSON_CONTENT_TYPE, type SyncStreamFormat } from './stream-reader.js';

/** `streams` of the request body. */
export interface StreamSubscriptions {
  include_defaults: boolean;
  subscriptions: { stream: string; parameters: Record<string, unknown> | null; override_priority: number | null }[];
}

/** What one sync request carries. */
export interface SyncRequestOptions {
  /** Base URL of the service, e.g. http://localhost:8080. */
  endpoint: string;
  token: string;
  format: SyncStreamFormat;
  clientId: string;
  parameters: Record<string, unknown>;
  streams: StreamSubscriptions;
  signal: AbortSignal;
}

/** The service answered with an HTTP error; code and description come from its JSON error body. */
export class SyncHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    readonly description: string,
  ) {
    super(`HTTP ${status}${code ? ` ${code}` : ''}: ${description}`);
    this.name = 'SyncHttpError';
  }
}

/** The service could not be reached (refused, DNS, reset); the message names the URL. */
export class SyncConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SyncConnectionError';
  }
}

/** The URL of the sync stream under an endpoint, keeping any path prefix. */
export function syncStreamUrl(endpoint: string): URL {
  return new URL('sync/stream', endpoint.endsWith('/') ? endpoint : `${endpoint}/`);
}

/** The JSON body of `POST /sync/stream` for a client holding no buckets. */
export function syncRequestBody(options: Omit<SyncRequestOptions, 'endpoint' | 'token' | 'signal'>): object {
  return {
    buckets: [],
    include_checksum: true,
    raw_data: true,
    binary_data: options.format === 'bson',
    client_id: options.clientId,
    parameters: options.parameters,
    streams: options.streams,
  };
}

/** Sends the request; resolves with the streaming response, or throws SyncHttpError / SyncConnectionError. */
export async function openSyncStream(options: SyncRequestOptions): Promise<Response> {
  const url = syncStreamUrl(options.endpoint);
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept:
          options.format === 'bson' ? `${BSON_CONTENT_TYPE};q=0.9,${NDJSON_CONTENT_TYPE};q=0.8` : NDJSON_CONTENT_TYPE,
        authorization: `Token ${options.token}`,
      },
      body: JSON.stringify(syncRequestBody(options)),
      signal: options.signal,
    });
  } catch (error) {
    if (options.signal.aborted) throw error;
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new SyncConnectionError(`cannot reach ${url.href}: ${cause?.code ?? cause?.message ?? String(error)}`, {
      cause: error,
    });
  }
  if (response.ok) return response;
  const text = await response.text().catch(() => '');
  throw httpError(response.status, response.statusText, text);
}

/** Reads `{"error":{"code","status","description"}}`, falling back to the raw body. */
function httpError(status: number, statusText: string, body: string): SyncHttpError {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; description?: unknown; message?: unknown } };
    const error = parsed.error;
    if (error && typeof error === 'object') {
      const description = error.description ?? error.message;
      return new SyncHttpError(
        status,
        typeof error.code === 'string' ? error.code : undefined,
        typeof description === 'string' ? description : body,
      );
    }
  } catch {
    // Not JSON: show the text as is.
  }
  const text = body.trim();
  return new SyncHttpError(status, undefined, text === '' ? statusText : text.slice(0, 500));
}
