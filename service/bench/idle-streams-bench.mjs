#!/usr/bin/env node
// `npm run bench -- idle-streams` (issue 13): with 2,000 sync streams open and idle, does a new
// client still get its first checkpoint within 200 ms p99? The built `bucketsync start` (as a
// user starts it) serves a `todos` table (200,000 rows over 2,500 users, one `by_user` bucket
// each) and a small global bucket, source and storage in two throwaway Postgres clusters. Two
// client processes (this file with IDLE_STREAMS_CLIENT=holder / prober, driven over stdin and
// stdout): the holder opens the idle streams and reads what reaches them; the prober times new
// clients one after the other and 10 at a time, from the request to the first `checkpoint` line
// and to `checkpoint_complete`, with no writes and under a trickle of single-row writes (10/s),
// each a checkpoint that wakes every idle stream. Also measured, to tell where time goes: the
// service's RSS and CPU, its liveness probe's latency (its event loop), checkpoints committed,
// the storage cluster's CPU and top statements (pg_stat_statements), the clients' CPU and event
// loop, and the CPU the machine's other processes used. Figures only: a slow run never fails.
// Knobs: BENCH_IDLE_STREAMS (2000), BENCH_IDLE_ROWS (200000), BENCH_IDLE_USERS (2500),
// BENCH_IDLE_NEW_CLIENTS (300), BENCH_IDLE_CONCURRENCY (10), BENCH_IDLE_WRITES_PER_SECOND (10),
// BENCH_IDLE_WINDOW_SECONDS (15); for diagnosis, BENCH_IDLE_SERVICE_NODE_ARGS (Node flags for
// the service alone, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { cleanStaleRuns, createRunDirectory, freePort, startPostgres } from '@bucketsync/dev-databases';
import { signDevToken } from '@bucketsync/service-core';
import pg from 'pg';

const here = path.dirname(fileURLToPath(import.meta.url));
const knob = (name, fallback) => Number(process.env[name] ?? fallback);
const IDLE_STREAMS = knob('BENCH_IDLE_STREAMS', 2000);
const ROWS = knob('BENCH_IDLE_ROWS', 200_000);
const USERS = knob('BENCH_IDLE_USERS', 2500);
const NEW_CLIENTS = knob('BENCH_IDLE_NEW_CLIENTS', 300);
const CONCURRENCY = knob('BENCH_IDLE_CONCURRENCY', 10);
const WRITES_PER_SECOND = knob('BENCH_IDLE_WRITES_PER_SECOND', 10);
const WINDOW_SECONDS = knob('BENCH_IDLE_WINDOW_SECONDS', 15);
/** Streams opened at once while setting up the idle ones (not measured against the target). */
const OPEN_CONCURRENCY = 50;
const GLOBAL_ROWS = 20;
const TARGET_P99_MS = 200;

/** Nearest-rank percentile of unsorted numbers, rounded to 0.1. */
function percentile(values, p) {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] * 10) / 10;
}
const summary = (values) => ({
  p50: percentile(values, 0.5),
  p95: percentile(values, 0.95),
  p99: percentile(values, 0.99),
  max: percentile(values, 1),
});

