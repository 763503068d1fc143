#!/usr/bin/env node
// `npm run bench -- sdk`: a new device's first sync through the official SDKs, measured as a
// user lives it: the built `bucketsync start` (started as a user starts it), one bucket of N
// rows, and each SDK with its defaults over HTTP, timed from `connect()` to
// `waitForFirstSync()`: `@powersync/node` in its own process, and `@powersync/web` in headless
// Chromium (the browser tests' page, served from its own origin). Each is measured with the
// default compression and with and without gzip forced (api-only services on the same storage
// with `api.gzip: always` and `false`),
// to show whether rows/s stays flat as the bucket grows. Knobs: BENCH_SDK_ROWS (comma-separated,
// default 200000,1000000), BENCH_SDK_CLIENTS (node,web), BENCH_SDK_WEB_MAX_ROWS (200000).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startTestDatabases } from '@bucketsync/dev-databases';
import { signDevToken } from '@bucketsync/service-core';
import pg from 'pg';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.resolve(here, '../bin/bucketsync');
const ROWS = (process.env.BENCH_SDK_ROWS ?? '200000,1000000').split(',').map(Number);
const CLIENTS = (process.env.BENCH_SDK_CLIENTS ?? 'node,web').split(',');
// The web SDK writes to IndexedDB at under 2,000 rows/s here: by default it is measured at the
// smaller sizes only (a 1,000,000-row bucket would take ten minutes per variant).
const WEB_MAX_ROWS = Number(process.env.BENCH_SDK_WEB_MAX_ROWS ?? 200_000);
// The web SDK's page and the shared Chromium launcher, built by scripts/browser-tests.
const browserTests = path.resolve(here, '../../scripts/browser-tests');
const pageDir = path.join(browserTests, 'dist/page');
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

const CONTENT_TYPES = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
};

/**
 * The web SDK's first sync: the browser tests' page, served from its own origin with a `/token`
 * endpoint (as an app's backend would), in a fresh headless Chromium; timed in the page's process
 * from `connect()` to `waitForFirstSync()`.
 */
async function runWebClient(endpoint, token, rows) {
  if (!existsSync(path.join(pageDir, 'index.html'))) throw new Error(`no built page in ${pageDir}: run npm run build`);
  const { launchChromium, chromiumSkipReason } = await import(
    pathToFileURL(path.join(browserTests, 'dist/node/chromium.js')).href
  );
  const skip = chromiumSkipReason();
  if (skip) throw new Error(skip);
  const app = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://page');
    if (url.pathname === '/token') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ endpoint, token }));
      return;
    }
    const file = path.join(pageDir, path.normalize(url.pathname === '/' ? '/index.html' : url.pathname));
    if (!file.startsWith(pageDir) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  await new Promise((r) => app.listen(0, '127.0.0.1', r));
  const browser = await launchChromium();
  try {
    const page = browser.context.pages()[0] ?? (await browser.context.newPage());
    // localhost, not 127.0.0.1: a different origin from the service's, as a real app's page is.
    await page.goto(`http://localhost:${app.address().port}/`);
    await page.waitForFunction(() => 'bucketsync' in globalThis, undefined, { timeout: 30_000 });
    const result = await page.evaluate(async () => {
      const api = globalThis.bucketsync;
      await api.open();
      const started = performance.now();
      await api.connect();
      await api.waitForFirstSync();
      const seconds = (performance.now() - started) / 1000;
      const [{ count }] = await api.getAll('SELECT count(*) AS count FROM todos');
      await api.disconnect();
      return { seconds, count };
    });
    if (Number(result.count) !== rows) throw new Error(`the page synced ${result.count} rows, expected ${rows}`);
    return { seconds: result.seconds };
  } finally {
    await browser.close();
    await new Promise((r) => app.close(r));
  }
}

