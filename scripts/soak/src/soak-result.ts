/**
 * The figures of one soak run: what `runSoak` returns and what soak-latest.json holds.
 * Times in the series are seconds from the start of the load; lag is in milliseconds.
 * Format changelog: 1 - first version.
 */
import type { SoakOptions } from './soak-options.js';
import type { ServiceLogProblems } from './soak-service.js';
import type { GrowthAnalysis, LagSummary } from './soak-statistics.js';

export const SOAK_RESULT_VERSION = 1;

export interface RssPoint {
  t: number;
  serviceMb: number;
  soakMb: number;
  /** CPU use of the service since the previous sample, in percent of one core (undefined without /proc). */
  serviceCpuPercent: number | undefined;
  soakCpuPercent: number;
  /** CPU use of the Postgres server (source and storage: every process of the cluster), same unit. */
  postgresCpuPercent: number | undefined;
}

export interface LagWindow {
  /** End of the window. */
  t: number;
  /** Stamped rows that became visible to a probe in the window, and their lag. */
  count: number;
  p50: number;
  p95: number;
  max: number;
  /** Age of the oldest committed row no probe had seen yet at the end of the window. */
  oldestPendingMs: number;
}

export interface BurstFigures {
  index: number;
  /** Seconds from the start of the load. */
  atSeconds: number;
  rows: number;
  transactions: number;
  /** Seconds from the first transaction's start to the last one's commit. */
  writeSeconds: number;
  /** Lag p95 of the rows committed in the 30 s before the burst: where lag has to come back to. */
  preBurstP95Ms: number;
  peakLagMs: number;
  /** Seconds from the last commit until lag was back under the threshold; undefined if it never was. */
  recoverySeconds: number | undefined;
  recovered: boolean;
  lagSamples: number;
}

export interface MemoryFigures {
  startMb: number;
  endMb: number;
  maxMb: number;
}

export interface SoakCheck {
  name: string;
  passed: boolean;
  detail: string;
}

export interface SoakVerdict {
  passed: boolean;
  /** One line per failed check: why the run failed. */
  failures: string[];
  checks: SoakCheck[];
}

export interface SoakResult {
  version: number;
  startedAt: string;
  finishedAt: string;
  machine: {
    cpus: number;
    cpuModel: string;
    memoryMb: number;
    node: string;
    os: string;
    arch: string;
    /** 1, 5 and 15 minute load averages when the run started and ended: a busy machine lags more. */
    loadAverageAtStart: number[];
    loadAverageAtEnd: number[];
    postgres: string;
  };
  /** The commit measured, and whether the work tree had changes; undefined outside a git checkout. */
  git: { commit: string; dirty: boolean } | undefined;
  /** The options of the run. */
  config: SoakOptions;
  /** The run was stopped early (Ctrl-C, or the service exited). */
  interrupted: boolean;
  setup: { postgresSeconds: number; serviceSeconds: number; clientsSeconds: number };
  load: {
    seconds: number;
    rowsWritten: number;
    steadyRows: number;
    steadyTransactions: number;
    /** Steady transactions the writer skipped because it fell more than a second behind. */
    skippedTransactions: number;
    burstRows: number;
    noticeUpdates: number;
    steadyRowsPerSecond: number;
    writeErrors: string[];
  };
  delivery: {
    /** Ops received by all clients in completed checkpoints. */
    opsDelivered: number;
    lines: number;
    checkpointsCompleted: number;
    connects: number;
    /** Streams ended at their token's expiry, followed by a reconnect with a new token (expected). */
    tokenExpiries: number;
    unexpectedEnds: number;
    protocolProblems: number;
    /** The first few problems, with the user they happened to. */
    problems: string[];
    /** Every client reached the same final checkpoint with exactly its expected ops, and every probe row arrived. */
    caughtUp: boolean;
    drainSeconds: number;
    clientsBehind: number;
    clientsWithWrongOps: number;
    wrongOps: string[];
    undeliveredProbeRows: number;
    unexpectedProbeRows: number;
  };
  lag: { overall: LagSummary; steady: LagSummary; burst: LagSummary };
  bursts: BurstFigures[];
  memory: { service: MemoryFigures & { growth: GrowthAnalysis }; soak: MemoryFigures };
  /** Transactions per second during the load in the source and storage databases (storage: the service's queries). */
  databaseTransactionsPerSecond: { source: number; storage: number };
  /** Mean CPU use over the load, in percent of one core (undefined without /proc). */
  cpuPercent: { service: number | undefined; postgres: number | undefined; soak: number | undefined };
  /** Event loop delay of the soak process: high values mean the soak itself distorted the lag figures. */
  soakEventLoopDelayMs: { p50: number; p99: number; max: number };
  service: { exitCode: number | null | undefined; exitedDuringRun: boolean; log: ServiceLogProblems };
  series: { rss: RssPoint[]; lag: LagWindow[] };
  verdict: SoakVerdict;
}
