#!/usr/bin/env node
/**
 * `npm run soak -- [--minutes M] [--clients N] [--rate R] ...`: runs the steady soak (see
 * soak-run.ts), prints progress every 30 s and a summary, writes bench/results/soak-latest.json
 * and .svg, and exits 1 with the reasons when the run fails. `npm run soak -- --flaky ...` runs
 * the flaky-client soak instead (flaky-run.ts) and writes soak-flaky-latest.json. Ctrl-C stops a
 * run early (reported as failed).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { flakySoakUsage, parseFlakySoakArguments, type FlakySoakArguments } from './flaky-options.js';
import { formatFlakySummary, writeFlakyReport } from './flaky-report.js';
import { runFlakySoak } from './flaky-run.js';
import { parseSoakArguments, soakUsage, type SoakArguments } from './soak-options.js';
import { formatSoakSummary, writeSoakReport } from './soak-report.js';
import { runSoak } from './soak-run.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const argv = process.argv.slice(2);
const flaky = argv.includes('--flaky');
const usage = flaky ? flakySoakUsage : soakUsage;

let parsed: { flaky: true; args: FlakySoakArguments } | { flaky: false; args: SoakArguments };
try {
  parsed = flaky
    ? { flaky: true, args: parseFlakySoakArguments(argv) }
    : { flaky: false, args: parseSoakArguments(argv) };
} catch (e) {
  process.stderr.write(`soak: ${(e as Error).message}\n\n${usage()}`);
  process.exit(2);
}
const { args } = parsed;
if (args.help) {
  process.stdout.write(usage());
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

const relative = (file: string) => path.relative(process.cwd(), file);
try {
  const control = {
    signal: abort.signal,
    log: (line: string) => console.log(line),
    serviceLogCopy: path.join(out, flaky ? 'soak-flaky-latest-service.log' : 'soak-latest-service.log'),
  };
  let passed: boolean;
  if (parsed.flaky) {
    const result = await runFlakySoak(parsed.args.options, control);
    process.stdout.write(formatFlakySummary(result));
    console.log(`Report: ${relative((await writeFlakyReport(result, out)).json)}`);
    passed = result.verdict.passed;
  } else {
    const result = await runSoak(parsed.args.options, control);
    process.stdout.write(formatSoakSummary(result));
    const files = await writeSoakReport(result, out);
    console.log(`Report: ${relative(files.json)}, chart: ${relative(files.svg)}`);
    passed = result.verdict.passed;
  }
  process.exit(passed ? 0 : 1);
} catch (e) {
  console.error(`Soak FAILED: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
}
