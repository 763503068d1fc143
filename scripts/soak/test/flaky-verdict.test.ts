import { describe, expect, it } from 'vitest';
import { DEFAULT_FLAKY_OPTIONS } from '../src/flaky-options.js';
import { formatFlakySummary } from '../src/flaky-report.js';
import type { FlakySoakResult, ResourceSample } from '../src/flaky-result.js';
import { FlakyTally } from '../src/flaky-tally.js';
import { allowedRssGrowthMb, compareResources, judgeFlakySoak, peakOf, summarizeWindow } from '../src/flaky-verdict.js';

const sample = (overrides: Partial<ResourceSample>): ResourceSample => ({
  t: 0,
  phase: 'baseline',
  rssMb: 200,
  fds: 30,
  storageConnections: 3,
  sourceConnections: 4,
  openFlaky: 0,
  serviceCpuPercent: 40,
  postgresCpuPercent: 20,
  soakCpuPercent: 2,
  ...overrides,
});

const window = (rssMb: number, fds: number, storageConnections: number, sourceConnections = 4) => ({
  samples: 15,
  rssMb,
  fds,
  storageConnections,
  sourceConnections,
});

/** A passing run; tests change what they need. */
function fixture(): Omit<FlakySoakResult, 'verdict'> {
  const tally = new FlakyTally();
  tally.record({
    plan: {
      user: 1,
      encoding: 'bson',
      gzip: true,
      writeCheckpoint: false,
      drop: { kind: 'after-bytes', bytes: 90_000 },
    },
    status: 200,
    bytes: 98_304,
    end: 'dropped',
    droppedAt: 'mid-data',
    answeredAsAsked: true,
    cappedByLifetime: false,
    headersMs: 30,
    durationMs: 80,
  });
  return {
    version: 1,
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:12:00.000Z',
    machine: {
      cpus: 2,
      cpuModel: 'test',
      memoryMb: 4096,
      node: 'v20',
      os: 'Linux',
      arch: 'x64',
      loadAverageAtStart: [0.5, 0.4, 0.3],
      loadAverageAtEnd: [1.5, 0.8, 0.4],
      postgres: '15.1',
    },
    git: undefined,
    config: { ...DEFAULT_FLAKY_OPTIONS },
    seed: 42,
    interrupted: false,
    setup: { postgresSeconds: 3, serviceSeconds: 2, goodClientsSeconds: 1 },
    flaky: {
      ...tally.summary(),
      seconds: 600,
      rateAsked: 200,
      rateAchieved: 199.5,
      skippedAtMaxOpen: 0,
      finishSeconds: 10,
      listenOverflows: 0,
    },
    writes: { rows: 30_000, noticeUpdates: 60, errors: [] },
    goodClientLag: { count: 3000, p50: 90, p95: 400, p99: 800, max: 1200 },
    resources: {
      baseline: window(200, 30, 3),
      peak: { rssMb: 600, fds: 1500, storageConnections: 11, sourceConnections: 6, openFlaky: 1400 },
      after: window(220, 30, 3),
      rssAllowedMb: 32,
      afterWindows: 1,
      afterWindowEndSeconds: 72,
    },
    goodClients: [{ user: 'u0', complete: true, ops: 4100, expectedOps: 4100, connects: 1, problems: [] }],
    freshClient: { user: 'u5', complete: true, ops: 4150, expectedOps: 4150, connects: 1, problems: [] },
    service: { exitCode: 0, exitedDuringRun: false, log: { warnings: 0, errors: 0, first: [] } },
    cpuPercent: { service: 150, postgres: 30, soak: 40 },
    series: [],
  };
}

