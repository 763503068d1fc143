/**
 * Connection -> buckets, in two steps: `resolveConnection` evaluates everything that needs only
 * the request (static buckets, request filters) and lists the parameter-index lookups to read;
 * `finish` combines the lookup results into the final bucket list, merged, prioritised and limited.
 */
import { bucketParametersJson } from './bucket-id.js';
import type { BucketDefinition } from './bucket-definition.js';
import { serializeParameterLookup, type ParameterLookup } from './parameter-lookup.js';
import { MissingParameterError, RequestContext } from './request-context.js';
import { jsonArrayElements } from './sql-expression.js';
import { isTruthy, valueKey, type SqliteRow, type SqliteValue } from './sqlite-value.js';
import type { StreamDefinition } from './stream-definition.js';

/** One stream subscription sent by a client. */
export interface StreamSubscriptionRequest {
  stream: string;
  parameters: Record<string, unknown> | null;
  override_priority?: number | null;
}

/** What a connection brings: token claims, client parameters and stream subscriptions. */
export interface ConnectionRequest {
  /** JWT payload; `sub` is the user id. */
  claims: Record<string, unknown>;
  /** Client parameters (`params` of the sync request). */
  parameters: Record<string, unknown>;
  streams?: {
    /** Default true: auto_subscribe streams are synced without a subscription. */
    include_defaults?: boolean;
    subscriptions: StreamSubscriptionRequest[];
  };
}

/** Why a bucket is synced: a default stream (index into `ConnectionResolution.streams`) or a subscription (index into the request's subscriptions). */
export type BucketSubscription = { default: number } | { sub: number };

/** A bucket the connection syncs. */
export interface ResolvedBucket {
  bucket: string;
  /** 0 (first) to 3 (default); the lowest of all reasons when several include the bucket. */
  priority: number;
  /** Empty for bucket_definitions buckets. */
  subscriptions: BucketSubscription[];
  /** Bucket definition or stream name. */
  definition: string;
}

/** An error of one stream subscription; the rest of the connection is unaffected. */
export interface StreamError {
  stream: string;
  subscription: 'default' | number;
  message: string;
}

/** Per-connection limits (service config). */
export interface ConnectionLimits {
  /** Default 1000 (`max_buckets_per_connection`). */
  maxBuckets?: number;
  /** Default 1000 (`max_parameter_query_results`). */
  maxParameterQueryResults?: number;
}

/** The final bucket list of a connection. */
export interface ConnectionBuckets {
  buckets: ResolvedBucket[];
  streamErrors: StreamError[];
  /** Set when a limit is exceeded (then `buckets` is empty); names the definitions responsible. */
  error?: string;
}

/** A connection's request-only part, reusable at every checkpoint with fresh lookup results. */
export interface ConnectionResolution {
  /** Parameter-index lookups whose results `finish` needs (de-duplicated). */
  readonly lookups: ParameterLookup[];
  /** Streams this connection syncs; `{default: i}` subscriptions index into it. */
  readonly streams: { name: string; isDefault: boolean }[];
  /** Combines lookup results (serialised lookup -> output rows; missing keys = no rows) into buckets. */
  finish(lookupResults: ReadonlyMap<string, readonly SqliteRow[]>, limits?: ConnectionLimits): ConnectionBuckets;
}

/** Default of both connection limits. */
export const DEFAULT_CONNECTION_LIMIT = 1000;

type SourceValues =
  { kind: 'values'; values: SqliteValue[] } | { kind: 'lookups'; lookups: ParameterLookup[]; column: string };
/** A stream bucket parameter: the intersection of its sources' values. */
type SlotValues = SourceValues[];

interface Source {
  definition: string;
  priority: number;
  subscription: BucketSubscription | undefined;
  prefix: string;
  /** Fixed buckets, or slots to combine after the lookups. */
  buckets?: string[];
  slots?: SlotValues[];
  /** bucket_definitions lookups: output rows map to parameters by name. */
  lookups?: { lookups: ParameterLookup[]; names: readonly string[] };
}

function bindable(value: SqliteValue | undefined): value is SqliteValue {
  return value !== null && value !== undefined && !(value instanceof Uint8Array);
}

/** The bindable values, each once (1 and 1.0 are one value); linear in the input. */
function distinct(values: SqliteValue[]): SqliteValue[] {
  const seen = new Set<string>();
  const out: SqliteValue[] = [];
  for (const v of values) {
    if (!bindable(v)) continue;
    const key = valueKey(v);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(v);
    }
  }
  return out;
}

/** The values of `a` that are also in `b`; linear. */
function intersect(a: SqliteValue[], b: SqliteValue[]): SqliteValue[] {
  const inB = new Set(b.map(valueKey));
  return a.filter((v) => inB.has(valueKey(v)));
}

/** How many combinations `crossProduct` would build: counted before anything is built. */
function productSize(lists: SqliteValue[][]): number {
  return lists.reduce((n, list) => n * list.length, 1);
}

function crossProduct(lists: SqliteValue[][]): SqliteValue[][] {
  let out: SqliteValue[][] = [[]];
  for (const list of lists) {
    const next: SqliteValue[][] = [];
    for (const prefix of out) for (const v of list) next.push([...prefix, v]);
    out = next;
  }
  return out;
}

