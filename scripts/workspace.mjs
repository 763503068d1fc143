#!/usr/bin/env node
// Root entry point for `npm run <task>`: each task is self-sufficient from a fresh clone.
// It installs dependencies with the pinned pnpm (through corepack, nothing global), builds
// what the task needs, then runs it. Plain Node (no dependencies) so it runs before install.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// corepack writes pnpm shims into a folder of ours (nothing global); turbo finds pnpm on PATH.
const shimDir = path.join(root, '.corepack-bin');
const env = {
  ...process.env,
  PATH: `${shimDir}${path.delimiter}${process.env.PATH ?? ''}`,
  COREPACK_ENABLE_DOWNLOAD_PROMPT: '0',
  TURBO_TELEMETRY_DISABLED: '1',
  DO_NOT_TRACK: '1',
  TURBO_NO_UPDATE_NOTIFIER: '1',
};

function run(command, args, options = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: 'inherit', env: options.env ?? env });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
    child.on('error', (err) => {
      console.error(`could not run ${command}: ${err.message}`);
      resolve(1);
    });
  });
}

async function ensurePnpm() {
  if (existsSync(path.join(shimDir, 'pnpm'))) return;
  mkdirSync(shimDir, { recursive: true });
  await must('Setting up pnpm through corepack', run('corepack', ['enable', '--install-directory', shimDir, 'pnpm']));
}

const pnpm = (args, options) => run(path.join(shimDir, 'pnpm'), args, options);

async function must(label, promise) {
  const code = await promise;
  if (code !== 0) {
    console.error(`\n${label} failed (exit code ${code}).`);
    process.exit(code);
  }
}

async function install() {
  await ensurePnpm();
  // Fast when nothing changed; --frozen-lockfile in CI so a stale lockfile fails loudly.
  const args = ['install', '--prefer-offline', '--reporter=append-only'];
  if (process.env.CI) args.push('--frozen-lockfile');
  await must('Installing dependencies', pnpm(args));
}

async function build() {
  await must('Build', pnpm(['exec', 'turbo', 'run', 'build', '--output-logs=errors-only']));
}

/** Lint = ESLint per package (turbo), formatting, and a type-check of sources and tests. Returns failed steps. */
async function lint() {
  const failed = [];
  if ((await pnpm(['exec', 'turbo', 'run', 'lint', '--output-logs=errors-only'])) !== 0) failed.push('eslint');
  if ((await pnpm(['exec', 'prettier', '--check', '--log-level=warn', '.'])) !== 0) failed.push('prettier');
  if ((await pnpm(['exec', 'tsc', '-p', 'tsconfig.test.json'])) !== 0) failed.push('type-check of tests');
  return failed;
}

async function importDevDatabases() {
  const entry = path.join(root, 'scripts/dev-databases/dist/index.js');
  return import(pathToFileURL(entry).href);
}

function summarize(reportFile) {
  if (!existsSync(reportFile)) return undefined;
  const report = JSON.parse(readFileSync(reportFile, 'utf8'));
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const skippedNames = [];
  for (const file of report.testResults ?? []) {
    if (file.status === 'failed' && (file.assertionResults ?? []).length === 0) failed++; // file failed to load
    for (const test of file.assertionResults ?? []) {
      if (test.status === 'passed') passed++;
      else if (test.status === 'failed') failed++;
      else {
        skipped++;
        skippedNames.push(test.fullName);
      }
    }
  }
  return { passed, failed, skipped, skippedNames };
}

async function test(extraArgs) {
  await install();
  await build();
  const lintFailures = await lint();

  const { startTestDatabases } = await importDevDatabases();
  const databases = await startTestDatabases();
  for (const line of databases.description) console.log(`[test databases] ${line}`);
  const stopDatabases = () => databases.stop();
  process.on('SIGINT', () => void stopDatabases().then(() => process.exit(130)));

  const resultsDir = path.join(root, '.test-results');
  mkdirSync(resultsDir, { recursive: true });
  const reportFile = path.join(resultsDir, 'vitest.json');
  rmSync(reportFile, { force: true });
  const code = await pnpm(
    ['exec', 'vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${reportFile}`, ...extraArgs],
    { env: { ...env, ...databases.env } },
  );
  await stopDatabases();

  const summary = summarize(reportFile) ?? { passed: 0, failed: 1, skipped: 0, skippedNames: [] };
  if (code !== 0 && summary.failed === 0) summary.failed = 1; // vitest failed outside any test (e.g. setup)
  if (summary.skippedNames.length > 0) {
    console.log('\nSkipped tests (the reason is in the name):');
    for (const name of summary.skippedNames) console.log(`  - ${name}`);
  }
  if (lintFailures.length > 0) console.log(`\nLint failed: ${lintFailures.join(', ')} (run \`npm run lint\`).`);
  console.log(`\n${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped`);
  process.exit(summary.failed > 0 || lintFailures.length > 0 ? 1 : 0);
}

/** Installs, builds, then runs a built script of the workspace with the task's arguments. */
async function runBuiltScript(script, extraArgs) {
  await install();
  await build();
  process.exit(await run(process.execPath, [path.join(root, script), ...extraArgs]));
}

/**
 * Installs, builds, then runs the demo in the foreground. Ctrl-C, a closed terminal (SIGHUP) or
 * SIGTERM reaching this process is passed on to the demo, and this process exits only when the
 * demo has: exiting first would let a closing pane hang up the demo in the middle of stopping its
 * databases. A signal sent to the whole process group reaches the demo twice; it stops once.
 */
async function demo(extraArgs) {
  await install();
  await build();
  const child = spawn(process.execPath, [path.join(root, 'scripts/demo/dist/demo.js'), ...extraArgs], {
    cwd: root,
    stdio: 'inherit',
    env,
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    });
  }
  const code = await new Promise((resolve) => {
    child.on('exit', (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)));
    child.on('error', (err) => {
      console.error(`could not run the demo: ${err.message}`);
      resolve(1);
    });
  });
  process.exit(code);
}

async function bench(extraArgs) {
  await install();
  await build();
  process.exit(await run(process.execPath, [path.join(root, 'scripts/bench.mjs'), ...extraArgs]));
}

const [task, ...rest] = process.argv.slice(2);
switch (task) {
  case 'build':
    await install();
    await build();
    break;
  case 'lint': {
    await install();
    await build();
    const failed = await lint();
    if (failed.length > 0) {
      console.error(`\nLint failed: ${failed.join(', ')}`);
      process.exit(1);
    }
    console.log('Lint and type-check passed.');
    break;
  }
  case 'test':
    await test(rest);
    break;
  case 'demo':
    await demo(rest);
    break;
  case 'oracle':
    await runBuiltScript('scripts/oracle/dist/cli.js', rest);
    break;
  case 'soak':
    await runBuiltScript('scripts/soak/dist/soak.js', rest);
    break;
  case 'bench':
    await bench(rest);
    break;
  case 'format':
    await install();
    process.exit(await pnpm(['exec', 'prettier', '--write', '--log-level=warn', '.']));
    break;
  case 'changeset':
    await install();
    process.exit(await pnpm(['exec', 'changeset', ...rest]));
    break;
  default:
    console.error(`unknown task "${task}"; expected build, lint, test, demo, oracle, soak, bench, format or changeset`);
    process.exit(2);
}
