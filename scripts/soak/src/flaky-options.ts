/**
 * What a flaky-client soak (`npm run soak -- --flaky`) does and tolerates: the options, their
 * defaults, and the flags that set them (parsed like the steady soak's, soak-options.ts).
 */
import { flagUsage, parseFlags, type SoakFlag } from './soak-options.js';

export interface FlakySoakOptions {
  /** Length of the flaky phase, in minutes. Default 10. */
  minutes: number;
  /** Flaky clients started per second (open loop: they start on schedule however the service keeps up). Default 200. */
  rate: number;
  /** Users the flaky clients sync as, at random. Default 200. */
  users: number;
  /** Well-behaved clients (the first users) connected from before the baseline to the end. Default 5. */
  goodClients: number;
  /** Rows of the documents bucket every user syncs (flaky streams drop inside it). Default 4,000. */
  documentRows: number;
  /** Bytes of each document (hex text: gzip halves it). Default 1,000. */
  documentBytes: number;
  /** Rows per user written before the service starts. Default 20. */
  rowsPerUser: number;
  /** Rows per second the writer adds during the whole run, so checkpoints keep moving. Default 50. */
  writeRate: number;
  /** Transactions per second of those writes. Default 5. */
  transactionsPerSecond: number;
  /** Seconds between updates of the global bucket. Default 10. */
  noticeEverySeconds: number;
  /** Most body bytes a client reads before dropping (drop points are log-uniform up to it). Default 4 MiB. */
  maxBytes: number;
  /** Longest stall or slow read, seconds. Default 5. */
  maxStallSeconds: number;
  /** Every flaky connection is dropped after this many seconds, whatever its plan. Default 10. */
  maxLifeSeconds: number;
  /** Share of flaky clients that also call /write-checkpoint2.json. Default 0.1. */
  writeCheckpointShare: number;
  /** Share of flaky clients that accept gzip (the rest ask for none). Default 0.5. */
  gzipShare: number;
  /** Flaky connections the soak keeps open at most; a start over it is skipped and counted. Default 2,000. */
  maxOpen: number;
  /** Seconds from the good clients' first sync to the baseline window. Default 20. */
  warmupSeconds: number;
  /** Length of the baseline and the after windows (samples of RSS, fds, connections), seconds. Default 15. */
  windowSeconds: number;
  /**
   * Seconds without writes before each window. Default 12: past the storage pool's 10 s idle
   * timeout, so both windows see the service at rest with only the good clients connected, and a
   * connection that stays open then is held, not in use.
   */
  quietSeconds: number;
  /**
   * Seconds from the last flaky connection's end to the after window. Default 45: longer than the
   * source pool's 30 s and the storage pool's 10 s idle timeouts, so connections opened for the
   * storm have closed unless something holds them.
   */
  settleSeconds: number;
  /**
   * While the after window is above the baseline, another window follows, until this many seconds
   * after the last flaky connection ended: work queued for gone clients may take that long to
   * drain. Default 180.
   */
  settleMaxSeconds: number;
  /** Seconds between samples. Default 1. */
  sampleEverySeconds: number;
  /** Seconds between progress lines. Default 30. */
  progressEverySeconds: number;
  /** RSS may end this many MB above the baseline... Default 32. */
  rssToleranceMb: number;
  /** ...or this many percent, whichever is more. Default 10. */
  rssTolerancePercent: number;
  /** Open fds the after floor may exceed the baseline floor by. Default 0. */
  fdSlack: number;
  /** Storage (and source) connections the after floor may exceed the baseline floor by. Default 0. */
  connectionSlack: number;
  /** After the run, how long the good clients and a fresh client get to sync completely, seconds. Default 60. */
  drainTimeoutSeconds: number;
  /** Seed of the flaky plans (0: a new one each run, printed so the run can be repeated). Default 0. */
  seed: number;
  /**
   * 1: the service writes a heap snapshot (after a full GC) at the end of the baseline and of the
   * after window, and the report lists what grew between them and the RSS after each GC. Each
   * pauses the service for seconds, outside the windows. Default 0.
   */
  heapSnapshots: number;
  /** LOG_LEVEL of the service. Default info. */
  logLevel: string;
}

export const DEFAULT_FLAKY_OPTIONS: FlakySoakOptions = {
  minutes: 10,
  rate: 200,
  users: 200,
  goodClients: 5,
  documentRows: 4000,
  documentBytes: 1000,
  rowsPerUser: 20,
  writeRate: 50,
  transactionsPerSecond: 5,
  noticeEverySeconds: 10,
  maxBytes: 4 * 1024 * 1024,
  maxStallSeconds: 5,
  maxLifeSeconds: 10,
  writeCheckpointShare: 0.1,
  gzipShare: 0.5,
  maxOpen: 2000,
  warmupSeconds: 20,
  windowSeconds: 15,
  quietSeconds: 12,
  settleSeconds: 45,
  settleMaxSeconds: 180,
  sampleEverySeconds: 1,
  progressEverySeconds: 30,
  rssToleranceMb: 32,
  rssTolerancePercent: 10,
  fdSlack: 0,
  connectionSlack: 0,
  drainTimeoutSeconds: 60,
  seed: 0,
  heapSnapshots: 0,
  logLevel: 'info',
};