for (const rows of ROWS) {
  const schema = `sdk_bench_${rows}`;
  console.log(`\nLoading ${rows.toLocaleString('en-US')} rows for one user...`);
  await source.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; DROP PUBLICATION IF EXISTS ${schema};
    CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.todos (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), owner text NOT NULL,
      description text, done int, server_note text);
    INSERT INTO ${schema}.todos (owner, description, done, server_note)
      SELECT 'u1', 'todo number ' || i || ' ' || repeat('x', 60), i % 2, 'note ' || i FROM generate_series(1, ${rows}) i;
    CREATE PUBLICATION ${schema} FOR TABLE ${schema}.todos;`);
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
    '        parameters: SELECT request.user_id() AS owner',
    '        data:',
    `          - SELECT * FROM ${schema}.todos WHERE owner = bucket.owner`,
    'client_auth:',
    '  jwks:',
    `    keys: [${JSON.stringify(key)}]`,
    '  audience: [bucketsync]',
    'port: 0',
    'host: 127.0.0.1',
  ];
  const unified = await startService(`unified-${rows}`, base, [], 'first consistent checkpoint');
  const plain = await startService(
    `api-off-${rows}`,
    [...base, 'api:', '  gzip: false'],
    ['-r', 'api'],
    'serving clients on',
  );
  const always = await startService(
    `api-always-${rows}`,
    [...base, 'api:', '  gzip: always'],
    ['-r', 'api'],
    'serving clients on',
  );
  // Per client: the default (auto: gzip for browsers, none for the Node SDK), gzip forced, none.
  const variants = {
    node: [
      ['auto', unified, 'api.gzip: auto (the default): no compression for the Node SDK'],
      ['gzip', always, 'gzip (api.gzip: always)'],
      ['none', plain, 'none (api.gzip: false)'],
    ],
    web: [
      ['auto', unified, 'api.gzip: auto (the default): gzip for browsers'],
      ['none', plain, 'none (api.gzip: false)'],
    ],
  };
  const token = await signDevToken({ key, sub: 'u1', audience: 'bucketsync', expiresInSeconds: 3600 });
  for (const client of CLIENTS) {
    if (client === 'web' && rows > WEB_MAX_ROWS) continue;
    for (const [variant, service, compression] of variants[client]) {
      const sdk = client === 'web' ? '@powersync/web (Chromium)' : '@powersync/node';
      const id = `sdk-${client}-first-sync-${rows}-${variant}`;
      const entry = {
        id,
        title: `${sdk} first sync of a ${rows.toLocaleString('en-US')}-row bucket, compression ${variant}`,
        startedAt: new Date().toISOString(),
        workload: {
          rows,
          bucket: 'one by_user bucket holding every row (uuid id, three short texts, an int: ~170 bytes of JSON)',
          client:
            client === 'web'
              ? '@powersync/web 2.4 in headless Chromium (wa-sqlite on IndexedDB, shared sync worker), the page served from its own origin, HTTP'
              : '@powersync/node in its own process, defaults, HTTP (SyncStreamConnectionMethod.HTTP)',
          compression,
          measured: 'connect() to waitForFirstSync()',
        },
        figures: [],
        series: [],
      };
      report.scenarios.push(entry);
      console.log(`Scenario ${id}`);
      try {
        const r =
          client === 'web'
            ? await runWebClient(service.endpoint, token, rows)
            : await runClient(service.endpoint, token, rows);
        entry.seconds = r.seconds;
        entry.figures.push(
          { name: 'seconds', label: 'connect() to waitForFirstSync()', value: Number(r.seconds.toFixed(2)), unit: 's' },
          {
            name: 'rowsPerSecond',
            label: 'rows synced per second',
            value: Math.round(rows / r.seconds),
            unit: 'rows/s',
          },
        );
        if (r.maxRssKb !== undefined) {
          entry.figures.push({
            name: 'clientPeakRssMB',
            label: 'peak RSS of the client process',
            value: Math.round(r.maxRssKb / 1024),
            unit: 'MB',
          });
        }
        for (const f of entry.figures) console.log(`  ${f.label}: ${f.value.toLocaleString('en-US')} ${f.unit}`);
      } catch (e) {
        failed++;
        entry.error = String(e?.message ?? e);
        console.error(`Scenario ${id} failed:`, e);
      }
      save();
    }
  }
  await stop(always);
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
