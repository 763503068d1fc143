import { describe, expect, it } from 'vitest';
import { renderSoakChart } from '../src/soak-chart.js';
import { DEFAULT_SOAK_OPTIONS } from '../src/soak-options.js';
import { formatSoakSummary } from '../src/soak-report.js';
import type { SoakResult } from '../src/soak-result.js';
import { judgeSoak } from '../src/soak-verdict.js';

const lagSummary = { count: 100, p50: 80, p95: 200, p99: 400, max: 900 };

/** A plausible passing three-minute run; tests change what they need. */
function fixture(): Omit<SoakResult, 'verdict'> {
  const rss = Array.from({ length: 37 }, (_, i) => ({
    t: i * 5,
    serviceMb: 150 + (i % 3),
    soakMb: 120,
    serviceCpuPercent: 50,
    soakCpuPercent: 10,
    postgresCpuPercent: 70,
  }));
  return {
    version: 1,
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:03:10.000Z',
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
    config: { ...DEFAULT_SOAK_OPTIONS, minutes: 3 },
    interrupted: false,
    setup: { postgresSeconds: 1, serviceSeconds: 1, clientsSeconds: 2 },
    load: {
      seconds: 180,
      rowsWritten: 56_000,
      steadyRows: 36_000,
      steadyTransactions: 1800,
      skippedTransactions: 0,
      burstRows: 20_000,
      noticeUpdates: 17,
      steadyRowsPerSecond: 200,
      writeErrors: [],
    },
    delivery: {
      opsDelivered: 70_000,
      lines: 300_000,
      checkpointsCompleted: 100_000,
      connects: 500,
      tokenExpiries: 0,
      unexpectedEnds: 0,
      protocolProblems: 0,
      problems: [],
      caughtUp: true,
      drainSeconds: 1.2,
      clientsBehind: 0,
      clientsWithWrongOps: 0,
      wrongOps: [],
      undeliveredProbeRows: 0,
      unexpectedProbeRows: 0,
    },
    lag: { overall: lagSummary, steady: lagSummary, burst: lagSummary },
    bursts: [
      {
        index: 0,
        atSeconds: 60,
        rows: 20_000,
        transactions: 4,
        writeSeconds: 0.5,
        preBurstP95Ms: 200,
        peakLagMs: 4000,
        recoverySeconds: 6,
        recovered: true,
        lagSamples: 300,
      },
    ],
    memory: {
      service: {
        startMb: 150,
        endMb: 151,
        maxMb: 152,
        growth: {
          judged: true,
          growing: false,
          baselineMb: 151,
          finalMb: 151,
          growthMb: 0,
          slopeMbPerMinute: 0.1,
          allowedGrowthMb: 50,
        },
      },
      soak: { startMb: 120, endMb: 120, maxMb: 120 },
    },
    databaseTransactionsPerSecond: { source: 12, storage: 3000 },
    cpuPercent: { service: 50, postgres: 70, soak: 10 },
    soakEventLoopDelayMs: { p50: 10, p99: 20, max: 40 },
    service: { exitCode: 0, exitedDuringRun: false, log: { warnings: 0, errors: 0, first: [] } },
    series: {
      rss,
      lag: rss.map((p) => ({ t: p.t, count: 10, p50: 80, p95: 200, max: 300, oldestPendingMs: 50 })),
    },
  };
}

describe('verdict', () => {
  it('passes a clean run, with every check saying what it saw', () => {
    const verdict = judgeSoak(fixture());
    expect(verdict.passed).toBe(true);
    expect(verdict.failures).toEqual([]);
    expect(verdict.checks.map((c) => c.name)).toEqual([
      'run completed',
      'service stayed up',
      'writes succeeded',
      'no protocol errors',
      'every client caught up',
      'memory bounded',
      'lag recovered after bursts',
    ]);
  });

  it('fails and says why: growing memory, a burst that did not recover, a protocol error, the service exiting', () => {
    const result = fixture();
    result.memory.service.growth = {
      ...result.memory.service.growth,
      growing: true,
      growthMb: 120,
      slopeMbPerMinute: 30,
    };
    result.bursts[0] = { ...result.bursts[0]!, recovered: false, recoverySeconds: undefined, preBurstP95Ms: 1500 };
    result.delivery.protocolProblems = 1;
    result.delivery.problems = ['u3: checksum mismatch in by_owner["u3"]'];
    result.service.exitedDuringRun = true;
    result.service.exitCode = 1;
    const verdict = judgeSoak(result);
    expect(verdict.passed).toBe(false);
    expect(verdict.failures.join('\n')).toMatch(/memory bounded: .*slope over the second half 30\.00 MB\/min/);
    expect(verdict.failures.join('\n')).toMatch(/burst 1 \(at 60 s\).*already over the threshold/);
    expect(verdict.failures.join('\n')).toMatch(/no protocol errors: 1 problems.*checksum mismatch/);
    expect(verdict.failures.join('\n')).toMatch(/service stayed up: the service exited during the run \(exit code 1\)/);
  });

  it('fails when a client did not catch up', () => {
    const result = fixture();
    result.delivery = { ...result.delivery, caughtUp: false, clientsBehind: 2, wrongOps: ['u7: 10 ops, expected 12'] };
    expect(judgeSoak(result).failures).toEqual([
      expect.stringMatching(/every client caught up: .*2 clients behind.*u7: 10 ops, expected 12/),
    ]);
  });
});

describe('report', () => {
  it('summarises the figures for a person', () => {
    const result = fixture();
    const text = formatSoakSummary({ ...result, verdict: judgeSoak(result) });
    expect(text).toContain('p50 80 ms  p95 200 ms  p99 400 ms  max 900 ms');
    expect(text).toContain('burst 1 at 60 s: 20,000 rows written in 0.5 s');
    expect(text).toContain('back under 1000 ms after 6.0 s');
    expect(text).toContain('Service RSS: start 150 MB, end 151 MB, max 152 MB');
    expect(text).toContain('Soak PASSED.');
  });

  it('draws a standalone SVG with both panels, the burst and the threshold', () => {
    const result = fixture();
    const svg = renderSoakChart({ ...result, verdict: judgeSoak(result) });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline /g)?.length).toBe(5);
    expect(svg).toContain('burst 1');
    expect(svg).toContain('threshold 1000 ms');
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
  });
});
