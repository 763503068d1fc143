/**
 * The figures of one flaky-client soak: what `runFlakySoak` returns and soak-flaky-latest.json
 * holds. Times in the series are seconds from the end of the good clients' first sync.
 * Format changelog: 1 - first version.
 */
import type { BackendRow } from './connection-sampler.js';
import type { FlakySoakOptions } from './flaky-options.js';
import type { FlakyTallyFigures } from './flaky-tally.js';
import type { HeapGrowth } from './heap-snapshot.js';
import type { SoakResult, SoakVerdict } from './soak-result.js';
import type { LagSummary } from './soak-statistics.js';

export const FLAKY_RESULT_VERSION = 1;

/**
 * Warm-up, the quiet before a window (writes paused), the baseline window, the flaky clients,
 * waiting for the last of them, the settle period, the after window.
 */
export type FlakyPhase = 'warmup' | 'quiet' | 'baseline' | 'flaky' | 'finishing' | 'settle' | 'after';

/** One sample of the service's resources. */
export interface ResourceSample {
  t: number;
  phase: FlakyPhase;
  /** Service RSS (VmRSS). */
  rssMb: number;
  /** Entries of /proc/<service pid>/fd. */
  fds: number;
  /** Backends in the storage database (the service's pool and LISTEN connection). */
  storageConnections: number;
  /** Backends in the source database (replication, write-checkpoint pool, and the soak writer's two). */
  sourceConnections: number;
  /** Flaky connections open in the soak at the time. */
  openFlaky: number;
  serviceCpuPercent: number | undefined;
  postgresCpuPercent: number | undefined;
  soakCpuPercent: number | undefined;
}

/**
 * A window of samples, summarised so that transients do not count: RSS as the median, fds and
 * connections as the floor (a leaked handle is in every sample; a connection opened for one
 * read, or a client reconnecting, is not).
 */
export interface ResourceWindow {
  samples: number;
  rssMb: number;
  fds: number;
  storageConnections: number;
  sourceConnections: number;
}

export interface ResourcePeak {
  rssMb: number;
  fds: number;
  storageConnections: number;
  sourceConnections: number;
  openFlaky: number;
}

/** One well-behaved or fresh client after the run. */
export interface GoodClientFigures {
  user: string;
  /** Reached the newest checkpoint with exactly the ops written for it. */
  complete: boolean;
  ops: number;
  expectedOps: number;
  connects: number;
  problems: string[];
}

export interface FlakySoakResult {
  version: number;
  startedAt: string;
  finishedAt: string;
  machine: SoakResult['machine'];
  git: SoakResult['git'];
  config: FlakySoakOptions;
  /** The seed the plans were drawn with (repeat a run with `--seed`). */
  seed: number;
  interrupted: boolean;
  setup: { postgresSeconds: number; serviceSeconds: number; goodClientsSeconds: number };
  flaky: FlakyTallyFigures & {
    seconds: number;
    rateAsked: number;
    /** Connections started per second over the flaky phase. */
    rateAchieved: number;
    /** Starts skipped because --max-open connections were open. */
    skippedAtMaxOpen: number;
    /**
     * Connections the kernel dropped from a full listen queue during the phase (machine-wide):
     * the service accepting slower than clients arrive.
     */
    listenOverflows?: number;
    /** Seconds from the end of the phase until the last flaky connection had ended. */
    finishSeconds: number;
  };
  writes: { rows: number; noticeUpdates: number; errors: string[] };
  /** Lag seen by the good clients (probes) for rows committed during the flaky phase. */
  goodClientLag: LagSummary;
  resources: {
    baseline: ResourceWindow;
    peak: ResourcePeak;
    after: ResourceWindow;
    /** RSS growth allowed: max(tolerance MB, tolerance percent of the baseline). */
    rssAllowedMb: number;
    /** After windows sampled: more than one when the first was above the baseline (--settle-max). */
    afterWindows: number;
    /** Seconds from the last flaky connection's end to the end of the after window used. */
    afterWindowEndSeconds: number;
    /** The storage backends in the after window, when there were more than at the baseline. */
    storageBackendsAfter?: BackendRow[];
    /** The source backends in the after window, when there were more than at the baseline. */
    sourceBackendsAfter?: BackendRow[];
    /** With --heap-snapshots 1: the heap after a full GC at the end of both windows, and what grew. */
    heap?: {
      baseline: { heapMb: number; rssAfterGcMb: number };
      after: { heapMb: number; rssAfterGcMb: number };
      growth: HeapGrowth[];
    };
  };
  goodClients: GoodClientFigures[];
  /** A client started after the run from nothing (checksums verified). */
  freshClient: GoodClientFigures;
  service: SoakResult['service'];
  cpuPercent: { service: number | undefined; postgres: number | undefined; soak: number | undefined };
  series: ResourceSample[];
  verdict: SoakVerdict;
}