/** Runs `task(i)` for i < count, at most `concurrency` at a time. */
async function pool(count, concurrency, task) {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

if (process.env.IDLE_STREAMS_CLIENT) await runClient();
else await runBench();

// ---------------------------------------------------------------------------------------------
// A client process (the holder of the idle streams, or the prober of new clients), on commands
// from stdin (one JSON object a line), answering each with one JSON line on stdout.

async function runClient() {
  const endpoint = new URL(process.env.ENDPOINT);
  const key = JSON.parse(process.env.KEY);
  const token = (sub) => signDevToken({ key, sub, audience: 'bucketsync', expiresInSeconds: 3600 });
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();

  /**
   * POST /sync/stream on a socket of its own (as a new device connects), NDJSON, the body the
   * SDKs send; `onLine` gets each line, `onEnd` the end (an error for a status other than 200).
   */
  function syncRequest(bearer, onLine, onEnd) {
    const body = JSON.stringify({
      buckets: [],
      include_checksum: true,
      raw_data: true,
      client_id: randomUUID(),
      parameters: {},
    });
    const req = http.request({
      host: endpoint.hostname,
      port: endpoint.port,
      path: '/sync/stream',
      method: 'POST',
      agent: false,
      headers: {
        authorization: `Token ${bearer}`,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        accept: 'application/x-ndjson',
      },
    });
    let ended = false;
    const end = (error) => {
      if (!ended) onEnd(error);
      ended = true;
    };
    req.on('response', (res) => {
      res.setEncoding('utf8');
      let pending = '';
      if (res.statusCode !== 200) {
        res.on('data', (d) => (pending += d));
        res.on('end', () => end(new Error(`HTTP ${res.statusCode}: ${pending.slice(0, 300)}`)));
        return;
      }
      res.on('data', (chunk) => {
        pending += chunk;
        let start = 0;
        for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n', start)) {
          onLine(pending.slice(start, nl));
          start = nl + 1;
        }
        pending = pending.slice(start);
      });
      res.on('close', () => end(res.complete ? new Error('the service ended the stream') : undefined));
    });
    req.on('error', (e) => end(e));
    req.end(body);
    return req;
  }

  /** The kind of a line, from its first key (the service writes one key per line). */
  const kindOf = (line) => /^\{"(\w+)"/.exec(line)?.[1] ?? 'other';

  const idle = [];
  let idleLines = {};
  let idleDropped = 0;
  const idleErrors = [];

  /** Opens `count` idle streams (users u0, u1, ...), each until its first checkpoint_complete. */
  async function open({ count, concurrency }) {
    const started = performance.now();
    const complete = [];
    await pool(count, concurrency, async (i) => {
      const user = `u${i % Number(process.env.USERS)}`;
      const bearer = await token(user);
      await new Promise((resolve) => {
        const t0 = performance.now();
        const stream = { user, ready: false, req: undefined };
        stream.req = syncRequest(
          bearer,
          (line) => {
            const kind = kindOf(line);
            if (stream.ready) idleLines[kind] = (idleLines[kind] ?? 0) + 1;
            else if (kind === 'checkpoint_complete') {
              stream.ready = true;
              complete.push(performance.now() - t0);
              idle.push(stream);
              resolve();
            }
          },
          (error) => {
            if (stream.ready) idleDropped++;
            else if (idleErrors.length < 5) idleErrors.push(String(error?.message ?? error));
            stream.ready = false;
            resolve();
          },
        );
      });
    });
    return {
      open: idle.length,
      seconds: (performance.now() - started) / 1000,
      checkpointCompleteMs: summary(complete),
      failed: count - complete.length,
      errors: idleErrors,
    };
  }

  /** One new client: ms from the request to the first `checkpoint` line and to `checkpoint_complete`. */
  async function newClient(user) {
    const bearer = await token(user); // signed before the clock starts, as a device holds its token
    return new Promise((resolve) => {
      const startedAt = Date.now();
      const t0 = performance.now();
      let first;
      let expectedOps = 0;
      let ops = 0;
      let buckets = 0;
      const req = syncRequest(
        bearer,
        (line) => {
          const kind = kindOf(line);
          if (kind === 'checkpoint' && first === undefined) {
            first = performance.now() - t0;
            const checkpoint = JSON.parse(line).checkpoint;
            buckets = checkpoint.buckets.length;
            for (const b of checkpoint.buckets) expectedOps += b.count;
          } else if (kind === 'data') ops += JSON.parse(line).data.data.length;
          else if (kind === 'checkpoint_complete' && first !== undefined) {
            const complete = performance.now() - t0;
            req.destroy();
            resolve({ startedAt, first, complete, buckets, ops, expectedOps });
          }
        },
        (error) => resolve({ error: String(error?.message ?? error) }),
      );
    });
  }

  async function measure({ count, concurrency }) {
    loop.reset();
    const cpu = process.cpuUsage();
    const started = performance.now();
    const results = [];
    await pool(count, concurrency, async () => {
      results.push(await newClient(`u${Math.floor(Math.random() * Number(process.env.USERS))}`));
    });
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    const ok = results.filter((r) => r.error === undefined);
    return {
      seconds,
      firstCheckpointMs: summary(ok.map((r) => r.first)),
      checkpointCompleteMs: summary(ok.map((r) => r.complete)),
      // [epoch ms at the request, ms to the first checkpoint, ms to checkpoint_complete]
      timeline: ok.map((r) => [r.startedAt, Math.round(r.first * 10) / 10, Math.round(r.complete * 10) / 10]),
      failed: results.length - ok.length,
      errors: [...new Set(results.filter((r) => r.error).map((r) => r.error))].slice(0, 5),
      // Every new client gets its user's bucket and the global one, and every op the checkpoint counts.
      wrongBuckets: ok.filter((r) => r.buckets !== 2).length,
      incomplete: ok.filter((r) => r.ops !== r.expectedOps).length,
      clientCpuPercent: Math.round(((used.user + used.system) / 1000 / (seconds * 1000)) * 1000) / 10,
      clientLoopDelayMs: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
    };
  }

  /** Lines the idle streams received since the last call, by kind, and how many are still open. */
  function idleStats() {
    const lines = idleLines;
    idleLines = {};
    return { open: idle.filter((s) => s.ready).length, dropped: idleDropped, lines };
  }

  const commands = { open, measure, idleStats };
  for await (const line of createInterface({ input: process.stdin })) {
    const { op, ...args } = JSON.parse(line);
    if (op === 'close') break;
    process.stdout.write(`${JSON.stringify(await commands[op](args))}\n`);
  }
  for (const s of idle) s.req.destroy();
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// The bench: databases, the service, the trickle of writes, the samplers, the scenarios.

/**
 * CPU seconds (user + system) and RSS in MB of a process; with `withChildren` (a Postgres
 * cluster: the postmaster and a process per connection) also its live children's, and the CPU
 * of the children it reaped (cutime, cstime). Undefined once gone.
 */
function sampleProcess(pid, withChildren) {
  const stat = (p) => {
    const text = readFileSync(`/proc/${p}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  };
  const rss = (p) => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  try {
    const f = stat(pid);
    let ticks = Number(f[11]) + Number(f[12]);
    let mb = rss(pid);
    if (withChildren) {
      ticks += Number(f[13]) + Number(f[14]);
      for (const name of readdirSync('/proc')) {
        if (!/^\d+$/.test(name)) continue;
        try {
          const c = stat(name);
          if (Number(c[1]) !== pid) continue;
          ticks += Number(c[11]) + Number(c[12]);
          mb += rss(name);
        } catch {
          // exited meanwhile
        }
      }
    }
    // USER_HZ is 100 on every mainstream Linux.
    return { cpuSeconds: ticks / 100, rssMb: mb };
  } catch {
    return undefined;
  }
}

/**
 * The machine: CPU seconds used by everything (all cores, /proc/stat) and seconds some task
 * waited for a CPU (/proc/pressure/cpu): the other work on a shared machine shows here.
 */
function sampleMachine() {
  const busy = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]
    .split(/\s+/)
    .slice(1)
    .map(Number)
    .filter((_, i) => i !== 3 && i !== 4) // idle, iowait
    .slice(0, 6)
    .reduce((a, b) => a + b, 0);
  let waitingSeconds;
  try {
    waitingSeconds = Number(/^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'))?.[1]) / 1e6;
  } catch {
    // no PSI in this kernel
  }
  return { cpuSeconds: busy / 100, waitingSeconds };
}

/** Runs the scenarios, then stops what they started (in reverse order) even after a failure. */
async function runBench() {
  const cleanups = [];
  let outcome;
  try {
    outcome = await benchScenarios(cleanups);
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await Promise.resolve()
        .then(cleanup)
        .catch((e) => console.error(`cleanup: ${e?.message ?? e}`));
    }
  }
  const { report, failed, p99s, loadAtStart, save } = outcome;
  const loadAtEnd = os.loadavg().map((l) => Math.round(l * 100) / 100);
  report.environment.loadAverage = { atStart: loadAtStart, atEnd: loadAtEnd };
  save();
  console.log(`\nLoad average at start: ${loadAtStart.join(' ')}, at end: ${loadAtEnd.join(' ')}`);
  const met =
    p99s.sequential !== undefined &&
    p99s.concurrent !== undefined &&
    Math.max(p99s.sequential, p99s.concurrent) <= TARGET_P99_MS;
  console.log(
    `Verdict: with ${IDLE_STREAMS.toLocaleString('en-US')} idle streams, first checkpoint p99 ${p99s.sequential ?? '?'} ms one after the other, ${p99s.concurrent ?? '?'} ms ${CONCURRENCY} at a time: target (p99 <= ${TARGET_P99_MS} ms) ${met ? 'met' : 'MISSED'}.`,
  );
  console.log(`${report.scenarios.length} scenario(s), ${failed} failed.`);
  process.exit(failed > 0 ? 1 : 0);
}

async function benchScenarios(cleanups) {
  const report = { bench: 'idle-streams', environment: {}, scenarios: [] };
  let failed = 0;
  const save = () =>
    process.env.BENCH_RESULTS_FILE &&
    writeFileSync(process.env.BENCH_RESULTS_FILE, `${JSON.stringify(report, null, 2)}\n`);
  const load = () => os.loadavg().map((l) => Math.round(l * 100) / 100);
  const loadAtStart = load();
  console.log(`Load average at start: ${loadAtStart.join(' ')} (${os.cpus().length} cores)`);

  // Two clusters, so that the storage's CPU and statements are the sync API's alone.
  await cleanStaleRuns();
  const runDir = createRunDirectory();
  cleanups.push(() => rmSync(runDir, { recursive: true, force: true }));
  const startCluster = async (name, settings = {}) => {
    mkdirSync(path.join(runDir, name));
    return startPostgres({
      dataDir: path.join(runDir, name, 'data'),
      port: await freePort(),
      databases: [`bucketsync_${name}`],
      settings,
    });
  };
  const sourceServer = await startCluster('source');
  cleanups.push(() => sourceServer.stop());
  const storageServer = await startCluster('storage', { shared_preload_libraries: 'pg_stat_statements' });
  cleanups.push(() => storageServer.stop());
  const sourceUrl = sourceServer.databaseUrl('bucketsync_source');
  const storageUrl = storageServer.databaseUrl('bucketsync_storage');
  const source = new pg.Client({ connectionString: sourceUrl });
  await source.connect();
  cleanups.push(() => source.end());
  const storageDb = new pg.Client({ connectionString: storageUrl });
  await storageDb.connect();
  cleanups.push(() => storageDb.end());
  await storageDb.query('CREATE EXTENSION pg_stat_statements');
  report.environment.postgres = {
    version: (await source.query('SHOW server_version')).rows[0].server_version,
    server: 'two throwaway clusters from scripts/dev-databases: source, and storage (with pg_stat_statements)',
    settings: Object.fromEntries(
      (
        await source.query(
          `SELECT name, current_setting(name) AS value FROM pg_settings
            WHERE name IN ('wal_level', 'fsync', 'synchronous_commit', 'shared_buffers', 'max_connections') ORDER BY name`,
        )
      ).rows.map((r) => [r.name, r.value]),
    ),
  };

  console.log(
    `Loading ${ROWS.toLocaleString('en-US')} rows over ${USERS.toLocaleString('en-US')} users, and ${GLOBAL_ROWS} global rows...`,
  );
  await source.query(`CREATE SCHEMA idle;
    CREATE TABLE idle.todos (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), owner text NOT NULL,
      description text, done int, created_at timestamptz NOT NULL DEFAULT now());
    INSERT INTO idle.todos (owner, description, done)
      SELECT 'u' || (i % ${USERS}), 'todo number ' || i || ' ' || repeat('x', 60), i % 2 FROM generate_series(1, ${ROWS}) i;
    CREATE TABLE idle.lists (id int PRIMARY KEY, name text NOT NULL);
    INSERT INTO idle.lists SELECT i, 'list ' || i FROM generate_series(1, ${GLOBAL_ROWS}) i;
    CREATE PUBLICATION idle FOR TABLES IN SCHEMA idle;`);

  // The service, started as a user starts it (as sdk-bench.mjs does).
  const dir = mkdtempSync(path.join(os.tmpdir(), 'idle-streams-bench-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const key = { kty: 'oct', alg: 'HS256', kid: 'bench', k: randomBytes(32).toString('base64url') };
  const maxConnections = IDLE_STREAMS + 1000;
  const configFile = path.join(dir, 'service.yaml');
  writeFileSync(
    configFile,
    [
      'replication:',
      '  connections:',
      '    - type: postgresql',
      `      uri: ${sourceUrl}`,
      '      publication_name: idle',
      'storage:',
      '  type: postgresql',
      `  uri: ${storageUrl}`,
      'sync_config:',
      '  content: |',
      '    bucket_definitions:',
      '      by_user:',
      '        parameters: SELECT request.user_id() AS owner',
      '        data:',
      '          - SELECT * FROM idle.todos WHERE owner = bucket.owner',
      '      global:',
      '        data:',
      '          - SELECT * FROM idle.lists',
      'client_auth:',
      '  jwks:',
      `    keys: [${JSON.stringify(key)}]`,
      '  audience: [bucketsync]',
      'api:',
      '  parameters:',
      `    max_concurrent_connections: ${maxConnections}`,
      'port: 0',
      'host: 127.0.0.1',
    ].join('\n'),
  );
  const replicationStarted = Date.now();
  // As a user starts it; with BENCH_IDLE_SERVICE_NODE_ARGS (diagnosis), through `node <args>`.
  const bin = path.resolve(here, '../bin/bucketsync');
  const nodeArgs = process.env.BENCH_IDLE_SERVICE_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const service = spawn(
    nodeArgs.length > 0 ? process.execPath : bin,
    [...(nodeArgs.length > 0 ? [...nodeArgs, bin] : []), 'start', '-c', configFile],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } },
  );
  const exited = new Promise((r) => service.once('exit', r));
  cleanups.push(async () => {
    service.kill('SIGTERM');
    await exited;
  });
  let serviceOutput = '';
  service.stdout.on('data', (d) => (serviceOutput += d));
  service.stderr.on('data', (d) => (serviceOutput += d));
  const endpoint = await new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      const port = /serving clients on[^\n]*"port":(\d+)/.exec(serviceOutput)?.[1];
      if (port && serviceOutput.includes('first consistent checkpoint')) {
        clearInterval(timer);
        resolve(`http://127.0.0.1:${port}`);
      } else if (service.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(`the service exited:\n${serviceOutput.slice(-2000)}`));
      }
    }, 100);
  });
  const replicationSeconds = (Date.now() - replicationStarted) / 1000;
  const storageMb = Math.round(
    (await storageDb.query('SELECT pg_database_size(current_database()) AS bytes')).rows[0].bytes / 1048576,
  );
  console.log(`Service ready at ${endpoint}: replicated in ${replicationSeconds} s, storage ${storageMb} MB`);
  const openFiles = (pid) => /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))?.[1];

  // Two client processes: the holder keeps the idle streams, the prober times new clients (so
  // that reading the idle streams' lines never delays a measured one). Each raises its open-file
  // limit in its shell when it is too low for the streams.
  const need = IDLE_STREAMS + CONCURRENCY + 500;
  const spawnClient = (role) => {
    const child = spawn(
      '/bin/sh',
      [
        '-c',
        `if [ "$(ulimit -n)" -lt ${need} ]; then ulimit -n ${need} || exit 3; fi; exec "$0" "$@"`,
        process.execPath,
        fileURLToPath(import.meta.url),
      ],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
        env: {
          ...process.env,
          IDLE_STREAMS_CLIENT: role,
          ENDPOINT: endpoint,
          KEY: JSON.stringify(key),
          USERS: `${USERS}`,
        },
      },
    );
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin.on('error', () => undefined); // EPIPE once it has exited: its exit is what counts
    cleanups.push(async () => {
      child.stdin.end(`${JSON.stringify({ op: 'close' })}\n`);
      await exited;
    });
    const answers = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const ask = async (op, args = {}) => {
      child.stdin.write(`${JSON.stringify({ op, ...args })}\n`);
      const { value, done } = await answers.next();
      if (done) throw new Error(`the ${role} process exited (${child.exitCode}) during ${op}`);
      return JSON.parse(value);
    };
    return { pid: child.pid, ask };
  };
  const holder = spawnClient('holder');
  const prober = spawnClient('prober');
  await new Promise((r) => setTimeout(r, 200));
  const limits = { serviceOpenFiles: openFiles(service.pid), clientOpenFiles: openFiles(holder.pid) };

  // Checkpoints committed by the replication: the storage's notifications (the service's
  // checkpoint fan-out listens on the same channel; `{"w":...}` ones are write checkpoints).
  const checkpointsAt = [];
  storageDb.on('notification', (n) => !n.payload?.startsWith('{"w"') && checkpointsAt.push(Date.now()));
  await storageDb.query('LISTEN bucketsync_checkpoints');

  // Samplers: the service, the storage cluster, the client (CPU, RSS) every 250 ms; the
  // service's liveness probe every 100 ms (it answers from the event loop at once, so its
  // latency is the loop's delay plus a keep-alive request's).
  const samples = [];
  const pings = [];
  const sampleTimer = setInterval(() => {
    samples.push({
      at: Date.now(),
      service: sampleProcess(service.pid, false),
      storage: sampleProcess(storageServer.pid, true),
      source: sampleProcess(sourceServer.pid, true),
      holder: sampleProcess(holder.pid, false),
      prober: sampleProcess(prober.pid, false),
      bench: { cpuSeconds: (({ user, system }) => (user + system) / 1e6)(process.cpuUsage()) },
      machine: sampleMachine(),
    });
  }, 250);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  cleanups.push(() => {
    clearInterval(sampleTimer);
    clearInterval(pingTimer);
    agent.destroy();
  });
  let pinging = false;
  const pingTimer = setInterval(() => {
    if (pinging) return;
    pinging = true;
    const t0 = performance.now();
    http
      .get(`${endpoint}/probes/liveness`, { agent }, (res) => {
        res.resume();
        res.on('end', () => {
          pings.push({ at: Date.now(), ms: performance.now() - t0 });
          pinging = false;
        });
      })
      .on('error', () => (pinging = false));
  }, 100);

  // The trickle: single-row inserts for random users, each its own transaction (a checkpoint).
  let trickleTimer;
  let writes = 0;
  let writesSkipped = 0;
  const startTrickle = () => {
    let busy = false;
    trickleTimer = setInterval(() => {
      if (busy) return void writesSkipped++;
      busy = true;
      source
        .query(`INSERT INTO idle.todos (owner, description, done) VALUES ($1, 'a trickled todo', 0)`, [
          `u${Math.floor(Math.random() * USERS)}`,
        ])
        .then(() => writes++)
        .finally(() => (busy = false));
    }, 1000 / WRITES_PER_SECOND);
  };
  const stopTrickle = () => clearInterval(trickleTimer);

  /** Figures of a time window: CPU (% of one core), RSS, liveness latency, storage statements. */
  const windowStats = async (from, to) => {
    const inside = samples.filter((s) => s.at >= from && s.at <= to);
    const rate = (who, field = 'cpuSeconds') => {
      const a = inside.find((s) => s[who]?.[field] !== undefined);
      const b = inside.findLast((s) => s[who]?.[field] !== undefined);
      return a && b && b.at > a.at ? ((b[who][field] - a[who][field]) / ((b.at - a.at) / 1000)) * 100 : undefined;
    };
    const cpu = (who) => (rate(who) === undefined ? undefined : Math.round(rate(who) * 10) / 10);
    const waiting = rate('machine', 'waitingSeconds');
    const ours = ['service', 'storage', 'source', 'holder', 'prober', 'bench'].reduce(
      (sum, who) => sum + (rate(who) ?? 0),
      0,
    );
    const rss = inside.map((s) => s.service?.rssMb).filter((v) => v !== undefined);
    return {
      serviceCpuPercent: cpu('service'),
      serviceRssMb: rss.length ? Math.round(rss[rss.length - 1]) : undefined,
      servicePeakRssMb: rss.length ? Math.round(Math.max(...rss)) : undefined,
      storageCpuPercent: cpu('storage'),
      sourceCpuPercent: cpu('source'),
      holderCpuPercent: cpu('holder'),
      proberCpuPercent: cpu('prober'),
      benchCpuPercent: cpu('bench'),
      machineCpuPercent: cpu('machine'),
      // CPU used by processes not of this bench (other work on the machine), % of one core.
      othersCpuPercent: rate('machine') === undefined ? undefined : Math.round(Math.max(0, rate('machine') - ours)),
      // Share of the time some runnable task waited for a CPU (PSI "some").
      cpuWaitPercent: waiting === undefined ? undefined : Math.round(waiting),
      checkpointsPerSecond:
        Math.round((checkpointsAt.filter((t) => t >= from && t <= to).length / ((to - from) / 1000)) * 10) / 10,
      livenessMs: summary(pings.filter((p) => p.at >= from && p.at <= to).map((p) => p.ms)),
    };
  };
  const topStatements = async () =>
    (
      await storageDb.query(
        `SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms,
                left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query
           FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND query NOT LIKE '%pg_stat_statements%'
          ORDER BY total_exec_time DESC LIMIT 8`,
      )
    ).rows.map((r) => ({
      calls: Number(r.calls),
      totalMs: Number(r.total_ms),
      meanMs: Number(r.mean_ms),
      query: r.query,
    }));

  const data = {
    source: `idle.todos: ${ROWS.toLocaleString('en-US')} rows (uuid id, owner, ~80-byte description, int, timestamptz) over ${USERS.toLocaleString('en-US')} users u0..u${USERS - 1}; idle.lists: ${GLOBAL_ROWS} rows`,
    syncConfig:
      'by_user (parameters: SELECT request.user_id() AS owner; data: todos of the owner) and global (every list)',
    storage: `${storageMb} MB after replicating (pg_database_size), replicated in ${replicationSeconds} s (not measured here)`,
    service: `built \`bucketsync start -c <config>\`, unified role, api.parameters.max_concurrent_connections: ${maxConnections}, storage pool at its default (10)`,
    request:
      'POST /sync/stream from nothing, NDJSON, identity encoding, the SDKs body (client_id, include_checksum, raw_data), raw node:http, one socket per stream',
    openFileLimits: limits,
  };

  /** One scenario: its figures, the samples of its window as series, its storage statements. */
  async function scenario({ id, title, workload }, body) {
    console.log(`\nScenario ${id}: ${title}`);
    const started = Date.now();
    const entry = { id, title, startedAt: new Date(started).toISOString(), workload, figures: [], series: [] };
    report.scenarios.push(entry);
    entry.error = 'did not finish: the bench stopped during this scenario';
    save();
    delete entry.error;
    await storageDb.query('SELECT pg_stat_statements_reset()');
    const figure = (name, label, value, unit, target) =>
      value !== undefined && entry.figures.push({ name, label, value, unit, ...(target ? { target } : {}) });
    try {
      await body({ figure, entry });
    } catch (e) {
      failed++;
      entry.error = String(e?.stack ?? e);
      console.error(`Scenario ${id} failed:`, e);
    }
    const ended = Date.now();
    const w = await windowStats(started, ended);
    figure('serviceCpuPercent', 'service CPU over the scenario (% of one core)', w.serviceCpuPercent, '%');
    figure('servicePeakRssMB', 'peak RSS of the service process', w.servicePeakRssMb, 'MB');
    figure('storageCpuPercent', 'storage Postgres CPU over the scenario (% of one core)', w.storageCpuPercent, '%');
    figure('livenessP99Ms', 'service liveness probe latency p99 (event loop)', w.livenessMs.p99, 'ms');
    figure('checkpointsPerSecond', 'checkpoints committed per second', w.checkpointsPerSecond, 'checkpoints/s');
    figure('othersCpuPercent', 'CPU of processes not of this bench (% of one core)', w.othersCpuPercent, '%');
    figure('cpuWaitPercent', 'time some task waited for a CPU (PSI)', w.cpuWaitPercent, '%');
    const inside = samples.filter((s) => s.at >= started && s.at <= ended && s.service);
    entry.series.push({
      name: 'serviceRss',
      label: 'RSS of the service process',
      unit: 'MB',
      points: inside.map((s) => [s.at - started, Math.round(s.service.rssMb)]),
    });
    entry.series.push({
      name: 'livenessMs',
      label: 'service liveness probe latency',
      unit: 'ms',
      points: pings.filter((p) => p.at >= started && p.at <= ended).map((p) => [p.at - started, Math.round(p.ms)]),
    });
    entry.diagnostics = { window: w, storageStatements: await topStatements(), loadAverageAtEnd: load() };
    entry.seconds = (ended - started) / 1000;
    save();
    for (const f of entry.figures) {
      const target = f.target ? ` (target <= ${f.target.max})` : '';
      console.log(`  ${f.label}: ${f.value.toLocaleString('en-US')} ${f.unit}${target}`);
    }
  }

  /** Times new clients and records the figures; returns the first-checkpoint p99. */
  async function newClients(s, concurrency) {
    const before = writes;
    const r = await prober.ask('measure', { count: NEW_CLIENTS, concurrency });
    const idleAfter = await holder.ask('idleStats');
    for (const [name, label, values, target] of [
      ['firstCheckpoint', 'first checkpoint line', r.firstCheckpointMs, { max: TARGET_P99_MS }],
      ['checkpointComplete', 'checkpoint_complete', r.checkpointCompleteMs],
    ]) {
      for (const p of ['p50', 'p95', 'p99', 'max']) {
        s.figure(`${name}${p.toUpperCase()}Ms`, `${label} ${p}`, values[p], 'ms', p === 'p99' ? target : undefined);
      }
    }
    s.figure('clients', 'new clients measured', NEW_CLIENTS - r.failed, 'clients');
    s.figure('failed', 'new clients that failed', r.failed, 'clients');
    s.figure('trickledWrites', 'rows written to the source meanwhile', writes - before, 'rows');
    s.figure('proberCpuPercent', 'prober process CPU (% of one core)', r.clientCpuPercent, '%');
    s.figure('proberLoopDelayP99Ms', 'prober event loop delay p99', Math.round(r.clientLoopDelayMs.p99), 'ms');
    // Attribution: clients during whose wait for the first checkpoint the replication committed a
    // checkpoint (which every idle stream wakes for), against those during whose wait it did not.
    const hit = ([at, first]) => checkpointsAt.some((t) => t >= at && t <= at + first);
    const during = r.timeline.filter(hit).map(([, first]) => first);
    const outside = r.timeline.filter((c) => !hit(c)).map(([, first]) => first);
    s.figure(
      'clientsDuringCheckpoint',
      'new clients that waited across a committed checkpoint',
      during.length,
      'clients',
    );
    s.figure('firstCheckpointDuringCheckpointP99Ms', 'their first checkpoint p99', percentile(during, 0.99), 'ms');
    s.figure(
      'firstCheckpointOutsideCheckpointP99Ms',
      'first checkpoint p99 of the others',
      percentile(outside, 0.99),
      'ms',
    );
    s.entry.diagnostics = { timeline: r.timeline };
    if (r.failed) console.log(`  errors: ${r.errors.join('; ')}`);
    if (r.wrongBuckets || r.incomplete)
      throw new Error(`${r.wrongBuckets} clients got other than 2 buckets, ${r.incomplete} got fewer ops than counted`);
    if (idleAfter.open !== IDLE_STREAMS && s.entry.workload.idleStreams > 0)
      throw new Error(`${IDLE_STREAMS - idleAfter.open} idle streams were dropped (${idleAfter.dropped} ended)`);
    return r.firstCheckpointMs.p99;
  }

  const measured = (concurrency, idleStreams, writes = true) => ({
    ...data,
    idleStreams,
    newClients: NEW_CLIENTS,
    concurrency: concurrency === 1 ? 'one after the other' : `${concurrency} at a time`,
    users: `new clients for random users of the ${USERS.toLocaleString('en-US')} (each gets ~${Math.round(ROWS / USERS)} todos and the ${GLOBAL_ROWS} lists)`,
    writes: writes
      ? `${WRITES_PER_SECOND} single-row inserts/s into idle.todos for random users, each its own transaction, throughout`
      : 'none (no checkpoint wakes the idle streams; keepalives only)',
    measured:
      'in the client process: from http.request() to the first `checkpoint` line, and to `checkpoint_complete` (token signed beforehand)',
  });

  const p99s = {};
  try {
    startTrickle();
    // (1) Reference: the same new clients with no stream open, under the trickle.
    for (const concurrency of [1, CONCURRENCY]) {
      const how = concurrency === 1 ? 'sequential' : 'concurrent';
      await scenario(
        {
          id: `idle-streams-none-${how}`,
          title: `New clients, no idle stream open, ${concurrency === 1 ? 'one after the other' : `${concurrency} at a time`}`,
          workload: measured(concurrency, 0),
        },
        async (s) => void (await newClients(s, concurrency)),
      );
    }
    stopTrickle();

    // (2) The idle streams: opened, then idle without writes, then idle under the trickle.
    await scenario(
      {
        id: 'idle-streams-idle',
        title: `${IDLE_STREAMS.toLocaleString('en-US')} idle streams: opening, then idle without and with writes`,
        workload: {
          ...data,
          idleStreams: IDLE_STREAMS,
          users: `stream i for user u(i mod ${USERS}), each its own socket`,
          opening: `${OPEN_CONCURRENCY} at a time, each until its first checkpoint_complete`,
          windows: `${WINDOW_SECONDS} s without writes, then ${WINDOW_SECONDS} s with ${WRITES_PER_SECOND} single-row inserts/s`,
        },
      },
      async (s) => {
        const opened = await holder.ask('open', { count: IDLE_STREAMS, concurrency: OPEN_CONCURRENCY });
        if (opened.failed) console.log(`  ${opened.failed} streams failed to open: ${opened.errors.join('; ')}`);
        s.figure('openStreams', 'idle streams open', opened.open, 'streams');
        s.figure(
          'openSeconds',
          `time to open them, ${OPEN_CONCURRENCY} at a time`,
          Math.round(opened.seconds * 10) / 10,
          's',
        );
        s.figure(
          'openCompleteP99Ms',
          'their checkpoint_complete p99 while opening',
          opened.checkpointCompleteMs.p99,
          'ms',
        );
        await holder.ask('idleStats');
        await new Promise((r) => setTimeout(r, 2000)); // settle after the opening burst
        for (const [name, trickle] of [
          ['quiet', false],
          ['writes', true],
        ]) {
          if (trickle) startTrickle();
          const before = writes;
          const from = Date.now();
          await holder.ask('idleStats');
          await new Promise((r) => setTimeout(r, WINDOW_SECONDS * 1000));
          const stats = await holder.ask('idleStats');
          const to = Date.now();
          if (trickle) stopTrickle();
          const w = await windowStats(from, to);
          const label = trickle ? `idle, ${WRITES_PER_SECOND} writes/s` : 'idle, no writes';
          s.figure(`${name}ServiceRssMB`, `service RSS, ${label}`, w.serviceRssMb, 'MB');
          s.figure(`${name}ServiceCpuPercent`, `service CPU, ${label} (% of one core)`, w.serviceCpuPercent, '%');
          s.figure(`${name}StorageCpuPercent`, `storage Postgres CPU, ${label}`, w.storageCpuPercent, '%');
          s.figure(`${name}LivenessP99Ms`, `liveness probe p99, ${label}`, w.livenessMs.p99, 'ms');
          s.figure(`${name}CheckpointsPerSecond`, `checkpoints/s, ${label}`, w.checkpointsPerSecond, 'checkpoints/s');
          s.figure(`${name}OthersCpuPercent`, `CPU of other processes, ${label}`, w.othersCpuPercent, '%');
          const lines = Object.values(stats.lines).reduce((a, b) => a + b, 0);
          s.figure(
            `${name}LinesPerSecond`,
            `lines/s received by the idle streams, ${label}`,
            Math.round(lines / WINDOW_SECONDS),
            'lines/s',
          );
          if (trickle)
            s.figure(
              'writesPerSecond',
              'writes/s achieved',
              Math.round(((writes - before) / WINDOW_SECONDS) * 10) / 10,
              'rows/s',
            );
          s.entry.diagnostics = { ...s.entry.diagnostics, [`${name}Lines`]: stats.lines, [`${name}Window`]: w };
          if (stats.open !== IDLE_STREAMS) throw new Error(`${IDLE_STREAMS - stats.open} idle streams were dropped`);
        }
      },
    );

    // (3) New clients with the idle streams open and no writes: what holding them costs alone.
    await scenario(
      {
        id: 'idle-streams-new-sequential-no-writes',
        title: `New clients with ${IDLE_STREAMS.toLocaleString('en-US')} idle streams open and no writes, one after the other`,
        workload: measured(1, IDLE_STREAMS, false),
      },
      async (s) => void (await newClients(s, 1)),
    );

    // (4), (5) New clients with the idle streams open, under the trickle.
    startTrickle();
    for (const concurrency of [1, CONCURRENCY]) {
      const id = `idle-streams-new-${concurrency === 1 ? 'sequential' : 'concurrent'}`;
      await scenario(
        {
          id,
          title: `New clients with ${IDLE_STREAMS.toLocaleString('en-US')} idle streams open, ${concurrency === 1 ? 'one after the other' : `${concurrency} at a time`}`,
          workload: measured(concurrency, IDLE_STREAMS),
        },
        async (s) => (p99s[concurrency === 1 ? 'sequential' : 'concurrent'] = await newClients(s, concurrency)),
      );
    }
    stopTrickle();
  } finally {
    stopTrickle();
  }
  return { report, failed, p99s, loadAtStart, save };
}
