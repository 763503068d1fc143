/**
 * What one flaky client does, chosen at random: which user it syncs as, NDJSON or BSON, gzip or
 * not, whether it also asks for a write checkpoint, and where it drops the connection. Pure: the
 * caller supplies the random numbers (Math.random in a run, a fixed sequence in tests).
 */

/** Where a flaky client drops its connection. */
export type DropPoint =
  /** Closes the socket `afterMs` after sending the request, before the response headers (if they are not back yet). */
  | { kind: 'before-headers'; afterMs: number }
  /** Closes the socket as soon as the response headers arrive, reading no body. */
  | { kind: 'after-headers' }
  /** Reads `bytes` of the body (as sent: gzipped when gzip) and then closes the socket. */
  | { kind: 'after-bytes'; bytes: number }
  /** Reads `bytes`, then stops reading for `stallMs` (the service's writes back up), then closes. */
  | { kind: 'stall'; bytes: number; stallMs: number }
  /** Reads at most `bytesPerSecond`, pausing between chunks, until `forMs` have passed, then closes. */
  | { kind: 'slow'; bytesPerSecond: number; forMs: number };

export type DropKind = DropPoint['kind'];

export const DROP_KINDS: readonly DropKind[] = ['before-headers', 'after-headers', 'after-bytes', 'stall', 'slow'];

export type StreamEncoding = 'ndjson' | 'bson';

export interface FlakyPlan {
  /** Index of the user (`userName(user)`). */
  user: number;
  encoding: StreamEncoding;
  gzip: boolean;
  /** Also calls `/write-checkpoint2.json?client_id=...` beside the stream. */
  writeCheckpoint: boolean;
  drop: DropPoint;
}

export interface FlakyPlanOptions {
  users: number;
  /** Most body bytes read before a drop (`after-bytes` and `stall`). */
  maxBytes: number;
  /** Longest stall or slow read. */
  maxStallMs: number;
  /** Share of clients that also ask for a write checkpoint, 0 to 1. */
  writeCheckpointShare: number;
  /** Share of clients that accept gzip, 0 to 1. Default 0.5. */
  gzipShare?: number;
  /** Relative weight of each drop point. Default DEFAULT_DROP_WEIGHTS. */
  weights?: Readonly<Record<DropKind, number>>;
}

/**
 * Most clients read some data and drop (the case a leak would hide in); the rest drop at the
 * edges (before or right at the headers) or hold the service's writes up by reading slowly.
 */
export const DEFAULT_DROP_WEIGHTS: Readonly<Record<DropKind, number>> = {
  'before-headers': 0.15,
  'after-headers': 0.15,
  'after-bytes': 0.45,
  stall: 0.15,
  slow: 0.1,
};

/** Smallest `after-bytes` target: below one small line, every drop point is "after the headers". */
const MIN_BYTES = 256;

/**
 * A number between `min` and `max` whose logarithm is uniform: as many drops between 1 and 10 KB
 * as between 100 KB and 1 MB, so small and large reads both happen often, and the mean (what the
 * service has to send) stays a fraction of `max`.
 */
export function logUniform(random: () => number, min: number, max: number): number {
  if (max <= min) return min;
  return Math.round(Math.exp(Math.log(min) + random() * (Math.log(max) - Math.log(min))));
}

/** The drop kind for a uniform `r` in [0, 1), by weight. */
export function pickDropKind(r: number, weights: Readonly<Record<DropKind, number>>): DropKind {
  const total = DROP_KINDS.reduce((sum, kind) => sum + Math.max(0, weights[kind]), 0);
  if (total <= 0) throw new Error('drop weights: at least one must be above 0');
  let left = r * total;
  for (const kind of DROP_KINDS) {
    left -= Math.max(0, weights[kind]);
    if (left < 0) return kind;
  }
  return [...DROP_KINDS].reverse().find((kind) => weights[kind] > 0)!;
}

export function chooseFlakyPlan(random: () => number, options: FlakyPlanOptions): FlakyPlan {
  const user = Math.min(options.users - 1, Math.floor(random() * options.users));
  const encoding: StreamEncoding = random() < 0.5 ? 'ndjson' : 'bson';
  const gzip = random() < (options.gzipShare ?? 0.5);
  const writeCheckpoint = random() < options.writeCheckpointShare;
  const kind = pickDropKind(random(), options.weights ?? DEFAULT_DROP_WEIGHTS);
  const bytes = () => logUniform(random, MIN_BYTES, Math.max(MIN_BYTES, options.maxBytes));
  // Stalls of at least 200 ms: shorter ones are what any busy client does between reads.
  const stallMs = () => Math.round(200 + random() * Math.max(0, options.maxStallMs - 200));
  let drop: DropPoint;
  switch (kind) {
    case 'before-headers':
      drop = { kind, afterMs: Math.round(random() * 20) };
      break;
    case 'after-headers':
      drop = { kind };
      break;
    case 'after-bytes':
      drop = { kind, bytes: bytes() };
      break;
    case 'stall':
      // A third stall at once, reading nothing at all.
      drop = { kind, bytes: random() < 1 / 3 ? 0 : bytes(), stallMs: stallMs() };
      break;
    case 'slow':
      drop = { kind, bytesPerSecond: logUniform(random, 1024, 256 * 1024), forMs: stallMs() };
      break;
  }
  return { user, encoding, gzip, writeCheckpoint, drop };
}

/** A seeded generator of uniform numbers in [0, 1) (mulberry32): the same seed, the same plans. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
