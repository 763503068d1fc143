/**
 * `fetch`: syncs once, like a fresh PowerSync client, up to the first `checkpoint_complete`,
 * verifies every bucket's checksum and prints the rows per table (or, with --json, the whole
 * state). Exit codes: 0 verified, 1 mismatch / HTTP / protocol / network error, 2 bad arguments.
 */
import { randomUUID } from 'node:crypto';
import {
  jsonOption,
  numberOption,
  parseCommandArguments,
  requiredOption,
  runCommand,
  UsageError,
  type CommandArguments,
} from './command-arguments.js';
import { ProgressBar } from './progress-bar.js';
import {
  SyncClientState,
  SyncProtocolError,
  type ChecksumMismatch,
  type SyncLineEvent,
  type SyncStateSnapshot,
} from './sync-client-state.js';
import { SyncConnectionError, SyncHttpError, openSyncStream, type StreamSubscriptions } from './sync-request.js';
import { SyncStreamFramingError, formatOfContentType, readSyncLines, type SyncStreamFormat } from './stream-reader.js';

export const FETCH_USAGE =
  "bucketsync-test-client fetch --endpoint <http://host:port> --token <jwt> [--params '<json object>'] [--streams '<json list of {stream, parameters?, override_priority?}>'] [--bson] [--json] [--timeout <seconds, default 30>]";

const DEFAULT_TIMEOUT_SECONDS = 30;

/** How a sync attempt ended when it reached `checkpoint_complete` (or a failed partial one). */
interface SyncOutcome {
  mismatches: ChecksumMismatch[];
  /** Where the mismatches were found, for the message. */
  at: string;
}

/** The stream ended, or broke a rule, before the first checkpoint_complete. */
class SyncIncompleteError extends Error {}

/** Runs the command; returns the exit code. */
export function fetchCommand(args: string[]): Promise<number> {
  return runCommand('fetch', FETCH_USAGE, async () => {
    const parsed = parseCommandArguments(args, {
      options: ['endpoint', 'token', 'params', 'streams', 'timeout'],
      flags: ['bson', 'json'],
    });
    const endpoint = endpointOption(parsed);
    const token = requiredOption(parsed, 'token');
    const parameters = paramsOption(parsed);
    const streams = streamsOption(parsed);
    const timeoutSeconds = numberOption(parsed, 'timeout', DEFAULT_TIMEOUT_SECONDS);
    const format: SyncStreamFormat = parsed.flags.has('bson') ? 'bson' : 'ndjson';
    const asJson = parsed.flags.has('json');

    const state = new SyncClientState();
    const progress = process.stderr.isTTY ? new ProgressBar(process.stderr) : undefined;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutSeconds * 1000);
    let outcome: SyncOutcome;
    try {
      const response = await openSyncStream({
        endpoint,
        token,
        format,
        clientId: randomUUID(),
        parameters,
        streams,
        signal: controller.signal,
      });
      const body = response.body;
      if (!body) throw new SyncIncompleteError('the response has no body');
      const responseFormat = formatOfContentType(response.headers.get('content-type'), format);
      outcome = await syncToFirstComplete(readSyncLines(body, responseFormat), state, () => {
        const { received, total } = state.progress();
        progress?.update(received, total);
      });
    } catch (error) {
      progress?.clear();
      return fail(describeFailure(error, { state, timedOut: controller.signal.aborted, timeoutSeconds }));
    } finally {
      clearTimeout(timer);
      // The service keeps the stream open for the next checkpoint: close it.
      controller.abort();
    }
    progress?.clear();

    const snapshot = state.snapshot();
    for (const warning of snapshot.warnings) process.stderr.write(`warning: ${warning}\n`);
    for (const e of snapshot.streamErrors) {
      process.stderr.write(
        `warning: stream "${e.stream}" subscription ${JSON.stringify(e.subscription)}: ${e.message}\n`,
      );
    }
    process.stdout.write(asJson ? `${JSON.stringify(snapshotJson(snapshot), null, 2)}\n` : summaryText(snapshot));
    if (outcome.mismatches.length > 0) {
      return fail(outcome.mismatches.map((m) => mismatchMessage(m, outcome.at)).join('\n'));
    }
    return 0;
  });
}

/** Applies lines until the first checkpoint_complete, or a partial completion that fails. */
async function syncToFirstComplete(
  lines: AsyncIterable<unknown>,
  state: SyncClientState,
  onLine: (event: SyncLineEvent) => void,
): Promise<SyncOutcome> {
  for await (const line of lines) {
    const event = state.apply(line);
    onLine(event);
    if (event.kind === 'checkpoint_complete') {
      return { mismatches: event.mismatches, at: `checkpoint ${event.lastOpId}` };
    }
    if (event.kind === 'partial_checkpoint_complete' && event.mismatches.length > 0) {
      return { mismatches: event.mismatches, at: `partial_checkpoint_complete for priority ${event.priority}` };
    }
  }
  const expired = state.snapshot().tokenExpiresIn === 0 ? ' (the token expired: token_expires_in reached 0)' : '';
  throw new SyncIncompleteError(`the stream ended before checkpoint_complete${expired}`);
}

