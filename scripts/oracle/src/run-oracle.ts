/**
 * One oracle run: a fresh source and storage Postgres, the real service, real clients, a
 * random workload and random faults, in rounds; at the end of each round the workload stops and
 * every client must converge on exactly the rows the oracle computes from the source, with every
 * bucket checksum verified. See docs/reliability.md.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createRunDirectory, freePort, startPostgres, type RunningServer } from '@bucketsync/dev-databases';
import { signDevToken } from '@bucketsync/service-core';
import pg from 'pg';
import { PowerSyncClient, testClientFetch, type Endpoint } from './clients.js';
import { countRows, describeDifference, expectedRows, firstDifference, type ClientRows } from './expected.js';
import { Random } from './random.js';
import { CuttableProxy, ServiceProcess } from './service-process.js';
import {
  createSourceData,
  readSchemaState,
  SYNC_CONFIG,
  TAGS,
  USERS,
  WorkloadGenerator,
  type Transaction,
} from './workload.js';

export const FAULT_KINDS = ['kill-service', 'restart-source', 'restart-storage', 'cut-connections'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface OracleOptions {
  seed: number;
  /** Rounds to run; or, with `durationMs`, as many as fit. */
  rounds?: number;
  durationMs?: number;
  /** The faults of the first rounds, in order; later rounds draw theirs at random. */
  faultPlan?: FaultKind[];
  /** Kill the service once while it copies the initial snapshot (default true). */
  killDuringSnapshot?: boolean;
  /** Initial rows (default 30,000 docs, 10% of them TOASTed, and 20,000 events). */
  initialSize?: { docs: number; events: number };
  /** How long the workload runs in each round (default 4 to 12 s, drawn per round). */
  roundMs?: number;
  /** How long a client may take to converge after the workload stops (default 120 s). */
  convergeTimeoutMs?: number;
  /** Where to keep the databases, logs and operation log when a mismatch is found. */
  failureDir?: string;
  log?: (line: string) => void;
}

export interface OracleReport {
  seed: number;
  rounds: number;
  transactions: { committed: number; rolledBack: number; failed: number };
  /** Faults injected, by kind; a service kill is counted as during-snapshot or during-streaming. */
  faults: Record<string, number>;
  /** Test-client syncs whose checkpoint verified every bucket checksum. */
  checkpointsVerified: number;
  /** Client states compared with the oracle at the end of a round. */
  comparisons: number;
  rowsCompared: number;
  mismatches: string[];
  durationMs: number;
  /** Set when a mismatch kept the databases: where they are. */
  keptIn?: string;
}

class Mismatch extends Error {}

interface Cluster {
  server: RunningServer;
  dataDir: string;
}

