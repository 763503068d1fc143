/**
 * Pass or fail for a soak run, one check per promise of the issue: the service stays up,
 * clients see no protocol errors and miss nothing, memory does not grow without bound, and
 * lag recovers after every burst. Each check says what it saw, passed or not.
 */
import type { SoakCheck, SoakResult, SoakVerdict } from './soak-result.js';

const mb = (n: number) => `${n.toFixed(1)} MB`;

/** The service did not exit during the run (both soak modes). */
export function serviceCheck(service: SoakResult['service']): SoakCheck {
  return {
    name: 'service stayed up',
    passed: !service.exitedDuringRun,
    detail: service.exitedDuringRun
      ? `the service exited during the run (exit code ${service.exitCode})`
      : `exit code ${service.exitCode ?? 'none (killed after 15 s)'} when stopped; ${service.log.warnings} warnings, ${service.log.errors} errors logged`,
  };
}

/** Every write to the source succeeded (both soak modes). */
export function writesCheck(errors: readonly string[], rows: number): SoakCheck {
  return {
    name: 'writes succeeded',
    passed: errors.length === 0,
    detail: errors.length === 0 ? `${rows} rows written` : `write errors: ${errors.join('; ')}`,
  };
}

export function judgeSoak(result: Omit<SoakResult, 'verdict'>): SoakVerdict {
  const checks: SoakCheck[] = [];
  const { delivery, memory, bursts, service, load, config: options } = result;

  checks.push({
    name: 'run completed',
    passed: !result.interrupted,
    detail: result.interrupted
      ? `the run was stopped after ${load.seconds.toFixed(0)} s of ${options.minutes * 60} s`
      : `${load.seconds.toFixed(0)} s of load`,
  });

  checks.push(serviceCheck(service), writesCheck(load.writeErrors, load.rowsWritten));

  const protocolOk = delivery.protocolProblems === 0 && delivery.unexpectedProbeRows === 0;
  checks.push({
    name: 'no protocol errors',
    passed: protocolOk,
    detail: protocolOk
      ? `${delivery.lines} lines, ${delivery.checkpointsCompleted} checkpoints completed, no stream ended early`
      : [
          `${delivery.protocolProblems} problems (${delivery.unexpectedEnds} streams ended early)`,
          ...(delivery.unexpectedProbeRows > 0 ? [`${delivery.unexpectedProbeRows} rows nobody wrote`] : []),
          ...delivery.problems.slice(0, 3),
        ].join('; '),
  });

  checks.push({
    name: 'every client caught up',
    passed: delivery.caughtUp,
    detail: delivery.caughtUp
      ? `all ${options.clients} clients at the final checkpoint with exactly their ops ${delivery.drainSeconds.toFixed(1)} s after the writes stopped`
      : [
          `after ${delivery.drainSeconds.toFixed(0)} s: ${delivery.clientsBehind} clients behind the newest checkpoint`,
          `${delivery.clientsWithWrongOps} with the wrong number of ops`,
          `${delivery.undeliveredProbeRows} probe rows never arrived`,
          ...delivery.wrongOps.slice(0, 3),
        ].join('; '),
  });

  const growth = memory.service.growth;
  checks.push({
    name: 'memory bounded',
    passed: !growth.growing,
    detail: !growth.judged
      ? 'too few samples in the second half of the run to judge'
      : `service RSS ${mb(growth.baselineMb)} after warm-up, ${mb(growth.finalMb)} at the end ` +
        `(${growth.growthMb >= 0 ? '+' : ''}${mb(growth.growthMb)}, allowed ${mb(growth.allowedGrowthMb)}); ` +
        `slope over the second half ${growth.slopeMbPerMinute.toFixed(2)} MB/min (limit ${options.rssSlopeLimitMbPerMinute})`,
  });

  const unrecovered = bursts.filter((b) => !b.recovered);
  checks.push({
    name: 'lag recovered after bursts',
    passed: unrecovered.length === 0,
    detail:
      bursts.length === 0
        ? 'no bursts in this run'
        : unrecovered.length === 0
          ? `${bursts.length} bursts; lag back under ${options.lagThresholdMs} ms within ` +
            `${Math.max(...bursts.map((b) => b.recoverySeconds ?? 0)).toFixed(1)} s of each burst's last commit`
          : unrecovered
              .map(
                (b) =>
                  `burst ${b.index + 1} (at ${b.atSeconds.toFixed(0)} s): lag not back under ${options.lagThresholdMs} ms ` +
                  `within ${options.recoveryWindowSeconds} s (peak ${(b.peakLagMs / 1000).toFixed(1)} s; ` +
                  `p95 in the 30 s before the burst: ${(b.preBurstP95Ms / 1000).toFixed(1)} s` +
                  `${b.preBurstP95Ms > options.lagThresholdMs ? ', already over the threshold' : ''})`,
              )
              .join('; '),
  });

  const failures = checks.filter((c) => !c.passed).map((c) => `${c.name}: ${c.detail}`);
  return { passed: failures.length === 0, failures, checks };
}
