#!/usr/bin/env node
// Postgres storage benchmark (`npm run bench -- storage`): write path, read path, checksums
// and memory for a 1,000,000-row batch landing in one bucket. Figures only, no assertions.
// Uses PG_STORAGE_TEST_URL when set, else starts the throwaway Postgres. Plain JS (Node 20).
// Size knobs: BENCH_STORAGE_ROWS (else BENCH_ROWS, default 1,000,000); BENCH_SAMPLE_MS (RSS
// and throughput sampling interval, 250).
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { clearInterval, setInterval } from 'node:timers';
import { startTestDatabases } from '@bucketsync/dev-databases';
import pg from 'pg';
import { PostgresStorage } from '../dist/index.js';

const ROWS = Number(process.env.BENCH_STORAGE_ROWS ?? process.env.BENCH_ROWS ?? 1_000_000);
const SAMPLE_MS = Number(process.env.BENCH_SAMPLE_MS ?? 250);
/** Peak RSS target of every storage scenario (the whole bench runs in this process). */
const RSS_TARGET_MB = 200;
const CONFIG = `
bucket_definitions:
  global:
    data:
      - SELECT * FROM todos
`;
const ROW_SHAPE = {
  id: "'todo-<i>'",
  title: "'Buy item number <i>'",
  done: 'bigint, i & 1',
  list_id: "'list-1'",
  created_at: "'2025-08-19 09:21:00Z'",
};
const mb = (bytes) => Math.round(bytes / 1048576);
const round = (n) => Math.round(n * 1000) / 1000;

// Results for scripts/bench.mjs (the format is described there): one entry per scenario, saved
// after each scenario so a crash in a later one keeps the figures of the earlier ones.
const report = { bench: 'storage', environment: {}, scenarios: [] };
let failedScenarios = 0;
function saveReport() {
  if (process.env.BENCH_RESULTS_FILE)
    writeFileSync(process.env.BENCH_RESULTS_FILE, `${JSON.stringify(report, null, 2)}\n`);
}

/**
 * Runs one scenario. `body(s)` records figures (`target.min` / `target.max` is met when the
 * value is >= / <=) and time series (points are [ms since the scenario started, value]); the
 * RSS of this process is sampled throughout. An error is recorded and the next scenario runs.
 */
