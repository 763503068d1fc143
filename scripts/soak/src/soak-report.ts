/**
 * How a soak run is reported: a human summary for the terminal, and soak-latest.json (every
 * figure and series) plus soak-latest.svg (the chart) in the results folder.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { renderSoakChart } from './soak-chart.js';
import type { SoakResult } from './soak-result.js';
import type { LagSummary } from './soak-statistics.js';

const ms = (n: number) => (n >= 10_000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n)} ms`);
const lagLine = (s: LagSummary) =>
  s.count === 0
    ? 'no samples'
    : `p50 ${ms(s.p50)}  p95 ${ms(s.p95)}  p99 ${ms(s.p99)}  max ${ms(s.max)}  (${s.count} rows)`;
const num = (n: number) => n.toLocaleString('en-US');

export function formatSoakSummary(result: SoakResult): string {
  const { config: o, load, delivery, lag, memory, machine } = result;
  const lines = [
    '',
    `Soak: ${o.clients} clients (${o.users} users, ${o.probes} probes), ${o.rate} rows/s steady, ` +
      `${result.bursts.length} bursts of ${num(o.burstRows)} rows, ${(load.seconds / 60).toFixed(1)} min of load`,
    `Machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${Math.round(machine.memoryMb / 1024)} GB, Node ${machine.node}, ` +
      `Postgres ${machine.postgres}, ${machine.os}; load average ${machine.loadAverageAtStart.join(' ')} at the start, ` +
      `${machine.loadAverageAtEnd.join(' ')} at the end`,
    `Setup: Postgres ${result.setup.postgresSeconds.toFixed(1)} s, service ${result.setup.serviceSeconds.toFixed(1)} s, ` +
      `${o.clients} clients connected and synced ${result.setup.clientsSeconds.toFixed(1)} s`,
    '',
    `Writes:     ${num(load.rowsWritten)} rows (${num(load.steadyRows)} steady at ${load.steadyRowsPerSecond.toFixed(0)}/s, ` +
      `${num(load.burstRows)} in bursts), ${load.noticeUpdates} global-bucket updates` +
      (load.skippedTransactions > 0 ? `, ${load.skippedTransactions} steady transactions skipped (writer behind)` : ''),
    `Delivered:  ${num(delivery.opsDelivered)} ops in ${num(delivery.checkpointsCompleted)} completed checkpoints, ` +
      `${num(delivery.connects)} connects (${num(delivery.tokenExpiries)} after a token expired), ` +
      `${delivery.unexpectedEnds} streams ended early`,
    '',
    `Lag (commit to visible at a probe):`,
    `  overall      ${lagLine(lag.overall)}`,
    `  steady       ${lagLine(lag.steady)}`,
    `  after bursts ${lagLine(lag.burst)}`,
  ];
  for (const b of result.bursts) {
    lines.push(
      `  burst ${b.index + 1} at ${b.atSeconds.toFixed(0)} s: ${num(b.rows)} rows written in ${b.writeSeconds.toFixed(1)} s, ` +
        `lag p95 before ${ms(b.preBurstP95Ms)}, peak ${ms(b.peakLagMs)}, ` +
        (b.recovered
          ? `back under ${o.lagThresholdMs} ms after ${b.recoverySeconds!.toFixed(1)} s`
          : 'did NOT recover'),
    );
  }
  const s = memory.service;
  lines.push(
    '',
    `Service RSS: start ${s.startMb.toFixed(0)} MB, end ${s.endMb.toFixed(0)} MB, max ${s.maxMb.toFixed(0)} MB; ` +
      `after warm-up ${s.growth.baselineMb.toFixed(0)} MB, slope over the second half ${s.growth.slopeMbPerMinute.toFixed(2)} MB/min`,
    `CPU (mean, % of one core): service ${result.cpuPercent.service ?? '?'}%, Postgres ${result.cpuPercent.postgres ?? '?'}%, ` +
      `soak process ${result.cpuPercent.soak ?? '?'}%; transactions/s: storage ${num(result.databaseTransactionsPerSecond.storage)}, ` +
      `source ${num(result.databaseTransactionsPerSecond.source)}`,
    `Soak RSS:    start ${memory.soak.startMb.toFixed(0)} MB, end ${memory.soak.endMb.toFixed(0)} MB, max ${memory.soak.maxMb.toFixed(0)} MB; ` +
      `event loop delay p99 ${result.soakEventLoopDelayMs.p99.toFixed(0)} ms, max ${result.soakEventLoopDelayMs.max.toFixed(0)} ms`,
    '',
  );
  for (const check of result.verdict.checks) {
    lines.push(`${check.passed ? 'ok  ' : 'FAIL'} ${check.name}: ${check.detail}`);
  }
  lines.push(
    '',
    result.verdict.passed ? 'Soak PASSED.' : `Soak FAILED:\n  - ${result.verdict.failures.join('\n  - ')}`,
  );
  return `${lines.join('\n')}\n`;
}

/** Writes `soak-latest.json` and `soak-latest.svg` into `folder`; returns their paths. */
export async function writeSoakReport(result: SoakResult, folder: string): Promise<{ json: string; svg: string }> {
  await mkdir(folder, { recursive: true });
  const json = path.join(folder, 'soak-latest.json');
  const svg = path.join(folder, 'soak-latest.svg');
  await writeFile(json, `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(svg, renderSoakChart(result));
  return { json, svg };
}
