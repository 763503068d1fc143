#!/usr/bin/env node
// Replication benchmark (issue 5): the fixed `items` workload, source and storage in one
// throwaway Postgres (two databases). Scenarios, in order: initial replication of BENCH_ROWS
// rows (default 1,000,000) to the first checkpoint, with peak RSS and storage size; the same
// initial replication again (fresh storage) while 500 rows/s are written; then, on that
// replication: streaming 200 transactions x 1,000 rows; 20,000 single-row transactions from
// 4 pgbench clients; commit-to-checkpoint lag under a steady 1,000 rows/s.
// Figures only: nothing here fails on a slow run.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startTestDatabases } from '@bucketsync/dev-databases';
import { createLogger } from '@bucketsync/lib-services';
import { postgresModule } from '@bucketsync/module-postgres';
import { PostgresStorage } from '@bucketsync/module-postgres-storage';
import { comparePositions, ReplicationCoordinator } from '@bucketsync/service-core';
import { parseSyncConfig } from '@bucketsync/sync-rules';
import pg from 'pg';

const exec = promisify(execFile);
const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const SYNC_CONFIG = `
bucket_definitions:
  user_lists:
    parameters: SELECT request.user_id() as user_id
    data:
      - SELECT id, user_id, title, body, n FROM items WHERE user_id = bucket.user_id
`;
const ITEMS_DDL = `CREATE TABLE items (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text NOT NULL, title text, body text, n int)`;
const insertRows = (from, to) =>
  `INSERT INTO items (user_id, title, body, n) SELECT 'u' || (i % 1000), 'title ' || i, repeat('x', 80), i FROM generate_series(${from}, ${to}) i`;

const results = {
  workload: { rows: ROWS, table: ITEMS_DDL, syncConfig: SYNC_CONFIG.trim() },
  machine: { cpus: os.cpus().length, node: process.version },
};
const fmt = (n) => Math.round(n).toLocaleString('en-US');

const env =
  process.env.PG_TEST_URL && process.env.PG_STORAGE_TEST_URL ? undefined : await startTestDatabases({ env: {} });
const sourceUrl = process.env.PG_TEST_URL ?? env.env.PG_TEST_URL;
const storageUrl = process.env.PG_STORAGE_TEST_URL ?? env.env.PG_STORAGE_TEST_URL;
const source = new pg.Client({ connectionString: sourceUrl });
await source.connect();
results.machine.postgres = (await source.query('SHOW server_version')).rows[0].server_version;

let peakRss = 0;
const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);

async function headPosition() {
  const { rows } = await source.query("SELECT pg_logical_emit_message(false, 'bucketsync', 'bench')::text AS lsn");
  const [hi, lo] = rows[0].lsn.split('/');
  return `${hi.padStart(8, '0')}/${lo.padStart(8, '0')}`.toUpperCase();
}

