/**
 * What a soak run does and what it tolerates: the options, their defaults, and the
 * `npm run soak -- --flag value` arguments that set them.
 */

export interface SoakOptions {
  /** Length of the load phase (writes and connected clients), after setup. Default 10. */
  minutes: number;
  /** Connected clients. Default 500. */
  clients: number;
  /** Distinct users; clients beyond it share users. Default: one per client. */
  users: number;
  /** Clients that parse everything, verify checksums and measure lag (the first users). Default 5. */
  probes: number;
  /** Steady writes, rows per second. Default 200. */
  rate: number;
  /** Steady transactions per second (the rows are spread over them). Default 10. */
  transactionsPerSecond: number;
  /** Size of each row's payload column. Default 100. */
  payloadBytes: number;
  /** Rows per burst. Default 20,000. */
  burstRows: number;
  /** Transactions per burst. Default 4. */
  burstTransactions: number;
  /** Seconds between bursts; the first comes at half of it. Default 120. */
  burstEverySeconds: number;
  /** Seconds between updates of the global bucket (received by every client). Default 10. */
  noticeEverySeconds: number;
  /** Lag under this counts as recovered. Default 1000. */
  lagThresholdMs: number;
  /** Lag must be back under the threshold this long after a burst's last commit. Default 60. */
  recoveryWindowSeconds: number;
  /** Service RSS growing faster than this over the second half of the run... Default 5. */
  rssSlopeLimitMbPerMinute: number;
  /** ...and ending this much above its post-warm-up level (or 25% of it, if more) fails the run. Default 50. */
  rssGrowthLimitMb: number;
  /** Seconds between RSS and lag samples. Default 5. */
  sampleEverySeconds: number;
  /** Seconds between progress lines. Default 30. */
  progressEverySeconds: number;
  /** After the writes stop, how long clients get to catch up. Default 60. */
  drainTimeoutSeconds: number;
  /**
   * Lifetime of the clients' tokens in seconds; streams end at expiry and clients reconnect with
   * a new token. Default 0: longer than the run (up to the service's one-day cap).
   */
  tokenSeconds: number;
  /** LOG_LEVEL of the service. Default info. */
  logLevel: string;
}

export const DEFAULT_SOAK_OPTIONS: SoakOptions = {
  minutes: 10,
  clients: 500,
  users: 500,
  probes: 5,
  rate: 200,
  transactionsPerSecond: 10,
  payloadBytes: 100,
  burstRows: 20_000,
  burstTransactions: 4,
  burstEverySeconds: 120,
  noticeEverySeconds: 10,
  lagThresholdMs: 1000,
  recoveryWindowSeconds: 60,
  rssSlopeLimitMbPerMinute: 5,
  rssGrowthLimitMb: 50,
  sampleEverySeconds: 5,
  progressEverySeconds: 30,
  drainTimeoutSeconds: 60,
  tokenSeconds: 0,
  logLevel: 'info',
};

/** Flags: name, option, description. */
const FLAGS: SoakFlag<SoakOptions>[] = [
  ['--minutes', 'minutes', 'length of the load phase in minutes (fractions allowed)'],
  ['--clients', 'clients', 'connected sync clients'],
  ['--users', 'users', 'distinct users (default: one per client; fewer means clients share users)'],
  ['--probes', 'probes', 'clients that parse every line, verify checksums and measure lag'],
  ['--rate', 'rate', 'steady writes, rows per second'],
  ['--tx-per-second', 'transactionsPerSecond', 'steady transactions per second'],
  ['--payload-bytes', 'payloadBytes', 'payload size of each row'],
  ['--burst-rows', 'burstRows', 'rows per burst (0: no bursts)'],
  ['--burst-transactions', 'burstTransactions', 'transactions per burst'],
  ['--burst-every', 'burstEverySeconds', 'seconds between bursts (the first at half of it)'],
  ['--notice-every', 'noticeEverySeconds', 'seconds between updates of the global bucket (0: none)'],
  ['--lag-threshold', 'lagThresholdMs', 'lag (ms) under which a burst counts as recovered'],
  ['--recovery-window', 'recoveryWindowSeconds', 'seconds after a burst for lag to get back under the threshold'],
  [
    '--rss-slope-limit',
    'rssSlopeLimitMbPerMinute',
    'MB/min of service RSS growth over the second half that counts as growing',
  ],
  ['--rss-growth-limit', 'rssGrowthLimitMb', 'MB above the post-warm-up RSS that counts as well above it'],
  ['--sample-every', 'sampleEverySeconds', 'seconds between RSS and lag samples'],
  ['--progress-every', 'progressEverySeconds', 'seconds between progress lines'],
  ['--drain-timeout', 'drainTimeoutSeconds', 'seconds for clients to catch up after the writes stop'],
  ['--token-seconds', 'tokenSeconds', 'token lifetime; streams end and reconnect at expiry (0: longer than the run)'],
  ['--log-level', 'logLevel', 'LOG_LEVEL of the service'],
];

export interface SoakArguments {
  options: SoakOptions;
  /** Folder for soak-latest.json / .svg / -service.log (default bench/results). */
  out: string | undefined;
  help: boolean;
}

