/**
 * How a flaky-client soak is reported: a human summary for the terminal (baseline, peak and
 * after figures, the connect rate achieved, drops by kind, errors by kind, the checks) and
 * soak-flaky-latest.json with every figure and the sample series.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FlakySoakResult, ResourcePeak, ResourceWindow } from './flaky-result.js';

const num = (n: number) => n.toLocaleString('en-US');
const mib = (n: number) => `${(n / 1048576).toFixed(n >= 10 * 1048576 ? 0 : 1)} MiB`;
const counts = (entries: Record<string, number>) =>
  Object.entries(entries)
    .map(([kind, n]) => `${num(n)} ${kind}`)
    .join(', ') || 'none';

function resourceRow(label: string, w: ResourceWindow | ResourcePeak, extra = ''): string {
  return (
    `  ${label.padEnd(9)} RSS ${w.rssMb.toFixed(1).padStart(7)} MB  fds ${String(w.fds).padStart(5)}  ` +
    `storage connections ${String(w.storageConnections).padStart(3)}  source connections ${String(w.sourceConnections).padStart(3)}${extra}`
  );
}

export function formatFlakySummary(result: FlakySoakResult): string {
  const { config: o, flaky: f, resources: r, machine } = result;
  const lines = [
    '',
    `Flaky-client soak: ${f.seconds.toFixed(0)} s of flaky clients asked at ${o.rate}/s over ${o.users} users, ` +
      `${o.goodClients} well-behaved clients, ${o.writeRate} rows/s written; seed ${result.seed}`,
    `Machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${Math.round(machine.memoryMb / 1024)} GB, Node ${machine.node}, ` +
      `Postgres ${machine.postgres}; load average ${machine.loadAverageAtStart.join(' ')} at the start, ` +
      `${machine.loadAverageAtEnd.join(' ')} at the end`,
    '',
    `Connections: ${num(f.connections)} (achieved ${f.rateAchieved.toFixed(1)}/s of ${f.rateAsked}/s asked` +
      `${f.skippedAtMaxOpen > 0 ? `; ${num(f.skippedAtMaxOpen)} starts skipped at ${o.maxOpen} open` : ''}), ` +
      `at most ${r.peak.openFlaky} open; the last ended ${f.finishSeconds.toFixed(1)} s after the phase` +
      (f.listenOverflows !== undefined ? `; ${num(f.listenOverflows)} listen-queue overflows (machine-wide)` : ''),
    `Answers:     ${num(f.statuses['200'] ?? 0)} streams (${((f.statuses['200'] ?? 0) / Math.max(1, f.seconds)).toFixed(1)}/s), ` +
      `headers after p50 ${f.headersMs.p50} ms, p95 ${f.headersMs.p95} ms, max ${f.headersMs.max} ms`,
    `Drops:       ${num(f.droppedAt.midData)} mid-data (${num(f.midDataOver64KiB)} after > 64 KiB, up to ${mib(f.maxBytesBeforeDrop)}), ` +
      `${num(f.droppedAt.afterHeaders)} at the headers, ${num(f.droppedAt.beforeHeaders)} before them ` +
      `(${num(f.headersLate)} of those because the answer was slower than the lifetime); ` +
      `${num(f.cappedByLifetime)} streams dropped at the ${o.maxLifeSeconds} s lifetime cap`,
    `Planned:     ${counts(f.planned)}`,
    `Read:        ${mib(f.bytesRead)}; NDJSON ${num(f.byEncoding.ndjson.midData)} mid-data drops of ${num(f.byEncoding.ndjson.streams)}, ` +
      `BSON ${num(f.byEncoding.bson.midData)} of ${num(f.byEncoding.bson.streams)}, ` +
      `gzip ${num(f.byCompression.gzip.midData)} of ${num(f.byCompression.gzip.streams)}`,
    `Statuses:    ${counts(f.statuses)}; write checkpoints ${num(f.writeCheckpoints.calls)} ` +
      `(${num(f.writeCheckpoints.ok)} ok, ${num(f.writeCheckpoints.limited)} limited, ${num(f.writeCheckpoints.unanswered)} unanswered, ` +
      `${num(f.writeCheckpoints.failed)} failed)`,
    `Expected:    ${counts(f.expected)}`,
    `Errors:      ${counts(f.errors)}`,
    `Good clients: lag p50 ${result.goodClientLag.p50} ms, p95 ${result.goodClientLag.p95} ms, max ${result.goodClientLag.max} ms ` +
      `during the flaky phase (${num(result.goodClientLag.count)} rows); ${num(result.writes.rows)} rows written in the run`,
    '',
    `Service at rest (baseline and after: ${r.baseline.samples} and ${r.after.samples} samples, median RSS, floor of fds and ` +
      `connections; the after window ended ${r.afterWindowEndSeconds.toFixed(0)} s after the last flaky connection` +
      `${r.afterWindows > 1 ? `, window ${r.afterWindows}` : ''}):`,
    resourceRow('baseline', r.baseline),
    resourceRow('peak', r.peak, `  flaky open ${r.peak.openFlaky}`),
    resourceRow('after', r.after, `  (RSS allowed +${r.rssAllowedMb.toFixed(1)} MB)`),
    `CPU (mean over the flaky phase, % of one core): service ${result.cpuPercent.service ?? '?'}%, ` +
      `Postgres ${result.cpuPercent.postgres ?? '?'}%, soak ${result.cpuPercent.soak ?? '?'}%`,
  ];
  if (r.heap) {
    lines.push(
      `Heap after a full GC: baseline ${r.heap.baseline.heapMb} MB (RSS then ${r.heap.baseline.rssAfterGcMb} MB), ` +
        `after ${r.heap.after.heapMb} MB (RSS then ${r.heap.after.rssAfterGcMb} MB); grew most:`,
    );
    for (const g of r.heap.growth.slice(0, 8)) {
      lines.push(
        `  ${g.name.slice(0, 40).padEnd(40)} ${num(g.countBefore)} -> ${num(g.countAfter)} nodes, ` +
          `${(g.bytesBefore / 1048576).toFixed(2)} -> ${(g.bytesAfter / 1048576).toFixed(2)} MB`,
      );
    }
  }
  for (const b of [...(r.storageBackendsAfter ?? []), ...(r.sourceBackendsAfter ?? [])]) {
    lines.push(
      `  ${b.database} backend after: ${b.backendType}, up ${b.ageSeconds} s, ${b.state ?? '?'} for ${b.stateSeconds} s: ` +
        b.query.replace(/\s+/g, ' '),
    );
  }
  lines.push('');
  for (const check of result.verdict.checks) {
    lines.push(`${check.passed ? 'ok  ' : 'FAIL'} ${check.name}: ${check.detail}`);
  }
  lines.push(
    '',
    result.verdict.passed ? 'Flaky soak PASSED.' : `Flaky soak FAILED:\n  - ${result.verdict.failures.join('\n  - ')}`,
  );
  return `${lines.join('\n')}\n`;
}

/** Writes `soak-flaky-latest.json` into `folder`; returns its path. */
export async function writeFlakyReport(result: FlakySoakResult, folder: string): Promise<{ json: string }> {
  await mkdir(folder, { recursive: true });
  const json = path.join(folder, 'soak-flaky-latest.json');
  await writeFile(json, `${JSON.stringify(result, null, 2)}\n`);
  return { json };
}
