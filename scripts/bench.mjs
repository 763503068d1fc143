#!/usr/bin/env node
// `npm run bench [-- <scenario>]`: runs the `bench` script of every workspace package, or only
// the scenario named (`sync-rules`, `storage`, `replication`, `sync`: a bench script
// `bench/<scenario>-bench.mjs`, or a package folder ending in the name), one after the other, and
// writes their figures to bench/results/latest.json. A package reports figures by writing a
// JSON object to the file named by BENCH_RESULTS_FILE; its console output is shown as is.
// Figures only: a slow run never fails; a crashing bench is reported and the next one runs.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const filter = process.argv[2];

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

const benches = workspaceFolders()
  .map((folder) => ({ folder, pkg: JSON.parse(readFileSync(path.join(folder, 'package.json'), 'utf8')) }))
  .filter(({ pkg }) => typeof pkg.scripts?.bench === 'string')
  .filter(
    ({ folder, pkg }) =>
      !filter || benchScenario(pkg.scripts.bench) === filter || path.basename(folder).endsWith(filter),
  );

if (benches.length === 0) {
  console.error(`No package has a bench script${filter ? ` matching "${filter}"` : ''}.`);
  process.exit(2);
}

const scratch = mkdtempSync(path.join(os.tmpdir(), 'bucketsync-bench-'));
const results = {
  startedAt: new Date().toISOString(),
  node: process.version,
  cpus: os.cpus().length,
  filter: filter ?? null,
  packages: {},
};
let failures = 0;
for (const { folder, pkg } of benches) {
  console.log(`\n=== ${pkg.name}: ${pkg.scripts.bench}`);
  const resultsFile = path.join(scratch, `${pkg.name.replace(/[^a-z0-9-]/gi, '_')}.json`);
  const started = Date.now();
  // Run the script the way npm would: through a shell, with the package's binaries on PATH.
  const code = await run(pkg.scripts.bench, [], {
    cwd: folder,
    shell: true,
    env: {
      ...process.env,
      BENCH_RESULTS_FILE: resultsFile,
      PATH: `${path.join(folder, 'node_modules/.bin')}${path.delimiter}${path.join(root, 'node_modules/.bin')}${path.delimiter}${process.env.PATH ?? ''}`,
    },
  });
  const entry = { exitCode: code, seconds: Math.round((Date.now() - started) / 100) / 10 };
  if (existsSync(resultsFile)) {
    try {
      entry.figures = JSON.parse(readFileSync(resultsFile, 'utf8'));
    } catch (e) {
      entry.error = `unreadable results: ${e.message}`;
    }
  }
  if (code !== 0) failures++;
  results.packages[pkg.name] = entry;
}
rmSync(scratch, { recursive: true, force: true });

const outDir = path.join(root, 'bench/results');
mkdirSync(outDir, { recursive: true });
writeFileSync(path.join(outDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
console.log(`\nResults written to bench/results/latest.json (${benches.length} package(s), ${failures} failed).`);
process.exit(failures > 0 ? 1 : 0);