/**
 * Most values a client-supplied list parameter (`x IN subscription.parameter('p')`) may hold:
 * each value is a bucket at least, and a connection has at most max_buckets_per_connection
 * (default 1,000) of them, so a longer list can only fail later, after costing work now.
 */
export const MAX_LIST_PARAMETER_VALUES = 10_000;

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Resolves the request-only part of a connection. */
export function resolveConnection(
  bucketDefinitions: readonly BucketDefinition[],
  streams: readonly StreamDefinition[],
  request: ConnectionRequest,
): ConnectionResolution {
  const context = new RequestContext(request.claims ?? {}, request.parameters ?? {});
  const sources: Source[] = [];
  const streamErrors: StreamError[] = [];
  const connectionErrors: string[] = [];

  for (const definition of bucketDefinitions) {
    for (const query of definition.parameterQueries) {
      const priority = query.priority ?? definition.priority;
      const base = { definition: definition.name, priority, subscription: undefined, prefix: definition.bucketPrefix };
      try {
        if (query.kind === 'static') {
          const buckets: string[] = [];
          for (const row of query.evaluate(context)) {
            const values = definition.parameterNames.map((name) => row[name]);
            if (values.every(bindable)) buckets.push(definition.bucketPrefix + bucketParametersJson(values));
          }
          sources.push({ ...base, buckets });
        } else {
          sources.push({ ...base, lookups: { lookups: query.lookups(context), names: definition.parameterNames } });
        }
      } catch (error) {
        connectionErrors.push(`"${definition.name}": ${errorMessage(error)}`);
      }
    }
  }

  const streamList: { name: string; isDefault: boolean }[] = [];
  const listed = new Set<string>();
  const byName = new Map(streams.map((s) => [s.name, s]));
  const resolveSubscription = (
    stream: StreamDefinition,
    parameters: Record<string, unknown> | null,
    subscription: BucketSubscription,
    priority: number,
  ): void => {
    const subscriptionContext = context.withSubscription(parameters);
    const found: Source[] = [];
    for (const variant of stream.variants) {
      if (!variant.requestFilters.every((filter) => isTruthy(filter(subscriptionContext)))) continue;
      const slots: SlotValues[] = variant.slots.map((slot) =>
        slot.sources.map((source): SourceValues => {
          if (source.kind === 'subquery') {
            const query = source.query;
            return { kind: 'lookups', lookups: query.lookups(subscriptionContext), column: query.outputNames[0]! };
          }
          const value = source.evaluate(subscriptionContext);
          const values = source.array ? (jsonArrayElements(value) ?? []) : [value];
          if (values.length > MAX_LIST_PARAMETER_VALUES) {
            throw new Error(
              `A list parameter has ${values.length} values, more than ${MAX_LIST_PARAMETER_VALUES}: subscribe with fewer values (each one is a bucket).`,
            );
          }
          return { kind: 'values', values: distinct(values) };
        }),
      );
      found.push({ definition: stream.name, priority, subscription, prefix: variant.dataQuery.bucketPrefix, slots });
    }
    sources.push(...found);
  };

  if (request.streams?.include_defaults !== false) {
    for (const stream of streams) {
      if (!stream.autoSubscribe) continue;
      const index = streamList.length;
      streamList.push({ name: stream.name, isDefault: true });
      listed.add(stream.name);
      try {
        resolveSubscription(stream, null, { default: index }, stream.priority);
      } catch (error) {
        streamErrors.push({ stream: stream.name, subscription: 'default', message: subscriptionMessage(error) });
      }
    }
  }
  (request.streams?.subscriptions ?? []).forEach((subscription, index) => {
    const stream = byName.get(subscription.stream);
    if (!stream) {
      const known = streams.map((s) => s.name).join(', ') || 'none';
      streamErrors.push({
        stream: subscription.stream,
        subscription: index,
        message: `Unknown stream "${subscription.stream}": the sync config defines ${known}.`,
      });
      return;
    }
    if (!listed.has(stream.name)) {
      listed.add(stream.name);
      streamList.push({ name: stream.name, isDefault: false });
    }
    const override = subscription.override_priority;
    const priority =
      typeof override === 'number' && Number.isInteger(override) && override >= 0 && override <= 3
        ? override
        : stream.priority;
    try {
      resolveSubscription(stream, subscription.parameters ?? null, { sub: index }, priority);
    } catch (error) {
      streamErrors.push({ stream: stream.name, subscription: index, message: subscriptionMessage(error) });
    }
  });

  const lookupKeys = new Map<string, ParameterLookup>();
  for (const source of sources) {
    const lookups =
      source.lookups?.lookups ?? source.slots?.flat().flatMap((s) => (s.kind === 'lookups' ? s.lookups : [])) ?? [];
    for (const lookup of lookups) lookupKeys.set(serializeParameterLookup(lookup), lookup);
  }

  return {
    lookups: [...lookupKeys.values()],
    streams: streamList,
    finish(results, limits = {}) {
      return finish(sources, results, limits, streamErrors, connectionErrors);
    },
  };
}

