import { describe, expect, it } from 'vitest';
import {
  analyzeBurstRecovery,
  analyzeGrowth,
  linearSlope,
  percentile,
  summarizeLag,
  type LagSample,
} from '../src/soak-statistics.js';

const limits = { slopeMbPerMinute: 5, growthMb: 50, growthRatio: 0.25 };

/** Memory samples every 5 s over `minutes`, from a function of the time in seconds. */
function series(minutes: number, mb: (t: number) => number) {
  const out = [];
  for (let t = 0; t <= minutes * 60; t += 5) out.push({ t, mb: mb(t) });
  return out;
}

describe('percentiles', () => {
  it('uses the nearest rank: p50 of 1..10 is 5, p95 and p99 are 10', () => {
    const values = [7, 3, 10, 1, 9, 2, 8, 4, 6, 5];
    expect(percentile(values, 50)).toBe(5);
    expect(percentile(values, 95)).toBe(10);
    expect(percentile(values, 99)).toBe(10);
    expect(percentile(values, 10)).toBe(1);
  });

  it('summarises lag, and an empty set as zeros', () => {
    expect(summarizeLag([])).toEqual({ count: 0, p50: 0, p95: 0, p99: 0, max: 0 });
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(summarizeLag(values)).toEqual({ count: 100, p50: 50, p95: 95, p99: 99, max: 100 });
  });
});

describe('growth detection', () => {
  it('finds the slope of a straight line', () => {
    expect(linearSlope([0, 1, 2, 3].map((x) => ({ x, y: 10 + 3 * x })))).toBeCloseTo(3);
    expect(linearSlope([{ x: 1, y: 5 }])).toBe(0);
  });

  it('flags a steady leak: 10 MB per minute for 10 minutes', () => {
    const g = analyzeGrowth(
      series(10, (t) => 100 + (10 * t) / 60),
      600,
      limits,
    );
    expect(g.judged).toBe(true);
    expect(g.slopeMbPerMinute).toBeCloseTo(10);
    expect(g.growing).toBe(true);
  });

  it('does not flag a heap that grows during warm-up and then stays flat', () => {
    const g = analyzeGrowth(
      series(10, (t) => (t < 120 ? 100 + t : 220)),
      600,
      limits,
    );
    expect(g.slopeMbPerMinute).toBeCloseTo(0);
    expect(g.growing).toBe(false);
  });

  it('does not flag a short rise at the very end (steep slope, little lasting growth)', () => {
    const g = analyzeGrowth(
      series(10, (t) => (t >= 540 ? 165 : 120)),
      600,
      limits,
    );
    expect(g.slopeMbPerMinute).toBeGreaterThan(5);
    expect(g.growthMb).toBeLessThan(50);
    expect(g.growing).toBe(false);
  });

  it('does not judge a run with too few samples in its second half', () => {
    const g = analyzeGrowth(
      [
        { t: 0, mb: 100 },
        { t: 10, mb: 200 },
        { t: 20, mb: 400 },
      ],
      20,
      limits,
    );
    expect(g.judged).toBe(false);
    expect(g.growing).toBe(false);
  });
});

describe('burst recovery', () => {
  const burst = { startedAt: 10_000, endedAt: 12_000 };
  const options = { thresholdMs: 1000, windowMs: 30_000 };
  const sample = (committedAt: number, lagMs: number): LagSample => ({
    committedAt,
    deliveredAt: committedAt + lagMs,
    lagMs,
  });

  it('is immediate when lag never went over the threshold', () => {
    const r = analyzeBurstRecovery(burst, [sample(11_000, 300), sample(13_000, 200)], options);
    expect(r).toMatchObject({ recovered: true, recoverySeconds: 0, peakLagMs: 300, samples: 2 });
  });

  it('is the time from the last commit until the last slow row arrived', () => {
    const samples = [sample(5_000, 100), sample(11_000, 4000), sample(14_000, 3000), sample(18_000, 200)];
    const r = analyzeBurstRecovery(burst, samples, options);
    // The last slow row was committed at 14 s and arrived at 17 s: 5 s after the burst ended at 12 s.
    expect(r.recovered).toBe(true);
    expect(r.recoverySeconds).toBeCloseTo(5);
    expect(r.peakLagMs).toBe(4000);
    expect(r.samples).toBe(3);
  });

  it('fails when lag is still over the threshold at the end of the window', () => {
    const samples = [sample(11_000, 4000), sample(20_000, 5000), sample(41_000, 6000)];
    const r = analyzeBurstRecovery(burst, samples, options);
    expect(r.recovered).toBe(false);
    expect(r.recoverySeconds).toBeUndefined();
  });

  it('fails when a row of the window never arrived, even if the ones that did were fast', () => {
    const r = analyzeBurstRecovery(burst, [sample(13_000, 100)], { ...options, undeliveredCommits: [15_000] });
    expect(r.recovered).toBe(false);
  });
});
