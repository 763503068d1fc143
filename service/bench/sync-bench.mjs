#!/usr/bin/env node
// Sync benchmark (issue 6): the replication workload (`items`, BENCH_ROWS rows, default
// 1,000,000) plus a global bucket holding every row. Measures (1) one client downloading the
// global bucket to its first checkpoint_complete over NDJSON and over BSON, the reader in its
// own process reading as fast as it can; (2) time to the first checkpoint line for new
// connections whose parameter query yields 1,000 buckets (p50 / p99 over 50 connections).
// Figures only: nothing here fails on a slow run.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
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
const results = {
  workload: { rows: ROWS, syncConfig: SYNC_CONFIG.trim() },
  machine: { cpus: os.cpus().length, node: process.version },
};
const logger = createLogger({ level: 'warn' });

const env =
  process.env.PG_TEST_URL && process.env.PG_STORAGE_TEST_URL ? undefined : await startTestDatabases({ env: {} });
const sourceUrl = process.env.PG_TEST_URL ?? env.env.PG_TEST_URL;
const storageUrl = process.env.PG_STORAGE_TEST_URL ?? env.env.PG_STORAGE_TEST_URL;
const source = new pg.Client({ connectionString: sourceUrl });
await source.connect();

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
results.replicationSeconds = (Date.now() - replicationStarted) / 1000;
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

// (0) The engine alone, in process: storage reads + line building + encoding, no HTTP.
for (const encoding of ['application/x-ndjson', 'application/vnd.powersync.bson-stream']) {
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
  results[`engine_${encoding.includes('bson') ? 'bson' : 'ndjson'}`] = {
    ops,
    seconds,
    opsPerSecond: Math.round(ops / seconds),
  };
  console.log('engine', encoding, results[`engine_${encoding.includes('bson') ? 'bson' : 'ndjson'}`]);
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
  console.log(JSON.stringify({ ops, bytes, seconds: (Date.now() - started) / 1000 }));
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
  ['ndjson_gzip', 'application/x-ndjson', 'gzip'],
  ['bson', 'application/vnd.powersync.bson-stream', 'identity'],
  ['bson_gzip', 'application/vnd.powersync.bson-stream', 'gzip'],
]) {
  const r = await download(accept, encoding);
  results[`download_${name}`] = {
    ops: r.ops,
    seconds: r.seconds,
    opsPerSecond: Math.round(r.ops / r.seconds),
    megabytesDecoded: Math.round(r.bytes / 1048576),
  };
  console.log(name, results[`download_${name}`]);
}
results.download_ndjson.target = 150_000;

// (2) First checkpoint with 1,000 buckets from the parameter query.
const users = Array.from({ length: 1000 }, (_, i) => `u${i}`);
const times = [];
for (let i = 0; i < 50; i++) {
  const started = performance.now();
  const response = await fetch(`${address}/sync/stream`, {
    method: 'POST',
    headers: { authorization: `Token ${token}`, 'content-type': 'application/json', accept: 'application/x-ndjson' },
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
results.firstCheckpoint1000Buckets = {
  connections: times.length,
  p50Ms: Math.round(times[Math.floor(times.length * 0.5)]),
  p99Ms: Math.round(times[Math.min(times.length - 1, Math.floor(times.length * 0.99))]),
  targetP99Ms: 100,
};
console.log(results.firstCheckpoint1000Buckets);

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
if (process.env.BENCH_RESULTS_FILE) writeFileSync(process.env.BENCH_RESULTS_FILE, JSON.stringify(results, null, 2));
console.log(JSON.stringify(results, null, 2));