function describeFailure(
  error: unknown,
  context: { state: SyncClientState; timedOut: boolean; timeoutSeconds: number },
): string {
  if (error instanceof SyncHttpError) return error.message;
  if (error instanceof SyncConnectionError || error instanceof SyncIncompleteError) return error.message;
  if (error instanceof SyncProtocolError) return `protocol error: ${error.message}`;
  if (error instanceof SyncStreamFramingError) return `protocol error: ${error.message}`;
  if (context.timedOut) {
    const { received, total } = context.state.progress();
    return `timed out after ${context.timeoutSeconds} s before checkpoint_complete (received ${received}/${total} ops); raise --timeout`;
  }
  return `sync failed: ${error instanceof Error ? error.message : String(error)}`;
}

function fail(message: string): number {
  process.stderr.write(`bucketsync-test-client fetch: ${message}\n`);
  return 1;
}

function mismatchMessage(m: ChecksumMismatch, at: string): string {
  return (
    `checksum mismatch in bucket "${m.bucket}" at ${at}: the checkpoint says ${m.expected}, ` +
    `the ${m.opsReceived} ops received sum to ${m.actual}`
  );
}

function summaryText(s: SyncStateSnapshot): string {
  const ops = s.buckets.reduce((n, b) => n + b.opsReceived, 0);
  const write = s.writeCheckpoint === null ? '' : `, write checkpoint ${s.writeCheckpoint}`;
  const verified = s.buckets.every((b) => b.verified) ? 'all checksums verified' : 'CHECKSUM MISMATCH';
  const lines = [
    `checkpoint ${s.lastOpId}${write}: ${plural(s.buckets.length, 'bucket')}, ${plural(ops, 'op')}, ${verified}`,
  ];
  const tables = Object.entries(s.rowCounts);
  if (tables.length === 0) {
    lines.push('no rows');
  } else {
    const width = Math.max(5, ...tables.map(([t]) => t.length));
    lines.push(`${'table'.padEnd(width)}  rows`);
    for (const [table, count] of tables) lines.push(`${table.padEnd(width)}  ${count}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The `--json` document: wire-style snake_case names. */
function snapshotJson(s: SyncStateSnapshot): object {
  return {
    last_op_id: s.lastOpId,
    write_checkpoint: s.writeCheckpoint,
    complete: s.complete,
    checksums_verified: s.buckets.every((b) => b.verified),
    buckets: s.buckets.map((b) => ({
      bucket: b.bucket,
      priority: b.priority,
      count: b.count,
      checksum: b.checksum,
      computed_checksum: b.computedChecksum,
      ops_received: b.opsReceived,
      last_op_id: b.lastOpId,
      verified: b.verified,
    })),
    row_counts: s.rowCounts,
    tables: s.tables,
    streams: s.streams.map((st) => ({ name: st.name, is_default: st.isDefault, errors: st.errors })),
    stream_errors: s.streamErrors,
    partial_completions: s.partialCompletions,
    token_expires_in: s.tokenExpiresIn,
    checkpoints_received: s.checkpointsReceived,
    abandoned_checkpoints: s.abandonedCheckpoints,
    warnings: s.warnings,
  };
}

function endpointOption(args: CommandArguments): string {
  const text = requiredOption(args, 'endpoint');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--endpoint must be a URL like http://localhost:8080, got "${text}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--endpoint must be an http:// or https:// URL, got "${text}"`);
  }
  return text;
}

function paramsOption(args: CommandArguments): Record<string, unknown> {
  const value = jsonOption(args, 'params');
  if (value === undefined) return {};
  if (!isRecord(value)) throw new UsageError('--params must be a JSON object, e.g. {"list_id":"l1"}');
  return value;
}

/** A list of subscriptions (defaults included), or the body's full `{include_defaults, subscriptions}` object. */
function streamsOption(args: CommandArguments): StreamSubscriptions {
  const value = jsonOption(args, 'streams');
  if (value === undefined) return { include_defaults: true, subscriptions: [] };
  let includeDefaults = true;
  let list: unknown = value;
  if (isRecord(value)) {
    if (value.include_defaults !== undefined && typeof value.include_defaults !== 'boolean') {
      throw new UsageError('--streams: include_defaults must be true or false');
    }
    includeDefaults = value.include_defaults !== false;
    list = value.subscriptions ?? [];
  }
  if (!Array.isArray(list)) {
    throw new UsageError('--streams must be a JSON list like [{"stream":"todos","parameters":{"list":"l1"}}]');
  }
  const subscriptions = list.map((s: unknown, i) => {
    if (!isRecord(s) || typeof s.stream !== 'string' || s.stream === '') {
      throw new UsageError(`--streams[${i}] must be an object with a "stream" name`);
    }
    if (s.parameters !== undefined && s.parameters !== null && !isRecord(s.parameters)) {
      throw new UsageError(`--streams[${i}].parameters must be a JSON object or null`);
    }
    const priority = s.override_priority;
    if (priority !== undefined && priority !== null && !(Number.isInteger(priority) && (priority as number) >= 0)) {
      throw new UsageError(`--streams[${i}].override_priority must be a non-negative integer or null`);
    }
    return {
      stream: s.stream,
      parameters: (s.parameters as Record<string, unknown> | undefined) ?? null,
      override_priority: (priority as number | undefined) ?? null,
    };
  });
  return { include_defaults: includeDefaults, subscriptions };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
