#!/usr/bin/env node
/**
 * `npm run soak -- [--minutes M] [--clients N] [--rate R] ...`: runs the soak (see soak-run.ts),
 * prints progress every 30 s and a summary, writes bench/results/soak-latest.json and .svg, and
 * exits 1 with the reasons when the run fails. Ctrl-C stops the run early (reported as failed).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseSoakArguments, soakUsage } from './soak-options.js';
import { formatSoakSummary, writeSoakReport } from './soak-report.js';
import { runSoak } from './soak-run.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

let args;
try {
  args = parseSoakArguments(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`soak: ${(e as Error).message}\n\n${soakUsage()}`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(soakUsage());
  process.exit(0);
}

const out = path.resolve(root, args.out ?? 'bench/results');
mkdirSync(out, { recursive: true });
const abort = new AbortController();
let interrupts = 0;
process.on('SIGINT', () => {
  if (++interrupts > 1) process.exit(130);
  console.log('\nStopping early (Ctrl-C again to exit at once)...');
  abort.abort();
});

try {
  const result = await runSoak(args.options, {
    signal: abort.signal,
    log: (line) => console.log(line),
    serviceLogCopy: path.join(out, 'soak-latest-service.log'),
  });
  process.stdout.write(formatSoakSummary(result));
  const files = await writeSoakReport(result, out);
  console.log(`Report: ${path.relative(process.cwd(), files.json)}, chart: ${path.relative(process.cwd(), files.svg)}`);
  process.exit(result.verdict.passed ? 0 : 1);
} catch (e) {
  console.error(`Soak FAILED: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
}
