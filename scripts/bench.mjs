#!/usr/bin/env node
// `npm run bench [-- <scenario>] [--publish]`: runs the `bench` and `bench:<name>` scripts of
// every workspace package, or only the scenario named (`sync-rules`, `storage`, `replication`,
// `sync`, `sdk`: a bench script `bench/<scenario>-bench.mjs`, or a package folder ending in the name), one after the
// other, writes their results with the machine and versions to bench/results/latest.json, then
// the report (latest.md and SVG charts, scripts/bench-report.mjs; `--publish` also copies it
// into docs/performance/). Figures only: a slow run never fails; a crashing bench is reported
// and the next one runs.
//
// A bench reports by writing one JSON object to the file named by BENCH_RESULTS_FILE, ideally
// after every scenario (a later crash then keeps the earlier figures):
//   { bench: 'replication',
//     environment: { postgres: { version, server, settings } },         // what it ran against
//     scenarios: [{ id, title, startedAt, seconds, error?,
//       workload: { ... },                                               // exactly what ran
//       figures: [{ name, label, value, unit, target?: { min } | { max } }],  // met: >= min, <= max
//       series: [{ name, label, unit, points: [[msSinceScenarioStart, value], ...] }],
//       events: [{ name, label, atMs }] }] }                             // e.g. first checkpoint
// Its console output is shown as is.
// latest.json adds the machine, the versions and the BENCH_* settings (RESULTS_FORMAT, with its
// changelog, in scripts/bench-report.mjs).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RESULTS_FORMAT, writeReport } from './bench-report.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const publish = args.includes('--publish');
const filter = args.find((a) => !a.startsWith('--'));

/** Workspace package folders, from pnpm-workspace.yaml's simple `dir/*` and `dir` entries. */
function workspaceFolders() {
  const yaml = readFileSync(path.join(root, 'pnpm-workspace.yaml'), 'utf8');
  const patterns = [...yaml.matchAll(/^\s*-\s*['"]?([^'"\n]+)['"]?\s*$/gm)].map((m) => m[1].trim());
  const folders = [];
  for (const pattern of patterns) {
    if (pattern.endsWith('/*')) {
      const base = path.join(root, pattern.slice(0, -2));
      if (!existsSync(base)) continue;
      for (const entry of readdirSync(base, { withFileTypes: true })) {
        if (entry.isDirectory()) folders.push(path.join(base, entry.name));
      }
    } else {
      folders.push(path.join(root, pattern));
    }
  }
  return folders.filter((f) => existsSync(path.join(f, 'package.json')));
}

function run(command, args, options) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'inherit', ...options });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
    child.on('error', () => resolve(1));
  });
}

/** The scenario name of a bench script: `node bench/<scenario>-bench.mjs` -> `<scenario>`. */
function benchScenario(command) {
  return /([\w-]+)-bench\.m?js/.exec(command)?.[1];
}