describe('flaky soak windows', () => {
  it('take the median RSS and the floor of fds and connections, so one transient does not count', () => {
    const w = summarizeWindow([
      sample({ rssMb: 210, fds: 31, storageConnections: 4 }),
      sample({ rssMb: 190, fds: 30, storageConnections: 3 }),
      sample({ rssMb: 400, fds: 60, storageConnections: 9 }),
    ]);
    expect(w).toEqual({ samples: 3, rssMb: 210, fds: 30, storageConnections: 3, sourceConnections: 4 });
    expect(peakOf([sample({ rssMb: 210, openFlaky: 7 }), sample({ fds: 90 })])).toMatchObject({
      rssMb: 210,
      fds: 90,
      openFlaky: 7,
    });
  });

  it('allow RSS to grow by 32 MB or 10 % of the baseline, whichever is more', () => {
    const limits = { rssToleranceMb: 32, rssTolerancePercent: 10 };
    expect(allowedRssGrowthMb(200, limits)).toBe(32);
    expect(allowedRssGrowthMb(500, limits)).toBe(50);
  });

  it('fail on one fd or connection above the baseline, or RSS past the allowance, and pass at exactly the limits', () => {
    const options = { rssToleranceMb: 32, rssTolerancePercent: 10, fdSlack: 0, connectionSlack: 0 };
    const peak = { rssMb: 600, fds: 900, storageConnections: 11, sourceConnections: 6, openFlaky: 900 };
    const passed = (after: ReturnType<typeof window>, slack = {}) =>
      compareResources(window(200, 30, 3), after, peak, { ...options, ...slack }).map((c) => c.passed);
    expect(passed(window(232, 30, 3))).toEqual([true, true, true, true]);
    expect(passed(window(232.1, 30, 3))).toEqual([false, true, true, true]);
    expect(passed(window(180, 31, 3))).toEqual([true, false, true, true]);
    expect(passed(window(180, 31, 3), { fdSlack: 1 })).toEqual([true, true, true, true]);
    expect(passed(window(180, 29, 4))).toEqual([true, true, false, true]);
    expect(passed(window(180, 29, 3, 5))).toEqual([true, true, true, false]);
    const [memory, fds] = compareResources(window(200, 30, 3), window(240, 31, 3), peak, options);
    expect(memory!.detail).toContain('baseline 200.0 MB, peak 600.0 MB, after 240.0 MB (+40.0 MB, allowed 32.0 MB');
    expect(fds!.detail).toContain('baseline 30, peak 900, after 31 (+1; none allowed');
  });
});

describe('flaky soak verdict', () => {
  it('passes a run that came back to its baseline and prints the figures', () => {
    const result = fixture();
    const verdict = judgeFlakySoak(result);
    expect(verdict.failures).toEqual([]);
    expect(verdict.passed).toBe(true);
    const text = formatFlakySummary({ ...result, verdict });
    expect(text).toContain('achieved 199.5/s of 200/s asked');
    expect(text).toMatch(/baseline\s+RSS\s+200.0 MB\s+fds\s+30/);
    expect(text).toMatch(/after\s+RSS\s+220.0 MB/);
    expect(text).toContain('Flaky soak PASSED.');
  });

  it('fails on a 5xx, on a stream the service ended, on no drop mid-data, and on a client that cannot sync after', () => {
    const failing = (change: (r: Omit<FlakySoakResult, 'verdict'>) => void) => {
      const result = fixture();
      change(result);
      return judgeFlakySoak(result).failures;
    };
    expect(
      failing((r) => {
        r.flaky.failures = 3;
        r.flaky.errors = { 'stream: HTTP 503 PSYNC_S2302': 3 };
        r.flaky.failureExamples = { 'stream: HTTP 503 PSYNC_S2302': 'u1, ndjson' };
      }),
    ).toEqual([expect.stringMatching(/^flaky clients answered: 3 failures: 3 stream: HTTP 503/)]);
    expect(
      failing((r) => {
        r.flaky.droppedAt.midData = 0;
      }),
    ).toEqual([expect.stringMatching(/^drops happened mid-data/)]);
    expect(
      failing((r) => {
        r.freshClient = { ...r.freshClient, complete: false, ops: 10, problems: ['checksum mismatch'] };
      }),
    ).toEqual([expect.stringMatching(/^a fresh client syncs completely: u5: 10 of 4150 ops, checksum mismatch/)]);
    expect(
      failing((r) => {
        r.service.exitedDuringRun = true;
        r.service.exitCode = 1;
      }),
    ).toEqual([expect.stringMatching(/^service stayed up/)]);
    expect(
      failing((r) => {
        r.resources.after = window(300, 45, 5);
      }),
    ).toHaveLength(3);
  });
});