/** Starts replication of a fresh storage schema; resolves `consistent` at the first checkpoint. */
async function startReplication(name) {
  const storage = await PostgresStorage.open({ uri: storageUrl, schema: `bench_${name}` });
  await storage.teardown().catch(() => undefined);
  await storage.close();
  const fresh = await PostgresStorage.open({ uri: storageUrl, schema: `bench_${name}` });
  const { config } = await fresh.deploySyncConfig(SYNC_CONFIG);
  const parsed = parseSyncConfig(SYNC_CONFIG).config;
  const context = {
    config: postgresModule.decodeConfig({ type: 'postgresql', uri: sourceUrl, publication_name: 'bench' }),
    replicationId: `bench_${name}`,
    edition: parsed.edition,
  };
  const snapshotter = postgresModule.createSnapshotter(context);
  const streamer = postgresModule.createStreamer(context);
  const abort = new AbortController();
  let markConsistent;
  const consistent = new Promise((r) => (markConsistent = r));
  const started = Date.now();
  const coordinator = new ReplicationCoordinator({
    storage: config,
    snapshotter,
    streamer,
    patterns: parsed.sourceTables,
    logger: createLogger({ level: 'warn' }),
    onConsistent: () => markConsistent(Date.now() - started),
  });
  const done = coordinator.run(abort.signal);
  const waitForHead = async () => {
    const head = await headPosition();
    for (;;) {
      const checkpoint = await config.getCheckpoint();
      if (checkpoint.position && comparePositions(checkpoint.position, head) >= 0) return;
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const stop = async () => {
    abort.abort();
    await done.catch(() => undefined);
    await streamer.destroy().catch(() => undefined);
    await streamer.close();
    await snapshotter.close();
    await fresh.close();
  };
  return { config, consistent, waitForHead, stop, storage: fresh, schema: `bench_${name}` };
}

// Source data
console.log(`Loading ${fmt(ROWS)} rows into the source...`);
await source.query(`DROP TABLE IF EXISTS items; DROP PUBLICATION IF EXISTS bench; ${ITEMS_DDL}`);
for (let from = 1; from <= ROWS; from += 250_000) await source.query(insertRows(from, Math.min(ROWS, from + 249_999)));
await source.query('CREATE PUBLICATION bench FOR TABLE items');
await source.query('VACUUM ANALYZE items');
results.workload.sourceTableMB = Math.round(
  Number((await source.query("SELECT pg_total_relation_size('items') AS b")).rows[0].b) / 1048576,
);

// A: initial replication
console.log('Scenario: initial replication');
peakRss = 0;
const a = await startReplication('initial');
const initialMs = await a.consistent;
const storageClient = new pg.Client({ connectionString: storageUrl });
await storageClient.connect();
const storageBytes = Number(
  (
    await storageClient.query(
      `SELECT sum(pg_total_relation_size(c.oid))::int8 AS b FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1`,
      [a.schema],
    )
  ).rows[0].b,
);
results.initialReplication = {
  rows: ROWS,
  secondsToFirstCheckpoint: initialMs / 1000,
  rowsPerSecond: Math.round(ROWS / (initialMs / 1000)),
  peakRssMB: Math.round(peakRss / 1048576),
  storageMB: Math.round(storageBytes / 1048576),
  targets: { rowsPerSecond: 60_000, peakRssMB: 300, storageMB: 400 },
};
console.log(results.initialReplication);

await a.stop();

// E: initial replication while 500 rows/s are written
console.log('Scenario: initial replication with 500 rows/s written concurrently');
let writing = true;
let written = 0;
const writer = (async () => {
  const start = Date.now();
  while (writing) {
    const due = start + written * 20; // 10 rows every 20 ms
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    await source.query(insertRows(0, 9));
    written += 1;
  }
})();
peakRss = 0;
const e = await startReplication('concurrent');
const concurrentMs = await e.consistent;
writing = false;
await writer;
const caughtUpStart = Date.now();
await e.waitForHead();
results.initialReplicationUnderWrites = {
  secondsToFirstCheckpoint: concurrentMs / 1000,
  ratioToQuiet: Math.round((concurrentMs / initialMs) * 100) / 100,
  rowsWrittenMeanwhile: written * 10,
  secondsToCatchUpAfterwards: (Date.now() - caughtUpStart) / 1000,
  target: 'ratio <= 1.2, no lag left',
};
console.log(results.initialReplicationUnderWrites);

// B: streaming 200 x 1,000
console.log('Scenario: streaming 200 transactions of 1,000 rows');
let t0 = Date.now();
for (let i = 0; i < 200; i++) await source.query(insertRows(ROWS + i * 1000 + 1, ROWS + (i + 1) * 1000));
await e.waitForHead();
let seconds = (Date.now() - t0) / 1000;
results.streamingBulk = { rows: 200_000, seconds, rowsPerSecond: Math.round(200_000 / seconds), target: 30_000 };
console.log(results.streamingBulk);

// C: 20,000 single-row transactions from 4 clients
console.log('Scenario: 20,000 single-row transactions from 4 pgbench clients');
const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-pgbench-'));
writeFileSync(
  path.join(dir, 'insert.sql'),
  "INSERT INTO items (user_id, title, body, n) VALUES ('u' || (random() * 999)::int, 'pgbench', repeat('x', 80), 0);\n",
);
t0 = Date.now();
await exec('pgbench', ['-n', '-c', '4', '-j', '2', '-t', '5000', '-f', path.join(dir, 'insert.sql'), sourceUrl]);
const pgbenchSeconds = (Date.now() - t0) / 1000;
await e.waitForHead();
seconds = (Date.now() - t0) / 1000;
results.streamingSmallTransactions = {
  transactions: 20_000,
  pgbenchSeconds,
  secondsUntilCaughtUp: seconds,
  transactionsPerSecond: Math.round(20_000 / seconds),
  target: 15_000,
};
console.log(results.streamingSmallTransactions);

// D: lag under a steady 1,000 rows/s (100 transactions/s of 10 rows), 10 s
console.log('Scenario: commit-to-checkpoint lag at 1,000 rows/s');
const lags = [];
const pending = [];
const watchAbort = new AbortController();
const watcher = (async () => {
  for await (const event of e.config.watchCheckpoints(watchAbort.signal)) {
    const now = Date.now();
    while (
      pending.length > 0 &&
      event.checkpoint.position &&
      comparePositions(event.checkpoint.position, pending[0].position) >= 0
    ) {
      lags.push(now - pending.shift().committedAt);
    }
  }
})().catch(() => undefined);
const steadyStart = Date.now();
for (let i = 0; i < 1000; i++) {
  const due = steadyStart + i * 10;
  if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
  const { rows } = await source
    .query(`${insertRows(i * 10, i * 10 + 9)}; SELECT pg_current_wal_insert_lsn()::text AS lsn`)
    .then((r) => r[1]);
  const [hi, lo] = rows[0].lsn.split('/');
  pending.push({ position: `${hi.padStart(8, '0')}/${lo.padStart(8, '0')}`.toUpperCase(), committedAt: Date.now() });
}
await e.waitForHead();
await new Promise((r) => setTimeout(r, 200));
watchAbort.abort();
await watcher;
lags.sort((x, y) => x - y);
const pct = (p) => lags[Math.min(lags.length - 1, Math.floor((p / 100) * lags.length))];
results.steadyLag = {
  rowsPerSecond: 1000,
  samples: lags.length,
  p50Ms: pct(50),
  p99Ms: pct(99),
  maxMs: lags[lags.length - 1],
  targetP99Ms: 100,
};
console.log(results.steadyLag);

await e.stop();

clearInterval(rssTimer);
await storageClient.end();
await source.query('DROP PUBLICATION IF EXISTS bench; DROP TABLE IF EXISTS items');
await source.end();
await env?.stop();
if (process.env.BENCH_RESULTS_FILE) writeFileSync(process.env.BENCH_RESULTS_FILE, JSON.stringify(results, null, 2));
console.log(JSON.stringify(results, null, 2));
