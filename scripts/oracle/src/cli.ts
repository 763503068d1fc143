#!/usr/bin/env node
/**
 * `npm run test:oracle -- [--seed S] [--minutes M] [--segment-minutes K]`: oracle runs with
 * injected faults. With --seed, that seed runs for M minutes; without, a new random seed (fresh
 * databases) every K minutes (default 5) until M minutes (default 5) have passed. Exits 1 on any
 * mismatch, after printing the seed, the last operations and where the databases were kept.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { runOracle, type OracleReport } from './run-oracle.js';

const USAGE =
  'npm run test:oracle -- [--seed <integer>] [--minutes <M, default 5>] [--segment-minutes <K, default 5>] [--report <file.json>]';

function numberArg(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`--${name} must be a positive number, got "${value}"\nusage: ${USAGE}`);
    process.exit(2);
  }
  return n;
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      seed: { type: 'string' },
      minutes: { type: 'string' },
      'segment-minutes': { type: 'string' },
      report: { type: 'string' },
      help: { type: 'boolean' },
    },
  }).values;
} catch (e) {
  console.error(`${(e as Error).message}\nusage: ${USAGE}`);
  process.exit(2);
}
if (parsed.help) {
  console.log(`usage: ${USAGE}`);
  process.exit(0);
}
const minutes = numberArg(parsed.minutes, 'minutes', 5);
const segmentMinutes = parsed.seed !== undefined ? minutes : numberArg(parsed['segment-minutes'], 'segment-minutes', 5);
const fixedSeed = parsed.seed === undefined ? undefined : Math.floor(numberArg(parsed.seed, 'seed', 1));

const started = Date.now();
const reports: OracleReport[] = [];
while (Date.now() - started < minutes * 60_000 - 30_000 || reports.length === 0) {
  const seed = fixedSeed ?? Math.floor(Math.random() * 2 ** 31);
  const remaining = minutes * 60_000 - (Date.now() - started);
  console.log(`\n=== oracle run, seed ${seed} (reproduce with: npm run test:oracle -- --seed ${seed})`);
  const report = await runOracle({ seed, durationMs: Math.min(segmentMinutes * 60_000, remaining) });
  reports.push(report);
  if (report.mismatches.length > 0 || fixedSeed !== undefined) break;
}

const sum = (f: (r: OracleReport) => number) => reports.reduce((n, r) => n + f(r), 0);
const faults: Record<string, number> = {};
for (const r of reports) for (const [k, v] of Object.entries(r.faults)) faults[k] = (faults[k] ?? 0) + v;
const summary = {
  finishedAt: new Date().toISOString(),
  machine: { cpus: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
  minutes: Math.round((Date.now() - started) / 600) / 100,
  seeds: reports.map((r) => r.seed),
  rounds: sum((r) => r.rounds + 1),
  transactions: {
    committed: sum((r) => r.transactions.committed),
    rolledBack: sum((r) => r.transactions.rolledBack),
    failed: sum((r) => r.transactions.failed),
  },
  faults,
  checkpointsVerified: sum((r) => r.checkpointsVerified),
  comparisons: sum((r) => r.comparisons),
  rowsCompared: sum((r) => r.rowsCompared),
  mismatches: reports.flatMap((r) => r.mismatches),
  keptIn: reports.map((r) => r.keptIn).filter(Boolean),
};
console.log(`\n${JSON.stringify(summary, null, 2)}`);
if (parsed.report) writeFileSync(parsed.report, `${JSON.stringify({ summary, reports }, null, 2)}\n`);
console.log(
  summary.mismatches.length === 0
    ? `\noracle: ${summary.rounds} rounds over ${summary.seeds.length} seed(s), ${summary.transactions.committed} transactions, ` +
        `${Object.values(faults).reduce((a, b) => a + b, 0)} faults, ${summary.checkpointsVerified} checkpoints verified, 0 mismatches`
    : `\noracle: ${summary.mismatches.length} mismatch(es); see above`,
);
process.exit(summary.mismatches.length === 0 ? 0 : 1);
