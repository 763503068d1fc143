#!/usr/bin/env node
// `npm run bench -- sdk`: a new device's first sync through the official @powersync/node SDK,
// measured as a user lives it: the built `bucketsync start` (started as a user starts it), one
// bucket of N rows, the SDK in its own process with its defaults over HTTP, timed from
// `connect()` to `waitForFirstSync()`. Each N is measured with and without compression (a
// second, api-only service on the same storage with `api.gzip: false`), to show whether rows/s
// stays flat as the bucket grows. Knobs: BENCH_SDK_ROWS (comma-separated, default 200000,1000000).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestDatabases } from '@bucketsync/dev-databases';
import { signDevToken } from '@bucketsync/service-core';
import pg from 'pg';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.resolve(here, '../bin/bucketsync');
const ROWS = (process.env.BENCH_SDK_ROWS ?? '200000,1000000').split(',').map(Number);
const report = { bench: 'sdk', environment: {}, scenarios: [] };
let failed = 0;
const save = () =>
  process.env.BENCH_RESULTS_FILE &&
  writeFileSync(process.env.BENCH_RESULTS_FILE, `${JSON.stringify(report, null, 2)}\n`);

const env =
  process.env.PG_TEST_URL && process.env.PG_STORAGE_TEST_URL
    ? undefined
    : await startTestDatabases({ env: {}, servers: ['postgres'] });
const sourceUrl = process.env.PG_TEST_URL ?? env.env.PG_TEST_URL;
const storageUrl = process.env.PG_STORAGE_TEST_URL ?? env.env.PG_STORAGE_TEST_URL;
const source = new pg.Client({ connectionString: sourceUrl });
await source.connect();
report.environment.postgres = { version: (await source.query('SHOW server_version')).rows[0].server_version };
const key = { kty: 'oct', alg: 'HS256', kid: 'bench', k: randomBytes(32).toString('base64url') };
const dir = mkdtempSync(path.join(tmpdir(), 'sdk-bench-'));

/** Starts `bucketsync start` with the given config lines; resolves with its endpoint once `readyWhen` is logged. */
function startService(name, lines, args, readyWhen) {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, lines.join('\n'));
  const child = spawn(bin, ['start', '-c', file, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'info' },
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      const port = /serving clients on[^\n]*"port":(\d+)/.exec(output)?.[1];
      if (port && output.includes(readyWhen)) {
        clearInterval(timer);
        resolve({ endpoint: `http://127.0.0.1:${port}`, child, output: () => output });
      } else if (child.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(`${name} exited:\n${output.slice(-2000)}`));
      }
    }, 100);
  });
}

async function stop(service) {
  if (service.child.exitCode !== null) return;
  service.child.kill('SIGTERM');
  await new Promise((r) => service.child.once('exit', r));
}

function runClient(endpoint, token, rows) {
  return new Promise((resolve, reject) => {
    const dbDir = mkdtempSync(path.join(dir, 'client-'));
    const child = spawn(process.execPath, [path.join(here, 'sdk-client.mjs')], {
      env: { ...process.env, ENDPOINT: endpoint, TOKEN: token, DB_DIR: dbDir, EXPECT_ROWS: String(rows) },
      stdio: ['ignore', 'pipe', 'inherit'],
      cwd: here,
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      rmSync(dbDir, { recursive: true, force: true });
      if (code === 0) resolve(JSON.parse(out));
      else reject(new Error(`the SDK client exited ${code}: ${out}`));
    });
  });
}

for (const rows of ROWS) {
  const schema = `sdk_bench_${rows}`;
  console.log(`\nLoading ${rows.toLocaleString('en-US')} rows for one user...`);
  await source.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; DROP PUBLICATION IF EXISTS ${schema};
    CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.items (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text NOT NULL, title text, body text, n int);
    INSERT INTO ${schema}.items (user_id, title, body, n) SELECT 'u1', 'title ' || i, repeat('x', 80), i FROM generate_series(1, ${rows}) i;
    CREATE PUBLICATION ${schema} FOR TABLE ${schema}.items;`);
  const base = [
    'replication:',
    '  connections:',
    '    - type: postgresql',
    `      uri: ${sourceUrl}`,
    `      publication_name: ${schema}`,
    'storage:',
    '  type: postgresql',
    `  uri: ${storageUrl}`,
    `  schema: st_${schema}`,
    'sync_config:',
    '  content: |',
    '    bucket_definitions:',
    '      by_user:',
    '        parameters: SELECT request.user_id() AS user_id',
    '        data:',
    `          - SELECT * FROM ${schema}.items WHERE user_id = bucket.user_id`,
    'client_auth:',
    '  jwks:',
    `    keys: [${JSON.stringify(key)}]`,
    '  audience: [bucketsync]',
    'port: 0',
    'host: 127.0.0.1',
  ];
  const unified = await startService(`unified-${rows}`, base, [], 'first consistent checkpoint');
  const plain = await startService(
    `api-${rows}`,
    [...base, 'api:', '  gzip: false'],
    ['-r', 'api'],
    'serving clients on',
  );
  const token = await signDevToken({ key, sub: 'u1', audience: 'bucketsync', expiresInSeconds: 3600 });
  for (const [variant, service] of [
    ['gzip', unified],
    ['none', plain],
  ]) {
    const id = `sdk-node-first-sync-${rows}-${variant}`;
    const entry = {
      id,
      title: `@powersync/node first sync of a ${rows.toLocaleString('en-US')}-row bucket, compression ${variant}`,
      startedAt: new Date().toISOString(),
      workload: {
        rows,
        bucket: 'one by_user bucket holding every row (uuid id, two short texts, an int: ~150 bytes of JSON)',
        client: '@powersync/node in its own process, defaults, HTTP (SyncStreamConnectionMethod.HTTP)',
        compression: variant === 'gzip' ? 'gzip (the service default; the SDK asks for it)' : 'none (api.gzip: false)',
        measured: 'connect() to waitForFirstSync(), in the client process',
      },
      figures: [],
      series: [],
    };
    report.scenarios.push(entry);
    console.log(`Scenario ${id}`);
    try {
      const r = await runClient(service.endpoint, token, rows);
      entry.seconds = r.seconds;
      entry.figures.push(
        { name: 'seconds', label: 'connect() to waitForFirstSync()', value: Number(r.seconds.toFixed(2)), unit: 's' },
        { name: 'rowsPerSecond', label: 'rows synced per second', value: Math.round(rows / r.seconds), unit: 'rows/s' },
        {
          name: 'clientPeakRssMB',
          label: 'peak RSS of the client process',
          value: Math.round(r.maxRssKb / 1024),
          unit: 'MB',
        },
      );
      for (const f of entry.figures) console.log(`  ${f.label}: ${f.value.toLocaleString('en-US')} ${f.unit}`);
    } catch (e) {
      failed++;
      entry.error = String(e?.message ?? e);
      console.error(`Scenario ${id} failed:`, e);
    }
    save();
  }
  await stop(plain);
  await stop(unified);
  await source.query(`DROP SCHEMA ${schema} CASCADE; DROP PUBLICATION ${schema};
    SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active AND slot_name LIKE 'bucketsync_%';`);
  const storage = new pg.Client({ connectionString: storageUrl });
  await storage.connect();
  await storage.query(`DROP SCHEMA IF EXISTS st_${schema} CASCADE`);
  await storage.end();
}
await source.end();
await env?.stop();
rmSync(dir, { recursive: true, force: true });
console.log(`\n${report.scenarios.length} scenario(s), ${failed} failed.`);
process.exit(failed > 0 ? 1 : 0);
