#!/usr/bin/env node
// Replication benchmark (issue 5): the fixed `items` workload, source and storage in one
// throwaway Postgres (two databases). Scenarios, in order: initial replication of BENCH_ROWS
// rows (default 1,000,000) to the first checkpoint, with peak RSS and storage size; the same
// initial replication again (fresh storage) while 500 rows/s are written, with the lag sampled
// over time; then, on that replication: streaming 200 transactions x 1,000 rows; 20,000
// single-row transactions from 4 pgbench clients; commit-to-checkpoint lag under a steady
// 1,000 rows/s. Figures only: nothing here fails on a slow run.
//
// Size knobs (defaults are the issue's workload; smaller values are for trying the bench out):
// BENCH_ROWS, BENCH_TAIL_SECONDS (writes go on this long after the concurrent scenario caught
// up, default 3), BENCH_STREAM_TRANSACTIONS (200), BENCH_STREAM_TRANSACTION_ROWS (1,000),
// BENCH_PGBENCH_TRANSACTIONS (20,000 in all), BENCH_PGBENCH_CLIENTS (4), BENCH_LAG_SECONDS (10),
// BENCH_SAMPLE_MS (RSS and lag sampling interval, 250).
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
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
const knob = (name, fallback) => Number(process.env[name] ?? fallback);
const ROWS = knob('BENCH_ROWS', 1_000_000);
const TAIL_SECONDS = knob('BENCH_TAIL_SECONDS', 3);
const STREAM_TRANSACTIONS = knob('BENCH_STREAM_TRANSACTIONS', 200);
const STREAM_TRANSACTION_ROWS = knob('BENCH_STREAM_TRANSACTION_ROWS', 1000);
const PGBENCH_CLIENTS = knob('BENCH_PGBENCH_CLIENTS', 4);
const PGBENCH_TRANSACTIONS = knob('BENCH_PGBENCH_TRANSACTIONS', 20_000);
const LAG_SECONDS = knob('BENCH_LAG_SECONDS', 10);
const SAMPLE_MS = knob('BENCH_SAMPLE_MS', 250);
/** Lag under this counts as caught up (the steady-lag p99 target). */
const CAUGHT_UP_MS = 100;

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
const ROW_SHAPE = {
  id: 'uuid, gen_random_uuid()',
  user_id: "text, 'u' || (i % 1000): 1,000 users, so 1,000 buckets",
  title: "text, 'title ' || i",
  body: "text, repeat('x', 80)",
  n: 'int, i',
};
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const mb = (bytes) => Math.round(bytes / 1048576);
const toPosition = (lsn) => {
  const [hi, lo] = lsn.split('/');
  return `${hi.padStart(8, '0')}/${lo.padStart(8, '0')}`.toUpperCase();
};
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

// Results for scripts/bench.mjs (the format is described there): one entry per scenario, saved
// after each scenario so a crash in a later one keeps the figures of the earlier ones.
const report = { bench: 'replication', environment: {}, scenarios: [] };
let failedScenarios = 0;
function saveReport() {
  if (process.env.BENCH_RESULTS_FILE)
    writeFileSync(process.env.BENCH_RESULTS_FILE, `${JSON.stringify(report, null, 2)}\n`);
}

/**
 * Runs one scenario. `body(s)` records figures (`target.min` / `target.max` is met when the
 * value is >= / <=), time series (points are [ms since the scenario started, value]) and
 * events; the RSS of this process (which runs the replication) is sampled throughout. An error
 * is recorded in the scenario and the next scenario runs.
 */
