/**
 * The pure arithmetic of the soak: percentiles of lag samples, a least-squares slope of memory
 * samples, "grows without bound" (a steep slope over the second half AND a final level well
 * above the post-warm-up level), and how long lag took to recover after each burst.
 */

/** Summary of a set of lag samples in milliseconds; all fields are 0 when there are none. */
export interface LagSummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile (`p` from 0 to 100) of values already sorted ascending; 0 when empty. */
export function percentileOfSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** Nearest-rank percentile of unsorted values. */
export function percentile(values: readonly number[], p: number): number {
  return percentileOfSorted(
    [...values].sort((a, b) => a - b),
    p,
  );
}

export function summarizeLag(values: readonly number[]): LagSummary {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: percentileOfSorted(sorted, 50),
    p95: percentileOfSorted(sorted, 95),
    p99: percentileOfSorted(sorted, 99),
    max: sorted.length > 0 ? sorted[sorted.length - 1]! : 0,
  };
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Least-squares slope of y over x; 0 with fewer than two distinct x. */
export function linearSlope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  let sx = 0;
  let sy = 0;
  for (const p of points) {
    sx += p.x;
    sy += p.y;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

export interface MemorySample {
  /** Seconds since the load started. */
  t: number;
  mb: number;
}

export interface GrowthLimits {
  /** Slope over the second half of the run above which memory counts as growing (MB per minute). */
  slopeMbPerMinute: number;
  /** Growth from the post-warm-up level to the end that counts as "well above" (MB)... */
  growthMb: number;
  /** ...or this fraction of the post-warm-up level, whichever is larger. */
  growthRatio: number;
}

export interface GrowthAnalysis {
  /** False when there were too few samples in the second half to judge (then `growing` is false). */
  judged: boolean;
  growing: boolean;
  /** Median of the samples in the second quarter of the run (after warm-up, before the second half). */
  baselineMb: number;
  /** Median of the last three samples. */
  finalMb: number;
  growthMb: number;
  /** Least-squares slope over the samples of the second half. */
  slopeMbPerMinute: number;
  /** The growth the limits allow for this baseline. */
  allowedGrowthMb: number;
}

/**
 * Unbounded growth: memory still climbing steeply in the second half of the run and ending
 * well above where it settled after warm-up (the first quarter). Either alone is normal: a
 * heap that grows to a plateau has a high final level but a flat slope; a burst near the end
 * makes a steep slope but no lasting rise over a long run.
 */
export function analyzeGrowth(
  samples: readonly MemorySample[],
  runSeconds: number,
  limits: GrowthLimits,
): GrowthAnalysis {
  const secondHalf = samples.filter((s) => s.t >= runSeconds / 2);
  const warm = samples.filter((s) => s.t >= runSeconds / 4 && s.t < runSeconds / 2);
  const baselineMb = median((warm.length > 0 ? warm : samples.slice(0, 1)).map((s) => s.mb));
  const finalMb = median(samples.slice(-3).map((s) => s.mb));
  const slopeMbPerMinute = linearSlope(secondHalf.map((s) => ({ x: s.t / 60, y: s.mb })));
  const growthMb = finalMb - baselineMb;
  const allowedGrowthMb = Math.max(limits.growthMb, limits.growthRatio * baselineMb);
  const judged = secondHalf.length >= 4;
  return {
    judged,
    growing: judged && slopeMbPerMinute > limits.slopeMbPerMinute && growthMb > allowedGrowthMb,
    baselineMb,
    finalMb,
    growthMb,
    slopeMbPerMinute,
    allowedGrowthMb,
  };
}

export interface LagSample {
  /** Milliseconds (soak clock) when the writer's commit returned. */
  committedAt: number;
  /** Milliseconds (soak clock) when a probe client saw the row complete (its checkpoint_complete). */
  deliveredAt: number;
  lagMs: number;
}

export interface BurstWindow {
  /** Milliseconds (soak clock) when the burst's first transaction started. */
  startedAt: number;
  /** Milliseconds (soak clock) when its last transaction committed. */
  endedAt: number;
}

export interface BurstRecovery {
  /** Lag samples of rows committed from the burst's start to the end of the recovery window. */
  samples: number;
  peakLagMs: number;
  /**
   * Seconds from the burst's last commit until the last row over the threshold arrived (0 when
   * lag never went over); undefined when lag was still over the threshold at the end of the
   * window or no row committed after the last slow one was delivered.
   */
  recoverySeconds: number | undefined;
  recovered: boolean;
}

/**
 * Recovery after one burst. Looks at rows committed between the burst's start and the end of
 * the recovery window: the burst recovered when the last row over the threshold arrived within
 * the window after the burst ended and a later row arrived under the threshold (so lag was back
 * down, not merely unmeasured). A row of the window that never arrived means no recovery.
 */
export function analyzeBurstRecovery(
  burst: BurstWindow,
  samples: readonly LagSample[],
  options: { thresholdMs: number; windowMs: number; undeliveredCommits?: readonly number[] },
): BurstRecovery {
  const windowEnd = burst.endedAt + options.windowMs;
  // A row committed in the window that never arrived: lag never came back down.
  const lost = (options.undeliveredCommits ?? []).some((t) => t >= burst.startedAt && t <= windowEnd);
  const relevant = samples
    .filter((s) => s.committedAt >= burst.startedAt && s.committedAt <= windowEnd)
    .sort((a, b) => a.committedAt - b.committedAt);
  let lastBad = -1;
  let peakLagMs = 0;
  relevant.forEach((s, i) => {
    peakLagMs = Math.max(peakLagMs, s.lagMs);
    if (s.lagMs > options.thresholdMs) lastBad = i;
  });
  if (lost) return { samples: relevant.length, peakLagMs, recoverySeconds: undefined, recovered: false };
  if (lastBad < 0) return { samples: relevant.length, peakLagMs, recoverySeconds: 0, recovered: true };
  const bad = relevant[lastBad]!;
  const goodAfter = lastBad < relevant.length - 1;
  const recoveryMs = Math.max(0, bad.deliveredAt - burst.endedAt);
  const recovered = goodAfter && recoveryMs <= options.windowMs;
  return {
    samples: relevant.length,
    peakLagMs,
    recoverySeconds: recovered ? recoveryMs / 1000 : undefined,
    recovered,
  };
}