async function startCluster(runDir: string, name: string): Promise<Cluster> {
  const dir = path.join(runDir, name);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const dataDir = path.join(dir, 'pgdata');
  const server = await startPostgres({ dataDir, port: await freePort(), databases: [name] });
  return { server, dataDir };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runOracle(options: OracleOptions): Promise<OracleReport> {
  const log = options.log ?? ((line: string) => console.log(line));
  const started = Date.now();
  const rng = new Random(options.seed);
  const workloadRng = rng.fork();
  const faultRng = rng.fork();
  const churnRng = rng.fork();
  const report: OracleReport = {
    seed: options.seed,
    rounds: 0,
    transactions: { committed: 0, rolledBack: 0, failed: 0 },
    faults: {},
    checkpointsVerified: 0,
    comparisons: 0,
    rowsCompared: 0,
    mismatches: [],
    durationMs: 0,
  };
  const countFault = (kind: string) => (report.faults[kind] = (report.faults[kind] ?? 0) + 1);

  const runDir = createRunDirectory();
  const opLogFile = path.join(runDir, 'operations.log');
  const serviceLogFile = path.join(runDir, 'service.log');
  writeFileSync(opLogFile, `seed ${options.seed}\n`);
  const opLog = (line: string) => appendFileSync(opLogFile, `${new Date().toISOString()} ${line}\n`);

  const source = await startCluster(runDir, 'source');
  const storage = await startCluster(runDir, 'storage');
  const sourceUrl = source.server.databaseUrl('source');
  const setup = new pg.Client({ connectionString: sourceUrl });
  await setup.connect();
  const { firstEventId } = await createSourceData(
    setup,
    workloadRng,
    options.initialSize ?? { docs: 30_000, events: 20_000 },
  );
  await setup.end();

  const key = { kty: 'oct', alg: 'HS256', kid: 'oracle', k: randomBytes(32).toString('base64url') };
  const servicePort = await freePort();
  writeFileSync(path.join(runDir, 'sync.yaml'), SYNC_CONFIG);
  const configFile = path.join(runDir, 'config.yaml');
  writeFileSync(
    configFile,
    [
      'replication:',
      '  connections:',
      '    - type: postgresql',
      `      uri: ${sourceUrl}`,
      '      publication_name: oracle',
      'storage:',
      '  type: postgresql',
      `  uri: ${storage.server.databaseUrl('storage')}`,
      'sync_config:',
      '  path: sync.yaml',
      'client_auth:',
      '  jwks:',
      `    keys: [${JSON.stringify(key)}]`,
      '  audience: [bucketsync]',
      `port: ${servicePort}`,
      'host: 127.0.0.1',
      '',
    ].join('\n'),
  );
  const service = new ServiceProcess(configFile, serviceLogFile);
  const proxy = new CuttableProxy(servicePort);
  await proxy.listen();
  const endpoint: Endpoint = {
    url: `http://127.0.0.1:${proxy.port}`,
    token: (user) => signDevToken({ key, sub: user, audience: 'bucketsync', expiresInSeconds: 3600 }),
  };

  const clientDir = path.join(runDir, 'clients');
  mkdirSync(clientDir);
  const clients = USERS.map((user) => new PowerSyncClient(user, clientDir, endpoint));
  const fetches: Promise<void>[] = [];
  let failure: Mismatch | undefined;
  const fail = (message: string) => {
    const full = `seed ${options.seed}, round ${report.rounds}: ${message}`;
    report.mismatches.push(full);
    failure ??= new Mismatch(full);
    return failure;
  };

  /** A test-client sync during a round: only its checksums can be judged (the source moves on). */
  const backgroundFetch = (user: string, tags: string[]) => {
    fetches.push(
      endpoint.token(user).then(async (token) => {
        const result = await testClientFetch(endpoint.url, token, tags, 20);
        if (result.ok) report.checkpointsVerified++;
        if (result.checksumMismatch) fail(`test-client as ${user} ${JSON.stringify(tags)}: ${result.message}`);
      }),
    );
  };

  // ---- the workload: runs until `stop` is aborted; errors (faults) end a transaction, not the loop.
  const generator = new WorkloadGenerator(workloadRng, { hasNotes: false, hasExtra: false }, { firstEventId });
  let transactionNumber = 0;
  const runWorkload = async (stop: AbortSignal) => {
    let client: pg.Client | undefined;
    while (!stop.aborted) {
      try {
        if (!client) {
          client = new pg.Client({ connectionString: sourceUrl });
          client.on('error', () => undefined);
          await client.connect();
          Object.assign(generator.schema, await readSchemaState(client));
        }
        const tx: Transaction = workloadRng.chance(0.01)
          ? generator.burst(workloadRng.int(500, 3000))
          : generator.transaction();
        const n = ++transactionNumber;
        try {
          await client.query('BEGIN');
          for (const s of tx.statements) await client.query(s.sql, s.params);
          await client.query(tx.rollback ? 'ROLLBACK' : 'COMMIT');
          if (tx.rollback) {
            report.transactions.rolledBack++;
            Object.assign(generator.schema, await readSchemaState(client));
          } else {
            report.transactions.committed++;
          }
          opLog(`#${n} ${tx.rollback ? 'rolled back' : 'committed'}: ${tx.label}`);
        } catch (e) {
          report.transactions.failed++;
          opLog(`#${n} failed (${(e as Error).message}): ${tx.label}`);
          await client.query('ROLLBACK').catch(() => undefined);
          Object.assign(generator.schema, await readSchemaState(client));
        }
      } catch {
        // The source went away (a restart): reconnect.
        await client?.end().catch(() => undefined);
        client = undefined;
        await sleep(200);
      }
      await sleep(workloadRng.int(0, 25));
    }
    await client?.end().catch(() => undefined);
  };

  const fault = async (kind: FaultKind, planned = false) => {
    switch (kind) {
      case 'kill-service': {
        // A planned kill aims at streaming (round 0 has the one inside the initial snapshot);
        // schema changes start copies, so wait a little for none to be running.
        const deadline = Date.now() + (planned ? 10_000 : 0);
        while (service.copiesInFlight > 0 && Date.now() < deadline) await sleep(20);
        const during = service.copiesInFlight > 0 ? 'during-snapshot' : 'during-streaming';
        opLog(`FAULT kill the service (SIGKILL, ${during})`);
        await service.kill();
        countFault(`kill-service-${during}`);
        await sleep(faultRng.int(0, 1500));
        await service.start();
        return;
      }
      case 'restart-source': {
        const crash = faultRng.chance(0.5);
        opLog(`FAULT restart the source Postgres (${crash ? 'immediate' : 'fast'} shutdown)`);
        await source.server.restart!({ crash, downMs: faultRng.int(0, 2000) });
        countFault('restart-source');
        return;
      }
      case 'restart-storage': {
        const crash = faultRng.chance(0.5);
        opLog(`FAULT restart the storage Postgres (${crash ? 'immediate' : 'fast'} shutdown)`);
        await storage.server.restart!({ crash, downMs: faultRng.int(0, 3000) });
        countFault('restart-storage');
        return;
      }
      case 'cut-connections': {
        // Mid-checkpoint: while some client is downloading (a burst makes that likely).
        const burst = new pg.Client({ connectionString: sourceUrl });
        await burst.connect();
        const tx = generator.burst(2000);
        await burst.query(tx.statements[0]!.sql, tx.statements[0]!.params).finally(() => burst.end());
        opLog(`burst for a cut: ${tx.label}`);
        const deadline = Date.now() + 3000;
        while (
          Date.now() < deadline &&
          !clients.some((c) => c.connected && c.db.currentStatus.dataFlowStatus.downloading)
        ) {
          await sleep(5);
        }
        const downloading = clients.filter((c) => c.connected && c.db.currentStatus.dataFlowStatus.downloading).length;
        const cut = proxy.cut();
        opLog(`FAULT cut ${cut} client connections (${downloading} clients mid-download)`);
        countFault('cut-connections');
        return;
      }
    }
  };

  const churn = async (stop: AbortSignal) => {
    while (!stop.aborted) {
      await sleep(churnRng.int(300, 1500));
      if (stop.aborted) break;
      const client = churnRng.pick(clients);
      const action = churnRng.weighted({ toggle: 3, subscribe: 2, unsubscribe: 2, fetch: 3 });
      if (action === 'toggle') {
        opLog(`client ${client.user} ${client.connected ? 'disconnects' : 'connects'}`);
        await (client.connected ? client.disconnect() : client.connect());
      } else if (action === 'subscribe') {
        const tag = churnRng.pick(TAGS);
        opLog(`client ${client.user} subscribes to tagged(${tag})`);
        await client.subscribe(tag);
      } else if (action === 'unsubscribe' && client.tags.length > 0) {
        const tag = churnRng.pick(client.tags);
        opLog(`client ${client.user} unsubscribes from tagged(${tag})`);
        client.unsubscribe(tag);
      } else if (action === 'fetch') {
        const tags = TAGS.filter(() => churnRng.chance(0.3));
        backgroundFetch(churnRng.pick(USERS), tags);
      }
    }
  };

  /** Stops the world, then compares every client with the oracle. */
  const verify = async (round: number) => {
    if (service.unexpectedExit) throw fail(service.unexpectedExit);
    if (!service.running) await service.start();
    for (const c of clients) await c.connect();
    const db = new pg.Client({ connectionString: sourceUrl });
    await db.connect();
    try {
      // Replication is in commit order: a client holding this marker holds everything before it.
      await db.query(
        `INSERT INTO settings VALUES ('~marker', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [`round ${round}`],
      );
      for (const client of clients) {
        // What the client asks for: its subscriptions, plus ended ones still within their ttl.
        const tags = await client.requestedTags();
        const expected = await expectedRows(db, client.user, tags);
        const deadline = Date.now() + (options.convergeTimeoutMs ?? 120_000);
        let actual: ClientRows;
        for (;;) {
          actual = await client.rows();
          if (!firstDifference(expected, actual)) break;
          if (Date.now() > deadline) {
            const d = firstDifference(expected, actual)!;
            // What the service serves this user now, to tell a service fault from a client one.
            const served = await testClientFetch(endpoint.url, await endpoint.token(client.user), tags, 120);
            const servedDiff = served.rows ? firstDifference(expected, served.rows) : undefined;
            throw fail(
              `@powersync/node client ${client.user} (streams ${JSON.stringify(tags)}) did not converge within ` +
                `${(options.convergeTimeoutMs ?? 120_000) / 1000} s; first diverging row: ${describeDifference(d)}\n` +
                `  client: ${client.db.currentStatus.getMessage()}; ${await client.describeState()}\n` +
                `  the test-client now gets: ${served.ok ? `${served.buckets} buckets, checksums verified` : served.message}; ` +
                (servedDiff ? `first diverging row: ${describeDifference(servedDiff)}` : 'rows equal to the oracle'),
            );
          }
          await sleep(250);
        }
        report.comparisons++;
        report.rowsCompared += countRows(expected);
        if (client.checksumFailures.length > 0) {
          throw fail(
            `@powersync/node client ${client.user} logged checksum failures: ${client.checksumFailures.join('; ')}`,
          );
        }

        let fetched = await testClientFetch(endpoint.url, await endpoint.token(client.user), tags, 120);
        for (let attempt = 1; !fetched.ok && !fetched.checksumMismatch && attempt < 3; attempt++) {
          await sleep(1000);
          fetched = await testClientFetch(endpoint.url, await endpoint.token(client.user), tags, 120);
        }
        if (!fetched.ok) throw fail(`test-client as ${client.user} ${JSON.stringify(tags)}: ${fetched.message}`);
        report.checkpointsVerified++;
        const d = firstDifference(expected, fetched.rows!);
        if (d)
          throw fail(
            `test-client as ${client.user} ${JSON.stringify(tags)}: first diverging row: ${describeDifference(d)}`,
          );
        report.comparisons++;
        report.rowsCompared += countRows(expected);
      }
    } finally {
      await db.end();
    }
  };

  let keep = false;
  try {
    for (const c of clients) {
      for (const tag of TAGS) if (churnRng.chance(0.25)) await c.subscribe(tag);
      await c.connect();
    }

    // Round 0: the initial snapshot, with writes streaming beside it and (usually) a kill inside it.
    const stop0 = new AbortController();
    const workload0 = runWorkload(stop0.signal);
    await service.start();
    if (options.killDuringSnapshot ?? true) {
      await service.waitForLog('"copied chunk"', 1, 120_000).catch(() => undefined);
      await sleep(faultRng.int(0, 300));
      await fault('kill-service');
    }
    await sleep(options.roundMs ?? 3000);
    stop0.abort();
    await workload0;
    await verify(0);
    log(`seed ${options.seed} round 0 (initial snapshot) verified: ${JSON.stringify(report.faults)}`);

    const plan = [...(options.faultPlan ?? [])];
    for (let round = 1; ; round++) {
      if (options.rounds !== undefined && round > options.rounds) break;
      if (options.durationMs !== undefined && Date.now() - started > options.durationMs) break;
      if (options.rounds === undefined && options.durationMs === undefined) break;
      report.rounds = round;
      const roundMs = options.roundMs ?? faultRng.int(4000, 12_000);
      const planned = plan.length > 0;
      const faults: FaultKind[] = planned ? [plan.shift()!] : faultRng.chance(0.85) ? [faultRng.pick(FAULT_KINDS)] : [];
      if (!planned && faultRng.chance(0.2)) faults.push(faultRng.pick(FAULT_KINDS));
      opLog(`ROUND ${round}: ${roundMs} ms, faults ${faults.join(', ') || 'none'}`);
      const stop = new AbortController();
      const workload = runWorkload(stop.signal);
      const churning = churn(stop.signal);
      const injected = (async () => {
        for (const kind of faults) {
          await sleep(faultRng.int(Math.round(roundMs * 0.2), Math.round(roundMs * 0.6)));
          await fault(kind, planned);
        }
      })();
      await sleep(roundMs);
      await injected;
      stop.abort();
      await Promise.all([workload, churning]);
      await Promise.all(fetches.splice(0));
      if (failure) throw failure;
      await verify(round);
      log(
        `seed ${options.seed} round ${round} verified (${faults.join(', ') || 'no fault'}): ` +
          `${report.transactions.committed} transactions committed, ${report.checkpointsVerified} checkpoints verified`,
      );
    }
  } catch (e) {
    if (!(e instanceof Mismatch)) report.mismatches.push(`seed ${options.seed}: the run failed: ${(e as Error).stack}`);
    keep = true;
  } finally {
    await Promise.all(fetches.splice(0)).catch(() => undefined);
    for (const c of clients) await c.close();
    await proxy.close();
    await service.stop();
    await source.server.stop();
    await storage.server.stop();
  }

  report.durationMs = Date.now() - started;
  if (keep) {
    const target = path.resolve(
      options.failureDir ?? 'oracle-failures',
      `seed-${options.seed}-${Date.now().toString(36)}`,
    );
    mkdirSync(path.dirname(target), { recursive: true });
    cpSync(runDir, target, { recursive: true });
    report.keptIn = target;
    const tail = readFileSync(opLogFile, 'utf8').trim().split('\n').slice(-40).join('\n');
    log(`\nMISMATCH (seed ${options.seed}):\n${report.mismatches.join('\n')}\n\nlast operations:\n${tail}`);
    log(
      `\nKept for inspection in ${target}: operations.log, service.log, clients/ (SQLite), source/pgdata and ` +
        `storage/pgdata (start one as the postgres user with: postgres -D <pgdata> -p <port> -c wal_level=logical).`,
    );
  }
  rmSync(runDir, { recursive: true, force: true });
  return report;
}