async function scenario({ id, title, workload, rssTargetMb }, body) {
  console.log(`\nScenario ${id}: ${title}`);
  const started = Date.now();
  const entry = {
    id,
    title,
    startedAt: new Date(started).toISOString(),
    workload,
    figures: [],
    series: [],
    events: [],
  };
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
    workload,
    elapsed,
    figure: (name, label, value, unit, target) =>
      entry.figures.push({ name, label, value, unit, ...(target ? { target } : {}) }),
    series: (name, label, unit, points) => entry.series.push({ name, label, unit, points }),
    mark: (name, label) => entry.events.push({ name, label, atMs: elapsed() }),
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
  s.figure('peakRssMB', 'peak RSS of the replicating process', mb(peak), 'MB', rssTargetMb && { max: rssTargetMb });
  s.series('rss', 'RSS of the replicating process', 'MB', rss);
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

/** Rows copied by snapshot flushes, as rows/s per `intervalMs`, on the scenario's clock. */
function throughputSampler(s, intervalMs = 500) {
  let rows = 0;
  let lastRows = 0;
  let last = s.elapsed();
  const points = [];
  const take = () => {
    const now = s.elapsed();
    if (now - last < 50) return;
    points.push([now, Math.round((rows - lastRows) / ((now - last) / 1000))]);
    lastRows = rows;
    last = now;
  };
  const timer = setInterval(take, intervalMs);
  let stopped = false;
  return {
    hooks: { afterFlush: ({ result }) => void (rows += result.rowsApplied) },
    /** Records the series; idempotent. */
    stop() {
      if (stopped) return rows;
      stopped = true;
      clearInterval(timer);
      take();
      s.series('snapshotRowsPerSecond', 'rows copied by the snapshot per second', 'rows/s', points);
      return rows;
    },
  };
}

const env =
  process.env.PG_TEST_URL && process.env.PG_STORAGE_TEST_URL
    ? undefined
    : await startTestDatabases({ env: { MYSQL_TEST_URL: 'unused' } });
const sourceUrl = process.env.PG_TEST_URL ?? env.env.PG_TEST_URL;
const storageUrl = process.env.PG_STORAGE_TEST_URL ?? env.env.PG_STORAGE_TEST_URL;
const source = new pg.Client({ connectionString: sourceUrl });
await source.connect();
const storageClient = new pg.Client({ connectionString: storageUrl });
await storageClient.connect();
report.environment.postgres = await describePostgres(
  source,
  env
    ? 'throwaway server from scripts/dev-databases; source and storage are two databases of it'
    : 'PG_TEST_URL and PG_STORAGE_TEST_URL',
);

/** Server version and the settings that matter for the figures (the throwaway server runs without fsync). */
async function describePostgres(client, server) {
  const settings = ['wal_level', 'fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_wal_size'];
  const { rows } = await client.query(
    'SELECT name, current_setting(name) AS value FROM pg_settings WHERE name = ANY($1) ORDER BY name',
    [settings],
  );
  const version = (await client.query('SHOW server_version')).rows[0].server_version;
  return { version, server, settings: Object.fromEntries(rows.map((r) => [r.name, r.value])) };
}

async function headPosition() {
  const { rows } = await source.query("SELECT pg_logical_emit_message(false, 'bucketsync', 'bench')::text AS lsn");
  return toPosition(rows[0].lsn);
}

/** Starts replication of a fresh storage schema; resolves `consistent` at the first checkpoint. */
async function startReplication(name, snapshotHooks) {
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
  const reachedConsistent = new Promise((r) => (markConsistent = r));
  const started = Date.now();
  // chunkSize and tableConcurrency stay at the coordinator's defaults: the bench measures them.
  const coordinator = new ReplicationCoordinator({
    storage: config,
    snapshotter,
    streamer,
    patterns: parsed.sourceTables,
    logger: createLogger({ level: 'warn' }),
    onConsistent: () => markConsistent(Date.now() - started),
    ...(snapshotHooks ? { snapshotHooks } : {}),
  });
  const done = coordinator.run(abort.signal);
  // A permanent failure ends run() before the first checkpoint: fail the scenario, don't hang.
  const consistent = Promise.race([
    reachedConsistent,
    done.then(() => Promise.reject(new Error(`replication ${name} stopped before its first checkpoint`))),
  ]);
  let ended = false;
  done.then(
    () => (ended = true),
    () => (ended = true),
  );
  const waitForHead = async () => {
    const head = await headPosition();
    for (;;) {
      if (ended) throw new Error(`replication ${name} stopped before reaching the source head`);
      const checkpoint = await config.getCheckpoint();
      if (checkpoint.position && comparePositions(checkpoint.position, head) >= 0) return;
      await sleep(5);
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

// Source data (setup, not timed).
console.log(`Loading ${fmt(ROWS)} rows into the source...`);
await source.query(`DROP TABLE IF EXISTS items; DROP PUBLICATION IF EXISTS bench; ${ITEMS_DDL}`);
for (let from = 1; from <= ROWS; from += 250_000) await source.query(insertRows(from, Math.min(ROWS, from + 249_999)));
await source.query('CREATE PUBLICATION bench FOR TABLE items');
await source.query('VACUUM ANALYZE items');
const sourceTable = {
  rows: ROWS,
  ddl: ITEMS_DDL,
  rowShape: ROW_SHAPE,
  loadedWith: `${insertRows('<from>', '<to>')} in chunks of 250,000 rows, then VACUUM ANALYZE`,
  sizeMB: mb(Number((await source.query("SELECT pg_total_relation_size('items') AS b")).rows[0].b)),
  avgRowBytes: Math.round(Number((await source.query('SELECT avg(pg_column_size(i.*)) AS b FROM items i')).rows[0].b)),
};
const syncSide = {
  syncConfig: SYNC_CONFIG.trim(),
  buckets: '1,000 (user_lists[u0] .. user_lists[u999])',
  coordinator: 'ReplicationCoordinator defaults (chunkSize and tableConcurrency unset)',
};

let initialMs;
await scenario(
  {
    id: 'replication-initial',
    title: 'Initial replication, quiet source',
    workload: {
      ...sourceTable,
      ...syncSide,
      measured: 'from starting the coordinator on a fresh storage schema to its first checkpoint',
    },
    rssTargetMb: 300,
  },
  async (s) => {
    const throughput = throughputSampler(s);
    let a;
    try {
      a = await startReplication('initial', throughput.hooks);
      s.mark('replication-started', 'replication started');
      initialMs = await a.consistent;
      throughput.stop();
      s.mark('first-checkpoint', 'first checkpoint');
      const storageBytes = Number(
        (
          await storageClient.query(
            `SELECT sum(pg_total_relation_size(c.oid))::int8 AS b FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1`,
            [a.schema],
          )
        ).rows[0].b,
      );
      s.figure('secondsToFirstCheckpoint', 'time to the first checkpoint', initialMs / 1000, 's');
      s.figure('rowsPerSecond', 'rows replicated per second', Math.round(ROWS / (initialMs / 1000)), 'rows/s', {
        min: 60_000,
      });
      s.figure('storageMB', 'storage size of the replicated data', mb(storageBytes), 'MB', { max: 400 });
    } finally {
      throughput.stop();
      await a?.stop();
    }
  },
);

// The concurrent scenario's replication is used by the streaming scenarios after it.
let live;
await scenario(
  {
    id: 'replication-concurrent-snapshot',
    title: 'Initial replication while 500 rows/s are written',
    workload: {
      ...sourceTable,
      ...syncSide,
      concurrentWrites:
        '500 rows/s from one connection: a 10-row INSERT ... SELECT generate_series every 20 ms, from just before replication starts',
      tailSeconds: TAIL_SECONDS,
      lagSampleMs: SAMPLE_MS,
      lag: `sampled every ${SAMPLE_MS} ms: age of the oldest write whose LSN (pg_current_wal_insert_lsn() in its transaction) the storage checkpoint does not cover yet; 0 when all are covered`,
      measured: `time to the first checkpoint (ratio to the quiet scenario); writes go on until the lag is under ${CAUGHT_UP_MS} ms, then ${TAIL_SECONDS} s more`,
    },
  },
  async (s) => {
    const writes = []; // { position, at } of each write transaction, `at` on the scenario's clock
    let writing = true;
    let transactions = 0;
    const writer = (async () => {
      const start = Date.now();
      while (writing) {
        const due = start + transactions * 20; // 10 rows every 20 ms
        if (due > Date.now()) await sleep(due - Date.now());
        const [, lsn] = await source.query(`${insertRows(0, 9)}; SELECT pg_current_wal_insert_lsn()::text AS lsn`);
        writes.push({ position: toPosition(lsn.rows[0].lsn), at: s.elapsed() });
        transactions += 1;
      }
    })();
    let replication;
    const lag = [];
    let covered = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const checkpoint = replication ? await replication.config.getCheckpoint() : undefined;
        const now = s.elapsed();
        const position = checkpoint?.position;
        while (position && covered < writes.length && comparePositions(position, writes[covered].position) >= 0)
          covered++;
        lag.push([now, covered < writes.length ? Math.max(0, now - writes[covered].at) : 0]);
        await sleep(SAMPLE_MS - (s.elapsed() - now));
      }
    })();
    const throughput = throughputSampler(s);
    try {
      replication = await startReplication('concurrent', throughput.hooks);
      s.mark('replication-started', 'replication started');
      const concurrentMs = await replication.consistent;
      live = replication;
      throughput.stop();
      const firstCheckpointAt = s.elapsed();
      s.mark('first-checkpoint', 'first checkpoint');
      const rowsDuringSnapshot = transactions * 10;
      let caughtUpAt;
      while (caughtUpAt === undefined && s.elapsed() - firstCheckpointAt < 120_000) {
        await sleep(SAMPLE_MS);
        const last = lag[lag.length - 1];
        if (last && last[0] > firstCheckpointAt && last[1] < CAUGHT_UP_MS) caughtUpAt = last[0];
      }
      if (caughtUpAt !== undefined) {
        s.mark('caught-up', `lag under ${CAUGHT_UP_MS} ms`);
        await sleep(TAIL_SECONDS * 1000);
      }
      writing = false;
      await writer;
      const writesStoppedAt = s.elapsed();
      s.mark('writes-stopped', 'writes stopped');
      await replication.waitForHead();
      const drainSeconds = (s.elapsed() - writesStoppedAt) / 1000;
      sampling = false;
      await sampler;
      const tail = lag
        .filter(([t]) => caughtUpAt !== undefined && t >= caughtUpAt && t <= writesStoppedAt)
        .map(([, v]) => v)
        .sort((x, y) => x - y);
      s.series('lagMs', 'replication lag (age of the oldest write not yet in a checkpoint)', 'ms', lag);
      s.figure('secondsToFirstCheckpoint', 'time to the first checkpoint', concurrentMs / 1000, 's');
      s.figure('rowsPerSecond', 'rows replicated per second', Math.round(ROWS / (concurrentMs / 1000)), 'rows/s');
      s.figure(
        'ratioToQuiet',
        'time to first checkpoint / quiet scenario',
        initialMs ? Math.round((concurrentMs / initialMs) * 100) / 100 : null,
        'x',
        { max: 1.2 },
      );
      s.figure('rowsWrittenDuringSnapshot', 'rows written before the first checkpoint', rowsDuringSnapshot, 'rows');
      s.figure('rowsWritten', 'rows written in all', transactions * 10, 'rows');
      s.figure('peakLagMs', 'peak lag', Math.max(0, ...lag.map(([, v]) => v)), 'ms');
      s.figure(
        'secondsToCatchUp',
        `time to catch up after the first checkpoint (lag < ${CAUGHT_UP_MS} ms)`,
        caughtUpAt === undefined ? null : (caughtUpAt - firstCheckpointAt) / 1000,
        's',
      );
      s.figure(
        'tailLagP99Ms',
        `lag p99 over the ${TAIL_SECONDS} s after catching up`,
        tail.length > 0 ? percentile(tail, 99) : null,
        'ms',
        { max: CAUGHT_UP_MS },
      );
      s.figure('secondsToDrain', 'time to reach the source head after the writes stop', drainSeconds, 's');
    } finally {
      throughput.stop();
      writing = false;
      sampling = false;
      await writer.catch(() => undefined);
      await sampler.catch(() => undefined);
      if (replication && live !== replication) await replication.stop();
    }
  },
);

const needLive = () => {
  if (!live) throw new Error('skipped: needs the replication started by replication-concurrent-snapshot');
  return live;
};

const streamRows = STREAM_TRANSACTIONS * STREAM_TRANSACTION_ROWS;
await scenario(
  {
    id: 'replication-streaming-bulk',
    title: `Streaming ${fmt(STREAM_TRANSACTIONS)} transactions of ${fmt(STREAM_TRANSACTION_ROWS)} rows`,
    workload: {
      transactions: STREAM_TRANSACTIONS,
      rowsPerTransaction: STREAM_TRANSACTION_ROWS,
      rows: streamRows,
      rowShape: ROW_SHAPE,
      writes: 'one connection, one INSERT ... SELECT generate_series per transaction, back to back',
      measured: 'from the first insert until the storage checkpoint reaches the source head',
    },
  },
  async (s) => {
    const e = needLive();
    const t0 = Date.now();
    for (let i = 0; i < STREAM_TRANSACTIONS; i++)
      await source.query(insertRows(ROWS + i * STREAM_TRANSACTION_ROWS + 1, ROWS + (i + 1) * STREAM_TRANSACTION_ROWS));
    s.mark('writes-done', 'writes done');
    await e.waitForHead();
    const seconds = (Date.now() - t0) / 1000;
    s.figure('seconds', 'time until caught up', seconds, 's');
    s.figure('rowsPerSecond', 'rows replicated per second', Math.round(streamRows / seconds), 'rows/s', {
      min: 30_000,
    });
  },
);

const perClient = Math.max(1, Math.round(PGBENCH_TRANSACTIONS / PGBENCH_CLIENTS));
const pgbenchTransactions = perClient * PGBENCH_CLIENTS;
const PGBENCH_SCRIPT =
  "INSERT INTO items (user_id, title, body, n) VALUES ('u' || (random() * 999)::int, 'pgbench', repeat('x', 80), 0);\n";
await scenario(
  {
    id: 'replication-streaming-small-transactions',
    title: `${fmt(pgbenchTransactions)} single-row transactions from ${PGBENCH_CLIENTS} pgbench clients`,
    workload: {
      transactions: pgbenchTransactions,
      rowsPerTransaction: 1,
      clients: PGBENCH_CLIENTS,
      pgbench: `pgbench -n -c ${PGBENCH_CLIENTS} -j ${Math.min(2, PGBENCH_CLIENTS)} -t ${perClient} -f insert.sql`,
      script: PGBENCH_SCRIPT.trim(),
      measured: 'from starting pgbench until the storage checkpoint reaches the source head',
    },
  },
  async (s) => {
    const e = needLive();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-pgbench-'));
    writeFileSync(path.join(dir, 'insert.sql'), PGBENCH_SCRIPT);
    const t0 = Date.now();
    const { stdout } = await exec('pgbench', [
      ...['-n', '-c', String(PGBENCH_CLIENTS), '-j', String(Math.min(2, PGBENCH_CLIENTS))],
      ...['-t', String(perClient), '-f', path.join(dir, 'insert.sql'), sourceUrl],
    ]);
    const pgbenchSeconds = (Date.now() - t0) / 1000;
    s.mark('pgbench-done', 'pgbench done');
    await e.waitForHead();
    const seconds = (Date.now() - t0) / 1000;
    const tps = /tps = ([\d.]+)/.exec(stdout)?.[1];
    s.figure('pgbenchSeconds', 'pgbench run time', pgbenchSeconds, 's');
    s.figure('pgbenchTps', 'source transactions per second (pgbench)', tps ? Math.round(Number(tps)) : null, 'tx/s');
    s.figure('secondsUntilCaughtUp', 'time until caught up', seconds, 's');
    s.figure(
      'transactionsPerSecond',
      'transactions replicated per second',
      Math.round(pgbenchTransactions / seconds),
      'tx/s',
      { min: 15_000 },
    );
  },
);

await scenario(
  {
    id: 'replication-steady-lag',
    title: 'Commit-to-checkpoint lag at a steady 1,000 rows/s',
    workload: {
      rowsPerSecond: 1000,
      transactionsPerSecond: 100,
      rowsPerTransaction: 10,
      seconds: LAG_SECONDS,
      writes: 'one connection, a 10-row INSERT ... SELECT generate_series every 10 ms',
      measured:
        'per transaction: from the commit returning to the watchCheckpoints event whose position covers its LSN (pg_current_wal_insert_lsn() in the transaction)',
    },
  },
  async (s) => {
    const e = needLive();
    const lags = []; // [commit time on the scenario's clock, lag ms]
    const pending = [];
    const watchAbort = new AbortController();
    const watcher = (async () => {
      for await (const event of e.config.watchCheckpoints(watchAbort.signal)) {
        const now = s.elapsed();
        while (
          pending.length > 0 &&
          event.checkpoint.position &&
          comparePositions(event.checkpoint.position, pending[0].position) >= 0
        ) {
          const { committedAt } = pending.shift();
          lags.push([committedAt, now - committedAt]);
        }
      }
    })().catch(() => undefined);
    const steadyStart = Date.now();
    for (let i = 0; i < LAG_SECONDS * 100; i++) {
      const due = steadyStart + i * 10;
      if (due > Date.now()) await sleep(due - Date.now());
      const [, lsn] = await source.query(
        `${insertRows(i * 10, i * 10 + 9)}; SELECT pg_current_wal_insert_lsn()::text AS lsn`,
      );
      pending.push({ position: toPosition(lsn.rows[0].lsn), committedAt: s.elapsed() });
    }
    await e.waitForHead();
    await sleep(200);
    watchAbort.abort();
    await watcher;
    const sorted = lags.map(([, v]) => v).sort((x, y) => x - y);
    s.series('lagMs', 'commit-to-checkpoint lag of each transaction', 'ms', lags);
    s.figure('samples', 'transactions measured', sorted.length, 'tx');
    s.figure('p50Ms', 'lag p50', percentile(sorted, 50), 'ms');
    s.figure('p99Ms', 'lag p99', percentile(sorted, 99), 'ms', { max: 100 });
    s.figure('maxMs', 'lag max', sorted[sorted.length - 1], 'ms');
  },
);

await live?.stop();
await storageClient.end();
await source.query('DROP PUBLICATION IF EXISTS bench; DROP TABLE IF EXISTS items');
await source.end();
await env?.stop();
saveReport();
console.log(`\n${report.scenarios.length} scenario(s), ${failedScenarios} failed.`);
if (failedScenarios > 0) process.exitCode = 1;