function subscriptionMessage(error: unknown): string {
  return error instanceof MissingParameterError ? `The ${error.message}.` : errorMessage(error);
}

function rowsOf(results: ReadonlyMap<string, readonly SqliteRow[]>, lookup: ParameterLookup): readonly SqliteRow[] {
  return results.get(serializeParameterLookup(lookup)) ?? [];
}

function finish(
  sources: readonly Source[],
  results: ReadonlyMap<string, readonly SqliteRow[]>,
  limits: ConnectionLimits,
  streamErrors: StreamError[],
  connectionErrors: string[],
): ConnectionBuckets {
  const maxBuckets = limits.maxBuckets ?? DEFAULT_CONNECTION_LIMIT;
  const maxResults = limits.maxParameterQueryResults ?? DEFAULT_CONNECTION_LIMIT;
  const resultCounts = new Map<string, number>();
  const buckets = new Map<string, ResolvedBucket>();
  // Per bucket, the subscriptions already listed (as JSON), so merging stays linear.
  const reasons = new Map<string, Set<string>>();
  // Combinations never built because they alone exceed the bucket limit, per definition.
  const unbuilt = new Map<string, number>();
  const countResults = (definition: string, n: number): void => {
    resultCounts.set(definition, (resultCounts.get(definition) ?? 0) + n);
  };
  const add = (source: Source, bucket: string): void => {
    const existing = buckets.get(bucket);
    const reason = source.subscription;
    if (!existing) {
      buckets.set(bucket, {
        bucket,
        priority: source.priority,
        subscriptions: reason ? [reason] : [],
        definition: source.definition,
      });
      reasons.set(bucket, new Set(reason ? [JSON.stringify(reason)] : []));
      return;
    }
    existing.priority = Math.min(existing.priority, source.priority);
    const known = reasons.get(bucket)!;
    if (reason && !known.has(JSON.stringify(reason))) {
      known.add(JSON.stringify(reason));
      existing.subscriptions.push(reason);
    }
  };

  for (const source of sources) {
    if (source.buckets) {
      for (const bucket of source.buckets) add(source, bucket);
    } else if (source.lookups) {
      for (const lookup of source.lookups.lookups) {
        const rows = rowsOf(results, lookup);
        countResults(source.definition, rows.length);
        for (const row of rows) {
          const values = source.lookups.names.map((name) => row[name]);
          if (values.every(bindable)) add(source, source.prefix + bucketParametersJson(values));
        }
      }
    } else if (source.slots) {
      const lists = source.slots.map((slot) => {
        const perSource = slot.map((values) => {
          if (values.kind === 'values') return values.values;
          const found: SqliteValue[] = [];
          for (const lookup of values.lookups) {
            const rows = rowsOf(results, lookup);
            countResults(source.definition, rows.length);
            for (const row of rows) found.push(row[values.column] ?? null);
          }
          return distinct(found);
        });
        return perSource.reduce(intersect);
      });
      // Counted before anything is built: two 3,500-value lists are 12 million combinations.
      const combinations = productSize(lists);
      if (combinations > maxBuckets)
        unbuilt.set(source.definition, (unbuilt.get(source.definition) ?? 0) + combinations);
      else for (const values of crossProduct(lists)) add(source, source.prefix + bucketParametersJson(values));
    }
  }

  const errors = [...connectionErrors.map((e) => `Could not resolve parameters of ${e}`)];
  const totalResults = [...resultCounts.values()].reduce((a, b) => a + b, 0);
  if (totalResults > maxResults) {
    errors.push(
      `Too many parameter query results for this connection: ${totalResults}, more than max_parameter_query_results (${maxResults}). ` +
        `Results per definition: ${describeCounts(resultCounts)}. Narrow these parameter queries or raise max_parameter_query_results.`,
    );
  }
  const unbuiltTotal = [...unbuilt.values()].reduce((a, b) => a + b, 0);
  const bucketCount = buckets.size + unbuiltTotal;
  if (bucketCount > maxBuckets) {
    const perDefinition = new Map<string, number>(unbuilt);
    for (const b of buckets.values()) perDefinition.set(b.definition, (perDefinition.get(b.definition) ?? 0) + 1);
    // With combinations left unbuilt the exact number is unknown (they may repeat other buckets).
    const count = unbuiltTotal > 0 ? '' : `${bucketCount}, `;
    errors.push(
      `Too many buckets for this connection: ${count}more than max_buckets_per_connection (${maxBuckets}). ` +
        `Buckets per definition: ${describeCounts(perDefinition)}. Narrow these definitions or raise max_buckets_per_connection.`,
    );
  }
  const limitExceeded = totalResults > maxResults || bucketCount > maxBuckets;
  const result: ConnectionBuckets = {
    buckets: limitExceeded ? [] : [...buckets.values()],
    streamErrors: [...streamErrors],
  };
  if (errors.length > 0) result.error = errors.join(' ');
  return result;
}

function describeCounts(counts: ReadonlyMap<string, number>): string {
  return [...counts.entries()]
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([name, n]) => `${name} (${n})`)
    .join(', ');
}
