/**
 * `bucketsync buckets <sync-config.yaml> --claims '<json>' [--params '<json>'] [--streams '<json>']
 * [--lookup '<json>']`: prints the buckets a connection would sync, one JSON object per line,
 * then per-stream errors. `--lookup` maps lookup keys to parameter-index rows.
 */
import {
  jsonValueToSqlite,
  parseJsonPreservingBigInts,
  parseJsonValue,
  serializeParameterLookup,
  type ConnectionRequest,
  type JsonObject,
  type SqliteRow,
} from '@bucketsync/sync-rules';
import { jsonOption, loadSyncConfig, parseCommandArguments, runCommand, UsageError } from './command-arguments.js';

export const BUCKETS_USAGE =
  "bucketsync buckets <sync-config.yaml> --claims '<jwt claims json>' [--params '<client params json>'] " +
  "[--streams '<streams request json>'] [--lookup '<json: lookup key -> outputs>']";

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function objectOption(name: string, text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  const value = jsonOption(name, text, parseJsonPreservingBigInts);
  if (!isObject(value)) throw new UsageError(`--${name} must be a JSON object`);
  return value;
}

/** Parses `--lookup`: `{"[\"by_team\",\"0\",\"u1\"]": [{"team_id": "t1"}]}`; keys are normalised. */
function lookupOption(text: string | undefined): Map<string, SqliteRow[]> {
  const results = new Map<string, SqliteRow[]>();
  if (text === undefined) return results;
  const value = jsonOption('lookup', text, parseJsonValue);
  if (!(value instanceof Map)) throw new UsageError('--lookup must be a JSON object');
  for (const [key, rows] of value) {
    const parts = jsonOption('lookup', key, parseJsonValue);
    if (!Array.isArray(parts) || typeof parts[0] !== 'string' || typeof parts[1] !== 'string') {
      throw new UsageError(`--lookup key ${key} is not a lookup ["definition","query id",values...]`);
    }
    if (!Array.isArray(rows) || !rows.every((r) => r instanceof Map)) {
      throw new UsageError(`--lookup value of ${key} must be an array of output objects`);
    }
    const values = parts.slice(2).map((v) => jsonValueToSqlite(v));
    const normalised = serializeParameterLookup({ definition: parts[0], queryId: parts[1], values });
    results.set(
      normalised,
      (rows as JsonObject[]).map((row) => Object.fromEntries([...row].map(([k, v]) => [k, jsonValueToSqlite(v)]))),
    );
  }
  return results;
}

/** Runs the buckets command. */
export function bucketsCommand(args: string[]): Promise<number> {
  return runCommand('buckets', BUCKETS_USAGE, () => {
    const { file, options } = parseCommandArguments(args, ['claims', 'params', 'streams', 'lookup']);
    const claims = objectOption('claims', options.get('claims'));
    if (!claims) throw new UsageError('missing --claims');
    const parameters = objectOption('params', options.get('params')) ?? {};
    const streams = objectOption('streams', options.get('streams'));
    if (streams && !Array.isArray(streams.subscriptions ?? [])) {
      throw new UsageError('--streams must look like {"include_defaults": true, "subscriptions": [...]}');
    }
    const lookups = lookupOption(options.get('lookup'));
    const config = loadSyncConfig(file);
    if (!config) return 1;
    const request: ConnectionRequest = { claims, parameters };
    if (streams) request.streams = { ...streams, subscriptions: (streams.subscriptions ?? []) as never };
    const resolution = config.resolveConnection(request);
    for (const lookup of resolution.lookups) {
      const key = serializeParameterLookup(lookup);
      if (!lookups.has(key)) process.stderr.write(`note: no --lookup results for ${key}\n`);
    }
    const result = resolution.finish(lookups);
    for (const b of result.buckets) {
      process.stdout.write(
        `${JSON.stringify({ bucket: b.bucket, priority: b.priority, subscriptions: b.subscriptions })}\n`,
      );
    }
    for (const e of result.streamErrors) {
      process.stdout.write(`${JSON.stringify({ stream: e.stream, subscription: e.subscription, error: e.message })}\n`);
    }
    if (result.error) {
      process.stderr.write(`error: ${result.error}\n`);
      return 1;
    }
    return 0;
  });
}