export function soakUsage(): string {
  const lines = [
    'Usage: npm run soak -- [flags]',
    '',
    'Starts a throwaway Postgres and the built service, connects the clients, writes steadily with',
    'periodic bursts, and reports service RSS over time and replication lag. Exits 1 when memory',
    'grows without bound, lag does not recover after a burst, a client sees a protocol error or',
    'misses data, or the service exits. Writes bench/results/soak-latest.json and .svg.',
    '',
    ...flagUsage(FLAGS, DEFAULT_SOAK_OPTIONS, { users: 'clients' }),
    '',
    'With --flaky: clients that connect, read a random amount and drop, hundreds per second',
    '(npm run soak -- --flaky --help).',
  ];
  return `${lines.join('\n')}\n`;
}

/** One flag of a soak mode: its name, the option it sets, and the text of `--help`. */
export type SoakFlag<T> = readonly [name: string, key: keyof T & string, text: string];

/**
 * Reads `--flag value` / `--flag=value` arguments into a copy of `defaults`: numbers >= 0, except
 * the `text` keys, which take any string. `--out` and `--help` are common to every mode; `ignore`
 * names bare flags that only select the mode (`--flaky`). Throws an Error naming a bad flag or value.
 */
export function parseFlags<T extends object>(
  argv: readonly string[],
  spec: { flags: readonly SoakFlag<T>[]; defaults: T; text?: readonly (keyof T)[]; ignore?: readonly string[] },
): { options: T; set: Set<keyof T>; out: string | undefined; help: boolean } {
  const options = { ...spec.defaults };
  const set = new Set<keyof T>();
  let out: string | undefined;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (spec.ignore?.includes(arg)) continue;
    const eq = arg.indexOf('=');
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new Error(`${flag}: expected a value`);
    if (flag === '--out') {
      out = value;
      continue;
    }
    const entry = spec.flags.find(([name]) => name === flag);
    if (!entry) throw new Error(`unknown flag ${flag} (see --help)`);
    const key = entry[1];
    set.add(key);
    if (spec.text?.includes(key)) {
      (options as Record<string, unknown>)[key] = value;
      continue;
    }
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0)
      throw new Error(`${flag}: expected a number >= 0, got "${value}"`);
    (options as Record<string, unknown>)[key] = n;
  }
  return { options, set, out, help };
}

/** The `Flags:` part of a mode's `--help`: each flag with its default (`shown` overrides a default's text). */
export function flagUsage<T extends object>(
  flags: readonly SoakFlag<T>[],
  defaults: T,
  shown: Partial<Record<keyof T, string>> = {},
): string[] {
  const width = Math.max(28, ...flags.map(([flag]) => flag.length + 10));
  const lines = ['Flags (default in brackets):'];
  for (const [flag, key, text] of flags) {
    lines.push(`  ${`${flag} <value>`.padEnd(width)} ${text} [${shown[key] ?? String(defaults[key])}]`);
  }
  lines.push(`  ${'--out <folder>'.padEnd(width)} where the report files go [bench/results]`);
  lines.push(`  ${'--help'.padEnd(width)} this text`);
  return lines;
}

/** Parses `--flag value` / `--flag=value` arguments; throws an Error naming a bad flag or value. */
export function parseSoakArguments(argv: readonly string[]): SoakArguments {
  const { options, set, out, help } = parseFlags(argv, {
    flags: FLAGS,
    defaults: DEFAULT_SOAK_OPTIONS,
    text: ['logLevel'],
  });
  if (!set.has('users')) options.users = options.clients;
  return { options: validateSoakOptions(options), out, help };
}

/** Checks the combinations; returns the options or throws naming the problem. */
export function validateSoakOptions(options: SoakOptions): SoakOptions {
  const whole = ['clients', 'users', 'probes', 'burstRows', 'burstTransactions', 'payloadBytes'] as const;
  for (const key of whole) {
    if (!Number.isInteger(options[key])) throw new Error(`${key}: expected a whole number, got ${options[key]}`);
  }
  if (options.minutes <= 0) throw new Error('minutes: expected more than 0');
  if (options.clients < 1) throw new Error('clients: expected at least 1');
  if (options.users < 1 || options.users > options.clients)
    throw new Error('users: expected 1 to the number of clients');
  if (options.probes < 1 || options.probes > options.users)
    throw new Error('probes: expected 1 to the number of users');
  if (options.burstRows > 0 && options.burstTransactions < 1) throw new Error('burstTransactions: expected at least 1');
  if (options.burstRows > 0 && options.burstEverySeconds <= 0)
    throw new Error('burstEverySeconds: expected more than 0');
  if (options.sampleEverySeconds <= 0) throw new Error('sampleEverySeconds: expected more than 0');
  if (options.progressEverySeconds <= 0) throw new Error('progressEverySeconds: expected more than 0');
  return options;
}

/**
 * When bursts start, in seconds from the start of the load: the first at half the interval,
 * then every interval, as long as the recovery window still fits in the run.
 */
export function burstSchedule(runSeconds: number, everySeconds: number, recoveryWindowSeconds: number): number[] {
  const times: number[] = [];
  if (everySeconds <= 0) return times;
  for (let at = everySeconds / 2; at + recoveryWindowSeconds <= runSeconds; at += everySeconds) times.push(at);
  return times;
}
