#!/usr/bin/env node
// Postgres storage benchmark (`npm run bench -- storage`): write path, read path, checksums
// and memory for a 1,000,000-row batch landing in one bucket. Figures only, no assertions.
// Uses PG_STORAGE_TEST_URL when set, else starts the throwaway Postgres. Plain JS (Node 20).
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { clearInterval, setInterval } from 'node:timers';
import { startTestDatabases } from '@bucketsync/dev-databases';
import { PostgresStorage } from '../dist/index.js';

const ROWS = Number(process.env.BENCH_STORAGE_ROWS ?? 1_000_000);
const CONFIG = `
bucket_definitions:
  global:
    data:
      - SELECT * FROM todos
`;

let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 50);

let databases;
let url = process.env.PG_STORAGE_TEST_URL;
if (!url) {
  databases = await startTestDatabases({ env: { ...process.env, MYSQL_TEST_URL: 'unused' } });
  url = databases.env.PG_STORAGE_TEST_URL;
}
const schema = `bench_${process.pid}`;
const storage = await PostgresStorage.open({ uri: url, schema, maxPoolSize: 4 });
const results = {};
try {
  const { config } = await storage.deploySyncConfig(CONFIG);
  const { table } = await config.resolveTable({ schema: 'public', name: 'todos', replicaIdColumns: ['id'] });
  const setup = config.createWriteBatch();
  await setup.markTableSnapshotDone([table], 'P0');
  await setup.markSnapshotDone('P0');
  await setup.close();

  const batch = config.createWriteBatch();
  const rssBefore = process.memoryUsage.rss();
  let start = performance.now();
  for (let i = 0; i < ROWS; i++) {
    await batch.save({
      tag: 'insert',
      table,
      after: {
        id: `todo-${i}`,
        title: `Buy item number ${i}`,
        done: BigInt(i & 1),
        list_id: 'list-1',
        created_at: '2025-08-19 09:21:00Z',
      },
    });
  }
  const { checkpoint } = await batch.commit('P1');
  let seconds = (performance.now() - start) / 1000;
  results.write = {
    rows: ROWS,
    seconds: round(seconds),
    opsPerSecond: Math.round(ROWS / seconds),
    targetOpsPerSecond: 100_000,
  };
  results.memory = {
    peakRssMb: Math.round(peakRss / 2 ** 20),
    rssBeforeMb: Math.round(rssBefore / 2 ** 20),
    targetPeakRssMb: 200,
  };
  log('write', results.write);
  log('memory', results.memory);

  start = performance.now();
  let ops = 0;
  let chunks = 0;
  for await (const chunk of config.getBucketData({
    checkpoint: checkpoint.opId,
    buckets: [{ bucket: 'global[]', after: 0n }],
  })) {
    ops += chunk.ops.length;
    chunks++;
  }
  seconds = (performance.now() - start) / 1000;
  results.read = {
    ops,
    chunks,
    seconds: round(seconds),
    opsPerSecond: Math.round(ops / seconds),
    targetOpsPerSecond: 300_000,
  };
  log('read', results.read);

  // Cold: a fresh storage instance has no cached checksums.
  const cold = await PostgresStorage.open({ uri: url, schema, maxPoolSize: 2 });
  const coldConfig = await cold.getSyncConfig(config.configId);
  start = performance.now();
  await coldConfig.getChecksums(checkpoint.opId, ['global[]']);
  const coldMs = performance.now() - start;
  start = performance.now();
  const cached = (await coldConfig.getChecksums(checkpoint.opId, ['global[]'])).get('global[]');
  const cachedMs = performance.now() - start;
  await cold.close();
  results.checksum = {
    ops: cached.count,
    coldMs: round(coldMs),
    cachedMs: round(cachedMs),
    targetColdMs: 1000,
    targetCachedMs: 50,
  };
  log('checksum', results.checksum);
} finally {
  clearInterval(sampler);
  await storage.teardown().catch(() => undefined);
  await storage.close();
  await databases?.stop();
}
results.memory.peakRssMb = Math.max(results.memory.peakRssMb, Math.round(peakRss / 2 ** 20));
if (process.env.BENCH_RESULTS_FILE)
  writeFileSync(process.env.BENCH_RESULTS_FILE, JSON.stringify({ storage: results }, null, 2));

function round(n) {
  return Math.round(n * 1000) / 1000;
}
function log(name, figures) {
  console.log(`[storage bench] ${name}: ${JSON.stringify(figures)}`);
}
