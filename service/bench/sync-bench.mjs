#!/usr/bin/env node
// Sync benchmark (issue 6): the replication workload (`items`, BENCH_ROWS rows, default
// 1,000,000) plus a global bucket holding every row. Measures (0) the sync engine alone, in
// process; (1) one client downloading the global bucket to its first checkpoint_complete over
// NDJSON and BSON, each with and without gzip, the reader in its own process reading as fast as
// it can; (2) time to the first checkpoint line for new connections whose parameter query
// yields 1,000 buckets (p50 / p99 over 50 connections). Figures only: nothing here fails on a
// slow run. Each scenario records its workload, figures and the RSS of this process over time.
// Knobs: BENCH_ROWS, BENCH_CONNECTIONS (connections of scenario 2, default 50), BENCH_SAMPLE_MS.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { startTestDatabases } from '@bucketsync/dev-databases';
import { createLogger } from '@bucketsync/lib-services';
import { postgresModule } from '@bucketsync/module-postgres';
import { PostgresStorage } from '@bucketsync/module-postgres-storage';
import {
  createSyncServer,
  decodeAuthConfig,
  decodeSyncRequest,
  encodeLine,
  ReplicationCoordinator,
  signDevToken,
  syncStream,
  TokenVerifier,
} from '@bucketsync/service-core';
import { parseSyncConfig } from '@bucketsync/sync-rules';
import pg from 'pg';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const SAMPLE_MS = Number(process.env.BENCH_SAMPLE_MS ?? 250);
const mb = (bytes) => Math.round(bytes / 1048576);
// The global bucket is a stream (`all_items`), subscribed only by the download scenario, so
// the 1,000-bucket connections get exactly their parameter buckets.
const SYNC_CONFIG = `
bucket_definitions:
  user_lists:
    parameters: SELECT value AS user_id FROM json_each(request.parameters() ->> 'users')
    data:
      - SELECT id, user_id, title, body, n FROM items WHERE user_id = bucket.user_id
streams:
  all_items:
    query: SELECT id, user_id, title, body, n FROM items
`;
const ROW_SHAPE = {
  id: 'uuid, gen_random_uuid()',
  user_id: "text, 'u' || (i % 1000): 1,000 users",
  title: "text, 'title ' || i",
  body: "text, repeat('x', 80)",
  n: 'int, i',
};

// Results for scripts/bench.mjs (the format is described there): one entry per scenario, saved
// after each scenario so a crash in a later one keeps the figures of the earlier ones.
const report = { bench: 'sync', environment: {}, scenarios: [] };
let failedScenarios = 0;
function saveReport() {
  if (process.env.BENCH_RESULTS_FILE)
    writeFileSync(process.env.BENCH_RESULTS_FILE, `${JSON.stringify(report, null, 2)}\n`);
}

/**
 * Runs one scenario. `body(s)` records figures (`target.min` / `target.max` is met when the
 * value is >= / <=); the RSS of this process (the sync server) is sampled throughout, points
 * being [ms since the scenario started, MB]. An error is recorded and the next scenario runs.
 */
async function scenario({ id, title, workload }, body) {
  console.log(`\nScenario ${id}: ${title}`);
  const started = Date.now();
  const entry = { id, title, startedAt: new Date(started).toISOString(), workload, figures: [], series: [] };
  report.scenarios.push(entry);
  // Replaced when the scenario ends: a bench that dies meanwhile still names the scenario.
  entry.error = 'did not finish: the bench stopped during this scenario';
  saveReport();
  delete entry.error;
  const elapsed = () => Date.now() - started;
  const rss = [];
  let peak = 0;
  const takeRss = () => {
    const now = process.memoryUsage.rss();
    peak = Math.max(peak, now);
    if (rss.length === 0 || elapsed() - rss[rss.length - 1][0] >= SAMPLE_MS) rss.push([elapsed(), mb(now)]);
  };
  takeRss();
  const rssTimer = setInterval(takeRss, 50);
  const s = {
    figure: (name, label, value, unit, target) =>
      entry.figures.push({ name, label, value, unit, ...(target ? { target } : {}) }),
  };
  try {
    await body(s);
  } catch (e) {
    failedScenarios++;
    // Without passwords: a driver or pgbench error may quote a connection URL.
    entry.error = String(e?.stack ?? e).replace(/(\w+:\/\/[^:/@\s]+):[^@\s]*@/g, '$1:***@');
    console.error(`Scenario ${id} failed:`, e);
  }
  clearInterval(rssTimer);
  rss.push([elapsed(), mb(process.memoryUsage.rss())]);
  s.figure('peakRssMB', 'peak RSS of the sync server process', mb(peak), 'MB');
  entry.series.push({ name: 'rss', label: 'RSS of the sync server process', unit: 'MB', points: rss });
  entry.seconds = elapsed() / 1000;
  saveReport();
  for (const f of entry.figures) {
    const target = f.target
      ? ` (target ${f.target.min !== undefined ? `>= ${f.target.min}` : `<= ${f.target.max}`})`
      : '';
    console.log(
      `  ${f.label}: ${typeof f.value === 'number' ? f.value.toLocaleString('en-US') : f.value} ${f.unit}${target}`,
    );
  }
}
const logger = createLogger({ level: 'warn' });