/** Output of a command, or undefined when it cannot run (no git, not a checkout). */
function output(command, commandArgs) {
  try {
    return execFileSync(command, commandArgs, {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
}

function describeMachine() {
  const cpus = os.cpus();
  const osRelease = existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '';
  const distribution = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(osRelease)?.[1];
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryMB: Math.round(os.totalmem() / 1048576),
    os: distribution ?? `${os.type()} ${os.release()}`,
    platform: `${os.platform()} ${os.arch()}`,
    kernel: `${os.type()} ${os.release()}`,
    kernelVersion: os.version(),
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** Installed version of `name` as the package in `folder` resolves it (pnpm links direct dependencies). */
function installedVersion(folder, name) {
  for (let dir = folder; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'node_modules', name, 'package.json');
    if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')).version;
    if (dir === root || dir === path.dirname(dir)) return undefined;
  }
}

function describeVersions(packages, benchPackages) {
  const rootPkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  const dependencies = {};
  for (const { folder, pkg } of benchPackages) {
    for (const name of Object.keys({ ...pkg.dependencies, ...pkg.devDependencies })) {
      if (name.startsWith('@bucketsync/') || name.startsWith('@types/')) continue;
      const version = installedVersion(folder, name);
      if (version) dependencies[name] = version;
    }
  }
  const commit = output('git', ['rev-parse', 'HEAD']);
  return {
    node: process.version,
    v8: process.versions.v8,
    pnpm: rootPkg.packageManager?.replace(/^pnpm@/, '').replace(/\+.*$/, ''),
    git: commit
      ? {
          commit,
          branch: output('git', ['rev-parse', '--abbrev-ref', 'HEAD']),
          committedAt: output('git', ['log', '-1', '--format=%cI']),
          // Tracked files changed since the commit: the figures are of the work tree, not of the commit.
          dirty: (output('git', ['status', '--porcelain', '--untracked-files=no']) ?? '') !== '',
        }
      : undefined,
    postgres: undefined, // filled from the benches' environment
    packages: Object.fromEntries(packages.map(({ pkg }) => [pkg.name, pkg.version])),
    dependencies: Object.fromEntries(Object.entries(dependencies).sort(([a], [b]) => a.localeCompare(b))),
  };
}

const packages = workspaceFolders().map((folder) => ({
  folder,
  pkg: JSON.parse(readFileSync(path.join(folder, 'package.json'), 'utf8')),
}));
// A package's benches: its `bench` script and any `bench:<name>` scripts (one per scenario file).
const benches = packages
  .flatMap(({ folder, pkg }) =>
    Object.entries(pkg.scripts ?? {})
      .filter(([name, command]) => (name === 'bench' || name.startsWith('bench:')) && typeof command === 'string')
      .map(([, command]) => ({ folder, pkg, command })),
  )
  .filter(
    ({ folder, command }) => !filter || benchScenario(command) === filter || path.basename(folder).endsWith(filter),
  );

if (benches.length === 0) {
  console.error(`No package has a bench script${filter ? ` matching "${filter}"` : ''}.`);
  process.exit(2);
}

const scratch = mkdtempSync(path.join(os.tmpdir(), 'bucketsync-bench-'));
const results = {
  format: RESULTS_FORMAT,
  startedAt: new Date().toISOString(),
  finishedAt: undefined,
  filter: filter ?? null,
  // Size knobs (BENCH_ROWS, ...) change the workload: every scenario's workload shows the result.
  settings: Object.fromEntries(
    Object.entries(process.env)
      .filter(([k]) => k.startsWith('BENCH_') && k !== 'BENCH_RESULTS_FILE')
      .sort(([a], [b]) => a.localeCompare(b)),
  ),
  // Only whether they are set: the URLs may carry passwords.
  externalDatabases: ['PG_TEST_URL', 'PG_STORAGE_TEST_URL'].filter((k) => process.env[k]),
  machine: describeMachine(),
  versions: describeVersions(packages, benches),
  benches: [],
};
let failures = 0;
for (const { folder, pkg, command } of benches) {
  console.log(`\n=== ${pkg.name}: ${command}`);
  const resultsFile = path.join(
    scratch,
    `${`${pkg.name}-${benchScenario(command) ?? 'bench'}`.replace(/[^a-z0-9-]/gi, '_')}.json`,
  );
  const started = Date.now();
  // Run the script the way npm would: through a shell, with the package's binaries on PATH.
  const code = await run(command, [], {
    cwd: folder,
    shell: true,
    env: {
      ...process.env,
      BENCH_RESULTS_FILE: resultsFile,
      PATH: `${path.join(folder, 'node_modules/.bin')}${path.delimiter}${path.join(root, 'node_modules/.bin')}${path.delimiter}${process.env.PATH ?? ''}`,
    },
  });
  const entry = {
    name: benchScenario(command) ?? pkg.name,
    package: pkg.name,
    command,
    exitCode: code,
    seconds: Math.round((Date.now() - started) / 100) / 10,
    environment: {},
    scenarios: [],
  };
  if (existsSync(resultsFile)) {
    try {
      const written = JSON.parse(readFileSync(resultsFile, 'utf8'));
      entry.environment = written.environment ?? {};
      entry.scenarios = written.scenarios ?? [];
    } catch (e) {
      entry.error = `unreadable results: ${e.message}`;
    }
  } else {
    entry.error = 'the bench wrote no results';
  }
  if (code !== 0) failures++;
  results.benches.push(entry);
}
rmSync(scratch, { recursive: true, force: true });

const postgresVersions = [...new Set(results.benches.map((b) => b.environment.postgres?.version).filter(Boolean))];
results.versions.postgres = postgresVersions.length > 0 ? postgresVersions.join(', ') : undefined;
results.machine.loadAverageAtEnd = os.loadavg().map((l) => Math.round(l * 100) / 100);
results.finishedAt = new Date().toISOString();

const outDir = path.join(root, 'bench/results');
mkdirSync(outDir, { recursive: true });
const latest = path.join(outDir, 'latest.json');
// Time series points ([ms, value]) on one line each: the file stays readable and small.
const json = JSON.stringify(results, null, 2).replace(/\[\s+(-?[\d.e+-]+),\s+(-?[\d.e+-]+)\s+\]/g, '[$1, $2]');
writeFileSync(latest, `${json}\n`);
console.log(`\nResults written to bench/results/latest.json (${benches.length} bench(es), ${failures} failed).`);
try {
  for (const file of writeReport(latest, { publish })) console.log(`Report written: ${path.relative(root, file)}`);
} catch (e) {
  console.error(`Could not write the report: ${e.stack ?? e}`);
  failures++;
}
process.exit(failures > 0 ? 1 : 0);