async function scenario({ id, title, workload }, body) {
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
    elapsed,
    figure: (name, label, value, unit, target) =>
      entry.figures.push({ name, label, value, unit, ...(target ? { target } : {}) }),
    series: (name, label, unit, points) => entry.series.push({ name, label, unit, points }),
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
  s.figure('peakRssMB', 'peak RSS of the bench process', mb(peak), 'MB', { max: RSS_TARGET_MB });
  s.series('rss', 'RSS of the bench process', 'MB', rss);
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

let databases;
let url = process.env.PG_STORAGE_TEST_URL;
if (!url) {
  databases = await startTestDatabases({ env: { ...process.env, MYSQL_TEST_URL: 'unused' } });
  url = databases.env.PG_STORAGE_TEST_URL;
}
const client = new pg.Client({ connectionString: url });
await client.connect();
const settings = ['fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_wal_size'];
report.environment.postgres = {
  version: (await client.query('SHOW server_version')).rows[0].server_version,
  server: databases ? 'throwaway server from scripts/dev-databases' : 'PG_STORAGE_TEST_URL',
  settings: Object.fromEntries(
    (
      await client.query(
        'SELECT name, current_setting(name) AS value FROM pg_settings WHERE name = ANY($1) ORDER BY name',
        [settings],
      )
    ).rows.map((r) => [r.name, r.value]),
  ),
};
await client.end();

const schema = `bench_${process.pid}`;
const storage = await PostgresStorage.open({ uri: url, schema, maxPoolSize: 4 });
const bucketWorkload = { rows: ROWS, rowShape: ROW_SHAPE, syncConfig: CONFIG.trim(), buckets: "1 ('global[]')" };
try {
  const { config } = await storage.deploySyncConfig(CONFIG);
  const { table } = await config.resolveTable({ schema: 'public', name: 'todos', replicaIdColumns: ['id'] });
  const setup = config.createWriteBatch();
  await setup.markTableSnapshotDone([table], 'P0');
  await setup.markSnapshotDone('P0');
  await setup.close();

  let checkpoint;
  await scenario(
    {
      id: 'storage-write',
      title: `Write ${ROWS.toLocaleString('en-US')} inserts in one batch`,
      workload: {
        ...bucketWorkload,
        writes: 'one streaming write batch, save() awaited row by row, one commit at the end',
        storage: 'PostgresStorage, maxPoolSize 4; write batch defaults (flush every 10,000 rows or 16 MiB)',
        measured: 'from the first save() to commit() returning',
      },
    },
    async (s) => {
      const batch = config.createWriteBatch();
      let saved = 0;
      let lastSaved = 0;
      let last = s.elapsed();
      const throughput = [];
      const timer = setInterval(() => {
        const now = s.elapsed();
        throughput.push([now, Math.round((saved - lastSaved) / ((now - last) / 1000))]);
        lastSaved = saved;
        last = now;
      }, 500);
      const start = performance.now();
      try {
        for (; saved < ROWS; saved++) {
          await batch.save({
            tag: 'insert',
            table,
            after: {
              id: `todo-${saved}`,
              title: `Buy item number ${saved}`,
              done: BigInt(saved & 1),
              list_id: 'list-1',
              created_at: '2025-08-19 09:21:00Z',
            },
          });
        }
        ({ checkpoint } = await batch.commit('P1'));
      } finally {
        clearInterval(timer);
      }
      const seconds = (performance.now() - start) / 1000;
      s.series('savesPerSecond', 'rows saved per second', 'ops/s', throughput);
      s.figure('seconds', 'write time', round(seconds), 's');
      s.figure('opsPerSecond', 'ops written per second', Math.round(ROWS / seconds), 'ops/s', { min: 100_000 });
    },
  );

  const needCheckpoint = () => {
    if (!checkpoint) throw new Error('skipped: needs the data written by storage-write');
    return checkpoint;
  };

  await scenario(
    {
      id: 'storage-read',
      title: 'Read the whole bucket',
      workload: {
        ...bucketWorkload,
        reads: "getBucketData for 'global[]' after op 0 up to the checkpoint, every chunk consumed",
      },
    },
    async (s) => {
      const start = performance.now();
      let ops = 0;
      let chunks = 0;
      for await (const chunk of config.getBucketData({
        checkpoint: needCheckpoint().opId,
        buckets: [{ bucket: 'global[]', after: 0n }],
      })) {
        ops += chunk.ops.length;
        chunks++;
      }
      const seconds = (performance.now() - start) / 1000;
      s.figure('ops', 'ops read', ops, 'ops');
      s.figure('chunks', 'chunks read', chunks, 'chunks');
      s.figure('seconds', 'read time', round(seconds), 's');
      s.figure('opsPerSecond', 'ops read per second', Math.round(ops / seconds), 'ops/s', { min: 300_000 });
    },
  );

  await scenario(
    {
      id: 'storage-checksum',
      title: 'Checksum of the whole bucket, cold and cached',
      workload: {
        ...bucketWorkload,
        reads:
          "getChecksums(checkpoint, ['global[]']) on a fresh PostgresStorage (maxPoolSize 2, no cached checksums), then again",
      },
    },
    async (s) => {
      const cold = await PostgresStorage.open({ uri: url, schema, maxPoolSize: 2 });
      try {
        const coldConfig = await cold.getSyncConfig(config.configId);
        let start = performance.now();
        await coldConfig.getChecksums(needCheckpoint().opId, ['global[]']);
        const coldMs = performance.now() - start;
        start = performance.now();
        const cached = (await coldConfig.getChecksums(checkpoint.opId, ['global[]'])).get('global[]');
        const cachedMs = performance.now() - start;
        s.figure('ops', 'ops in the checksum', cached.count, 'ops');
        s.figure('coldMs', 'cold checksum', round(coldMs), 'ms', { max: 1000 });
        s.figure('cachedMs', 'cached checksum', round(cachedMs), 'ms', { max: 50 });
      } finally {
        await cold.close();
      }
    },
  );
} finally {
  await storage.teardown().catch(() => undefined);
  await storage.close();
  await databases?.stop();
}
saveReport();
console.log(`\n${report.scenarios.length} scenario(s), ${failedScenarios} failed.`);
if (failedScenarios > 0) process.exitCode = 1;