const env =
  process.env.PG_TEST_URL && process.env.PG_STORAGE_TEST_URL
    ? undefined
    : await startTestDatabases({ env: { MYSQL_TEST_URL: 'unused' } });
const sourceUrl = process.env.PG_TEST_URL ?? env.env.PG_TEST_URL;
const storageUrl = process.env.PG_STORAGE_TEST_URL ?? env.env.PG_STORAGE_TEST_URL;
const source = new pg.Client({ connectionString: sourceUrl });
await source.connect();
const settings = ['wal_level', 'fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_wal_size'];
report.environment.postgres = {
  version: (await source.query('SHOW server_version')).rows[0].server_version,
  server: env
    ? 'throwaway server from scripts/dev-databases; source and storage are two databases of it'
    : 'PG_TEST_URL and PG_STORAGE_TEST_URL',
  settings: Object.fromEntries(
    (
      await source.query(
        'SELECT name, current_setting(name) AS value FROM pg_settings WHERE name = ANY($1) ORDER BY name',
        [settings],
      )
    ).rows.map((r) => [r.name, r.value]),
  ),
};

console.log(
  `Loading ${ROWS.toLocaleString('en-US')} rows and replicating them (not measured here: see the replication bench)...`,
);
await source.query(`DROP TABLE IF EXISTS items; DROP PUBLICATION IF EXISTS bench_sync;
  CREATE TABLE items (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text NOT NULL, title text, body text, n int)`);
for (let from = 1; from <= ROWS; from += 250_000) {
  await source.query(
    `INSERT INTO items (user_id, title, body, n) SELECT 'u' || (i % 1000), 'title ' || i, repeat('x', 80), i FROM generate_series(${from}, ${Math.min(ROWS, from + 249_999)}) i`,
  );
}
await source.query('CREATE PUBLICATION bench_sync FOR TABLE items');

const schema = 'bench_sync';
const cleanup = await PostgresStorage.open({ uri: storageUrl, schema });
await cleanup.teardown().catch(() => undefined);
await cleanup.close();
const storage = await PostgresStorage.open({ uri: storageUrl, schema });
const { config } = await storage.deploySyncConfig(SYNC_CONFIG);
const parsed = parseSyncConfig(SYNC_CONFIG).config;
const context = {
  config: postgresModule.decodeConfig({ type: 'postgresql', uri: sourceUrl, publication_name: 'bench_sync' }),
  replicationId: 'bench_sync',
  edition: 1,
};
const snapshotter = postgresModule.createSnapshotter(context);
const streamer = postgresModule.createStreamer(context);
const abort = new AbortController();
let consistent;
const ready = new Promise((r) => (consistent = r));
const replicationStarted = Date.now();
const replication = new ReplicationCoordinator({
  storage: config,
  snapshotter,
  streamer,
  patterns: parsed.sourceTables,
  logger,
  onConsistent: () => consistent(),
}).run(abort.signal);
await ready;
const replicationSeconds = (Date.now() - replicationStarted) / 1000;
while (!(await storage.getActiveSyncConfig())) await new Promise((r) => setTimeout(r, 100));

const key = { kty: 'oct', alg: 'HS256', kid: 'bench', k: randomBytes(32).toString('base64url') };
const server = await createSyncServer({
  storage,
  authenticator: new TokenVerifier(decodeAuthConfig({ jwks: { keys: [key] }, audience: ['bucketsync'] }), { logger }),
  sourceApi: undefined,
  compile: (content) => parseSyncConfig(content).config,
  logger,
});
const address = await server.listen({ port: 0, host: '127.0.0.1' });
const token = await signDevToken({ key, sub: 'bench', audience: 'bucketsync', expiresInSeconds: 3600 });

