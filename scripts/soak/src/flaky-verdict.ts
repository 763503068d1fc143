/**
 * Pass or fail for a flaky-client soak: the service stayed up and answered every flaky client
 * with a stream or a 429, the drops really happened mid-data, RSS, open fds and database
 * connections came back to their baseline, and clients sync completely after the storm.
 */
import type { FlakySoakOptions } from './flaky-options.js';
import type { FlakySoakResult, ResourcePeak, ResourceSample, ResourceWindow } from './flaky-result.js';
import type { SoakCheck, SoakVerdict } from './soak-result.js';
import { serviceCheck, writesCheck } from './soak-verdict.js';
import { median } from './soak-statistics.js';

/** Median RSS and the floor of fds and connections over `samples` (flaky-result.ts ResourceWindow says why). */
export function summarizeWindow(samples: readonly ResourceSample[]): ResourceWindow {
  const floor = (values: number[]) => (values.length === 0 ? 0 : Math.min(...values));
  return {
    samples: samples.length,
    rssMb: Math.round(median(samples.map((s) => s.rssMb)) * 10) / 10,
    fds: floor(samples.map((s) => s.fds)),
    storageConnections: floor(samples.map((s) => s.storageConnections)),
    sourceConnections: floor(samples.map((s) => s.sourceConnections)),
  };
}

export function peakOf(samples: readonly ResourceSample[]): ResourcePeak {
  const max = (values: number[]) => Math.max(0, ...values);
  return {
    rssMb: max(samples.map((s) => s.rssMb)),
    fds: max(samples.map((s) => s.fds)),
    storageConnections: max(samples.map((s) => s.storageConnections)),
    sourceConnections: max(samples.map((s) => s.sourceConnections)),
    openFlaky: max(samples.map((s) => s.openFlaky)),
  };
}

/**
 * RSS growth that still passes: the larger of `toleranceMb` and `tolerancePercent` of the
 * baseline. Neither V8 nor malloc hands every freed page back at once after a storm of
 * streams (docs/security.md "Flaky-client soak"), so some growth is not a leak; a leak of even a
 * few hundred bytes per connection over a 10-minute storm exceeds it.
 */
export function allowedRssGrowthMb(
  baselineMb: number,
  options: Pick<FlakySoakOptions, 'rssToleranceMb' | 'rssTolerancePercent'>,
): number {
  return Math.max(options.rssToleranceMb, (baselineMb * options.rssTolerancePercent) / 100);
}

/** The resource checks: each after-window figure against its baseline and allowance. */
export function compareResources(
  baseline: ResourceWindow,
  after: ResourceWindow,
  peak: ResourcePeak,
  options: Pick<FlakySoakOptions, 'rssToleranceMb' | 'rssTolerancePercent' | 'fdSlack' | 'connectionSlack'>,
): SoakCheck[] {
  const allowedMb = allowedRssGrowthMb(baseline.rssMb, options);
  const growth = after.rssMb - baseline.rssMb;
  const sign = (n: number) => (n >= 0 ? `+${n}` : String(n));
  const counted = (name: string, key: 'fds' | 'storageConnections' | 'sourceConnections', slack: number) => {
    const delta = after[key] - baseline[key];
    return {
      name,
      passed: delta <= slack,
      detail:
        `baseline ${baseline[key]}, peak ${peak[key]}, after ${after[key]} (${sign(delta)}; ` +
        `${slack === 0 ? 'none allowed' : `${slack} allowed`}; floors of each window)`,
    };
  };
  return [
    {
      name: 'memory back at baseline',
      passed: growth <= allowedMb,
      detail:
        `service RSS baseline ${baseline.rssMb.toFixed(1)} MB, peak ${peak.rssMb.toFixed(1)} MB, after ` +
        `${after.rssMb.toFixed(1)} MB (${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MB, allowed ${allowedMb.toFixed(1)} MB; medians)`,
    },
    counted('open fds back at baseline', 'fds', options.fdSlack),
    counted('storage connections back at baseline', 'storageConnections', options.connectionSlack),
    counted('source connections back at baseline', 'sourceConnections', options.connectionSlack),
  ];
}

export function judgeFlakySoak(result: Omit<FlakySoakResult, 'verdict'>): SoakVerdict {
  const { flaky, service, resources, config: options } = result;
  const checks: SoakCheck[] = [];

  checks.push({
    name: 'run completed',
    passed: !result.interrupted,
    detail: result.interrupted
      ? `the run was stopped after ${flaky.seconds.toFixed(0)} s of ${options.minutes * 60} s of flaky clients`
      : `${flaky.seconds.toFixed(0)} s of flaky clients`,
  });
  checks.push(serviceCheck(service), writesCheck(result.writes.errors, result.writes.rows));

  const expected = Object.entries(flaky.expected)
    .map(([kind, n]) => `${n} ${kind}`)
    .join(', ');
  checks.push({
    name: 'flaky clients answered',
    passed: flaky.failures === 0,
    detail:
      flaky.failures === 0
        ? `${flaky.connections} connections, no error other than the expected (${expected || 'none'})`
        : `${flaky.failures} failures: ${Object.entries(flaky.errors)
            .map(([kind, n]) => `${n} ${kind}`)
            .join(', ')}; e.g. ${Object.entries(flaky.failureExamples)
            .slice(0, 3)
            .map(([kind, example]) => `${kind}: ${example}`)
            .join('; ')}`,
  });
  // Without drops in the middle of the data, "back at baseline" proves little.
  checks.push({
    name: 'drops happened mid-data',
    passed: flaky.droppedAt.midData > 0,
    detail:
      `${flaky.droppedAt.midData} of ${flaky.connections} dropped mid-data (${flaky.midDataOver64KiB} after more than ` +
      `64 KiB, up to ${(flaky.maxBytesBeforeDrop / 1048576).toFixed(1)} MiB), ${flaky.droppedAt.afterHeaders} at the headers, ` +
      `${flaky.droppedAt.beforeHeaders} before them`,
  });

  checks.push(...compareResources(resources.baseline, resources.after, resources.peak, options));

  const goodProblems = result.goodClients.filter((c) => !c.complete);
  checks.push({
    name: 'good clients caught up',
    passed: goodProblems.length === 0,
    detail:
      goodProblems.length === 0
        ? `all ${result.goodClients.length} at the newest checkpoint with exactly their ops`
        : goodProblems
            .map((c) => `${c.user}: ${c.ops} of ${c.expectedOps} ops${c.problems.length ? `, ${c.problems[0]}` : ''}`)
            .join('; '),
  });
  const fresh = result.freshClient;
  checks.push({
    name: 'a fresh client syncs completely',
    passed: fresh.complete,
    detail: fresh.complete
      ? `${fresh.user} from nothing: ${fresh.ops} ops, checksums verified`
      : `${fresh.user}: ${fresh.ops} of ${fresh.expectedOps} ops${fresh.problems.length ? `, ${fresh.problems.join('; ')}` : ''}`,
  });

  const failures = checks.filter((c) => !c.passed).map((c) => `${c.name}: ${c.detail}`);
  return { passed: failures.length === 0, failures, checks };
}