const FLAGS: SoakFlag<FlakySoakOptions>[] = [
  ['--minutes', 'minutes', 'length of the flaky phase in minutes (fractions allowed)'],
  ['--rate', 'rate', 'flaky clients started per second'],
  ['--users', 'users', 'users the flaky clients sync as'],
  ['--good-clients', 'goodClients', 'well-behaved clients connected throughout'],
  ['--document-rows', 'documentRows', 'rows of the documents bucket every user syncs'],
  ['--document-bytes', 'documentBytes', 'bytes per document'],
  ['--rows-per-user', 'rowsPerUser', 'rows per user before the service starts'],
  ['--write-rate', 'writeRate', 'rows per second written during the run'],
  ['--tx-per-second', 'transactionsPerSecond', 'transactions per second of those writes'],
  ['--notice-every', 'noticeEverySeconds', 'seconds between updates of the global bucket (0: none)'],
  ['--max-bytes', 'maxBytes', 'most body bytes a flaky client reads before dropping'],
  ['--max-stall', 'maxStallSeconds', 'longest stall or slow read, seconds'],
  ['--max-life', 'maxLifeSeconds', 'every flaky connection is dropped after this many seconds'],
  ['--write-checkpoint-share', 'writeCheckpointShare', 'share of flaky clients that also ask for a write checkpoint'],
  ['--gzip-share', 'gzipShare', 'share of flaky clients that accept gzip'],
  ['--max-open', 'maxOpen', 'flaky connections open at most (starts over it are skipped)'],
  ['--warmup', 'warmupSeconds', 'seconds before the baseline window'],
  ['--window', 'windowSeconds', 'seconds of the baseline and after windows'],
  ['--quiet', 'quietSeconds', 'seconds without writes before each window'],
  ['--settle', 'settleSeconds', 'seconds from the last flaky connection to the after window'],
  ['--settle-max', 'settleMaxSeconds', 'latest end of an after window, seconds after the last flaky connection'],
  ['--sample-every', 'sampleEverySeconds', 'seconds between samples'],
  ['--progress-every', 'progressEverySeconds', 'seconds between progress lines'],
  ['--rss-tolerance-mb', 'rssToleranceMb', 'MB of RSS above the baseline that still passes...'],
  ['--rss-tolerance-percent', 'rssTolerancePercent', '...or percent of it, whichever is more'],
  ['--fd-slack', 'fdSlack', 'open fds above the baseline that still pass'],
  ['--connection-slack', 'connectionSlack', 'database connections above the baseline that still pass'],
  ['--drain-timeout', 'drainTimeoutSeconds', 'seconds for the good clients and a fresh one to sync after the run'],
  ['--seed', 'seed', 'seed of the random plans (0: new each run)'],
  ['--heap-snapshots', 'heapSnapshots', '1: heap snapshots after the baseline and after windows, and what grew'],
  ['--log-level', 'logLevel', 'LOG_LEVEL of the service'],
];

export interface FlakySoakArguments {
  options: FlakySoakOptions;
  out: string | undefined;
  help: boolean;
}

export function flakySoakUsage(): string {
  return `${[
    'Usage: npm run soak -- --flaky [flags]',
    '',
    'Starts a throwaway Postgres and the built service with megabytes in a bucket every user syncs,',
    'connects a few well-behaved clients, and measures the service at rest (writes paused): RSS, open',
    'fds, storage and source connections over a baseline window. Then, while rows are written, starts',
    '--rate flaky clients a second for --minutes: each POSTs /sync/stream as a random user, NDJSON or',
    'BSON, gzip or not, and drops before the headers, at the headers, after a random number of bytes,',
    'or after reading slowly or not at all; some also ask for a write checkpoint. After a settle period',
    'it measures at rest again. Exits 1 when RSS grew past the tolerance, fds or connections stayed',
    'above the baseline, the service answered a flaky client with an error other than 429, ended a',
    'stream, or exited, or a good client or a fresh one cannot sync completely after the run.',
    'Writes bench/results/soak-flaky-latest.json.',
    '',
    ...flagUsage(FLAGS, DEFAULT_FLAKY_OPTIONS),
  ].join('\n')}\n`;
}

export function parseFlakySoakArguments(argv: readonly string[]): FlakySoakArguments {
  const { options, out, help } = parseFlags(argv, {
    flags: FLAGS,
    defaults: DEFAULT_FLAKY_OPTIONS,
    text: ['logLevel'],
    ignore: ['--flaky'],
  });
  return { options: validateFlakySoakOptions(options), out, help };
}

/** Checks the combinations; returns the options or throws naming the problem. */
export function validateFlakySoakOptions(options: FlakySoakOptions): FlakySoakOptions {
  const whole = ['users', 'goodClients', 'documentRows', 'rowsPerUser', 'maxOpen', 'seed'] as const;
  for (const key of whole) {
    if (!Number.isInteger(options[key])) throw new Error(`${key}: expected a whole number, got ${options[key]}`);
  }
  const positive = ['minutes', 'rate', 'maxLifeSeconds', 'windowSeconds', 'sampleEverySeconds'] as const;
  for (const key of positive) if (options[key] <= 0) throw new Error(`${key}: expected more than 0`);
  if (options.goodClients < 1 || options.goodClients > options.users)
    throw new Error('goodClients: expected 1 to the number of users');
  if (options.maxOpen < 1) throw new Error('maxOpen: expected at least 1');
  if (options.heapSnapshots !== 0 && options.heapSnapshots !== 1) throw new Error('heapSnapshots: expected 0 or 1');
  for (const key of ['writeCheckpointShare', 'gzipShare'] as const) {
    if (options[key] > 1) throw new Error(`${key}: expected 0 to 1`);
  }
  if (options.windowSeconds < options.sampleEverySeconds * 3)
    throw new Error('windowSeconds: expected at least three samples (3 x sampleEverySeconds)');
  return options;
}