const data = {
  rows: ROWS,
  rowShape: ROW_SHAPE,
  syncConfig: SYNC_CONFIG.trim(),
  replicatedBeforehand: `loaded with INSERT ... SELECT generate_series, replicated to storage in ${replicationSeconds} s (not measured here)`,
};

// (0) The engine alone, in process: storage reads + line building + encoding, no HTTP.
for (const [name, encoding] of [
  ['ndjson', 'application/x-ndjson'],
  ['bson', 'application/vnd.powersync.bson-stream'],
]) {
  await scenario(
    {
      id: `sync-engine-${name}`,
      title: `Sync engine alone, ${name.toUpperCase()} lines`,
      workload: {
        ...data,
        request: 'streams: all_items (one global bucket holding every row), from nothing',
        encoding,
        measured: 'in process: syncStream() lines until checkpoint_complete, each encoded with encodeLine(); no HTTP',
      },
    },
    async (s) => {
      const started = Date.now();
      const linesAbort = new AbortController();
      let ops = 0;
      for await (const line of syncStream({
        storage,
        identity: { userId: 'bench', claims: { sub: 'bench' }, expiresAt: Date.now() / 1000 + 3600 },
        request: decodeSyncRequest({ streams: { subscriptions: [{ stream: 'all_items', parameters: null }] } }),
        signal: linesAbort.signal,
        compile: (content) => parseSyncConfig(content).config,
        logger,
      })) {
        encodeLine(line, encoding);
        if ('data' in line) ops += line.data.data.length;
        if ('checkpoint_complete' in line) break;
      }
      linesAbort.abort();
      const seconds = (Date.now() - started) / 1000;
      s.figure('ops', 'ops', ops, 'ops');
      s.figure('seconds', 'time to checkpoint_complete', seconds, 's');
      s.figure('opsPerSecond', 'ops per second', Math.round(ops / seconds), 'ops/s');
    },
  );
}

// (1) Download: the reader runs in its own process and parses every line, as a client would.
const READER = `
const { deserialize } = require(process.env.BSON_PATH);
(async () => {
  const started = Date.now();
  const response = await fetch(process.env.URL + '/sync/stream', { method: 'POST',
    headers: { authorization: 'Token ' + process.env.TOKEN, 'content-type': 'application/json', accept: process.env.ACCEPT,
      'accept-encoding': process.env.ENCODING },
    body: JSON.stringify({ streams: { subscriptions: [{ stream: 'all_items', parameters: null }] } }) });
  const reader = response.body.getReader();
  let ops = 0, bytes = 0, buffer = Buffer.alloc(0), pending = [];
  const bson = process.env.ACCEPT.includes('bson');
  const handle = (line) => { if (line.data) ops += line.data.data.length; return line.checkpoint_complete !== undefined; };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.length;
    let finished = false;
    if (bson) {
      buffer = buffer.length ? Buffer.concat([buffer, value]) : Buffer.from(value);
      while (buffer.length >= 4 && buffer.length >= buffer.readInt32LE(0)) {
        const size = buffer.readInt32LE(0);
        finished = handle(deserialize(buffer.subarray(0, size))) || finished;
        buffer = buffer.subarray(size);
      }
    } else {
      // Scan only the new bytes for line ends: lines are up to a megabyte.
      let start = 0, nl;
      while ((nl = value.indexOf(10, start)) >= 0) {
        pending.push(value.subarray(start, nl));
        finished = handle(JSON.parse(Buffer.concat(pending).toString())) || finished;
        pending = [];
        start = nl + 1;
      }
      if (start < value.length) pending.push(value.subarray(start));
    }
    if (finished) break;
  }
  const maxRssKb = process.resourceUsage().maxRSS;
  console.log(JSON.stringify({ ops, bytes, seconds: (Date.now() - started) / 1000, maxRssKb }));
  process.exit(0);
})();`;
const { createRequire } = await import('node:module');
const bsonPath = createRequire(import.meta.url).resolve('bson');
async function download(accept, encoding) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', READER], {
      env: { ...process.env, URL: address, TOKEN: token, ACCEPT: accept, ENCODING: encoding, BSON_PATH: bsonPath },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`reader exited ${code}`))));
  });
}
for (const [name, accept, encoding] of [
  ['ndjson', 'application/x-ndjson', 'identity'],
  ['ndjson-gzip', 'application/x-ndjson', 'gzip'],
  ['bson', 'application/vnd.powersync.bson-stream', 'identity'],
  ['bson-gzip', 'application/vnd.powersync.bson-stream', 'gzip'],
]) {
  await scenario(
    {
      id: `sync-download-${name}`,
      title: `Download of every row over HTTP, ${name.replace('-', ' + ').toUpperCase()}`,
      workload: {
        ...data,
        request: 'POST /sync/stream, streams: all_items (one global bucket holding every row), from nothing',
        accept,
        acceptEncoding: encoding,
        client: 'one reader in its own Node process (fetch), parsing every line, as fast as it can',
        measured: 'from the request to the checkpoint_complete line, in the reader',
      },
    },
    async (s) => {
      const r = await download(accept, encoding);
      s.figure('ops', 'ops downloaded', r.ops, 'ops');
      s.figure('seconds', 'time to checkpoint_complete', r.seconds, 's');
      s.figure(
        'opsPerSecond',
        'ops downloaded per second',
        Math.round(r.ops / r.seconds),
        'ops/s',
        name === 'ndjson' ? { min: 150_000 } : undefined,
      );
      s.figure('megabytesDecoded', 'response body after decompression', mb(r.bytes), 'MB');
      s.figure('readerPeakRssMB', 'peak RSS of the reader process', Math.round(r.maxRssKb / 1024), 'MB');
    },
  );
}

// (2) First checkpoint with 1,000 buckets from the parameter query.
await scenario(
  {
    id: 'sync-first-checkpoint',
    title: 'First checkpoint line for connections with 1,000 buckets',
    workload: {
      ...data,
      connections: CONNECTIONS,
      buckets: '1,000 per connection (user_lists for u0 .. u999, from the parameter query over request.parameters())',
      request: 'POST /sync/stream, NDJSON, identity encoding, one connection after the other',
      measured: 'per connection: from the request to the first line (the checkpoint) read by the client',
    },
  },
  async (s) => {
    const users = Array.from({ length: 1000 }, (_, i) => `u${i}`);
    const times = [];
    for (let i = 0; i < CONNECTIONS; i++) {
      const started = performance.now();
      const response = await fetch(`${address}/sync/stream`, {
        method: 'POST',
        headers: {
          authorization: `Token ${token}`,
          'content-type': 'application/json',
          accept: 'application/x-ndjson',
        },
        body: JSON.stringify({ parameters: { users } }),
      });
      const reader = response.body.getReader();
      let text = '';
      while (!text.includes('\n')) text += Buffer.from((await reader.read()).value).toString();
      times.push(performance.now() - started);
      const first = JSON.parse(text.slice(0, text.indexOf('\n')));
      if (first.checkpoint.buckets.length !== 1000)
        throw new Error(`expected 1000 buckets, got ${first.checkpoint.buckets.length}`);
      await reader.cancel();
    }
    times.sort((a, b) => a - b);
    s.figure('connections', 'connections measured', times.length, 'connections');
    s.figure('p50Ms', 'time to first checkpoint p50', Math.round(times[Math.floor(times.length * 0.5)]), 'ms');
    s.figure(
      'p99Ms',
      'time to first checkpoint p99',
      Math.round(times[Math.min(times.length - 1, Math.floor(times.length * 0.99))]),
      'ms',
      { max: 100 },
    );
  },
);

await server.close();
abort.abort();
await replication.catch(() => undefined);
await streamer.destroy().catch(() => undefined);
await streamer.close();
await snapshotter.close();
await storage.teardown().catch(() => undefined);
await storage.close();
await source.query('DROP PUBLICATION IF EXISTS bench_sync; DROP TABLE IF EXISTS items');
await source.end();
await env?.stop();
saveReport();
console.log(`\n${report.scenarios.length} scenario(s), ${failedScenarios} failed.`);
if (failedScenarios > 0) process.exitCode = 1;

// Anything still running now is a leak in the in-process server's teardown (known, see the
// closing notes of issue 7): say so rather than leave `npm run bench` hanging. The figures
// above are complete, so the exit code stays that of the scenarios.
setTimeout(() => {
  console.error('sync bench: something still ran 5 s after the end (a leaked handle); exiting');
  process.exit(process.exitCode ?? 0);
}, 5000).unref();
