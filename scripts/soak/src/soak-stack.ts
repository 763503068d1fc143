/**
 * What every soak mode starts and stops: a throwaway Postgres (source and storage databases)
 * with the mode's schema, the built service, samplers of both, and the machine facts a report
 * records. `stop()` is idempotent and undoes whatever part of `start()` ran.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { copyFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import {
  cleanStaleRuns,
  createRunDirectory,
  freePort,
  startPostgres,
  type RunningServer,
} from '@bucketsync/dev-databases';
import pg from 'pg';
import { ProcessSampler } from './process-sampler.js';
import type { SoakResult } from './soak-result.js';
import { SoakService } from './soak-service.js';

export const SOURCE_DATABASE = 'soak_source';
export const STORAGE_DATABASE = 'soak_storage';

export interface SoakStackOptions {
  /** Run in the source database before the service starts (tables, publication, seed rows). */
  schemaSql: string;
  syncConfig: string;
  /** LOG_LEVEL of the service. */
  logLevel: string;
  /** Where the service writes heap snapshots on SIGUSR2 (SoakService.heapSnapshot); default none. */
  heapSnapshotDir?: string;
  /** Called when the service exits without being stopped. */
  onServiceExit(): void;
  log(line: string): void;
  /** Runs after the schema and before the service starts: seed rows the initial copy picks up. */
  beforeService?(sourceUrl: string): Promise<void>;
}

export const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

export function meanOf(values: (number | undefined)[]): number | undefined {
  const known = values.filter((v): v is number => v !== undefined);
  return known.length === 0 ? undefined : Math.round(known.reduce((a, b) => a + b, 0) / known.length);
}

/** CPU use in percent of one core since the previous call (undefined on the first call or without a reading). */
export function cpuMeter(read: () => number | undefined): () => number | undefined {
  let last: { cpu: number; at: number } | undefined;
  return () => {
    const cpu = read();
    const at = performance.now();
    const previous = last;
    last = cpu === undefined ? undefined : { cpu, at };
    if (cpu === undefined || !previous || at <= previous.at) return undefined;
    return Math.round(((cpu - previous.cpu) / ((at - previous.at) / 1000)) * 100);
  };
}

/** CPU seconds used so far by this (the soak) process. */
export function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/** The checked-out commit and whether the work tree has changes. */
export function gitState(): { commit: string; dirty: boolean } | undefined {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const status = execFileSync('git', ['status', '--porcelain'], { cwd: root, encoding: 'utf8' });
    return { commit, dirty: status.trim().length > 0 };
  } catch {
    return undefined;
  }
}

/** The machine a run measured (load averages at its start and now). */
export function machineFacts(loadAverageAtStart: number[], postgres: string): SoakResult['machine'] {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryMb: Math.round(os.totalmem() / 1048576),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    arch: os.arch(),
    loadAverageAtStart,
    loadAverageAtEnd: loadAverage(),
    postgres,
  };
}

export const loadAverage = () => os.loadavg().map((n) => round(n, 2));

/**
 * The kernel's count of connections dropped because a listen queue was full (TcpExt
 * ListenOverflows, for the whole machine's network namespace: other programs count too);
 * undefined without /proc.
 */
export function listenOverflows(): number | undefined {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i]!.split(/\s+/);
      const at = names.indexOf('ListenOverflows');
      if (names[0] === 'TcpExt:' && at > 0) return Number(lines[i + 1]!.split(/\s+/)[at]);
    }
  } catch {
    // no /proc
  }
  return undefined;
}

/** A sampler of the whole cluster (postmaster and its children), if its pid file is readable. */
function postmasterSampler(dataDir: string): ProcessSampler | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '', 10);
    return Number.isFinite(pid) && pid > 0 ? new ProcessSampler(pid, { withChildren: true }) : undefined;
  } catch {
    return undefined;
  }
}

export class SoakStack {
  postgres: RunningServer | undefined;
  service: SoakService | undefined;
  sourceUrl = '';
  storageUrl = '';
  postgresVersion = 'unknown';
  /** Seconds to start Postgres (with the schema and seed) and the service. */
  readonly setup = { postgresSeconds: 0, serviceSeconds: 0 };
  serviceSampler: ProcessSampler | undefined;
  postgresSampler: ProcessSampler | undefined;
  private runDir: string | undefined;
  private stopped: Promise<void> | undefined;

  async start(options: SoakStackOptions): Promise<SoakService> {
    const now = () => performance.now();
    await cleanStaleRuns();
    const runDir = createRunDirectory();
    this.runDir = runDir;
    let mark = now();
    options.log('Starting a throwaway Postgres...');
    this.postgres = await startPostgres({
      dataDir: path.join(runDir, 'postgres'),
      port: await freePort(),
      databases: [SOURCE_DATABASE, STORAGE_DATABASE],
    });
    this.sourceUrl = this.postgres.databaseUrl(SOURCE_DATABASE);
    this.storageUrl = this.postgres.databaseUrl(STORAGE_DATABASE);
    const source = new pg.Client({ connectionString: this.sourceUrl });
    await source.connect();
    try {
      await source.query(options.schemaSql);
      this.postgresVersion =
        (await source.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? 'unknown';
    } finally {
      await source.end();
    }
    await options.beforeService?.(this.sourceUrl);
    this.setup.postgresSeconds = round((now() - mark) / 1000);

    mark = now();
    options.log('Starting the service...');
    const service = new SoakService({
      dir: runDir,
      sourceUrl: this.sourceUrl,
      storageUrl: this.storageUrl,
      publication: 'soak',
      syncConfig: options.syncConfig,
      port: await freePort(),
      logLevel: options.logLevel,
      ...(options.heapSnapshotDir ? { heapSnapshotDir: options.heapSnapshotDir } : {}),
    });
    this.service = service;
    await service.start({ timeoutMs: 60_000, onExit: options.onServiceExit });
    this.setup.serviceSeconds = round((now() - mark) / 1000);
    this.serviceSampler = new ProcessSampler(service.pid!);
    this.postgresSampler = postmasterSampler(path.join(runDir, 'postgres'));
    return service;
  }

  /** Committed and rolled back transactions so far in each database (Postgres' statistics, updated within a second or so). */
  async transactionCounts(): Promise<Map<string, number>> {
    const client = new pg.Client({ connectionString: this.postgres!.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ datname: string; n: string }>(
        'SELECT datname, xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname IS NOT NULL',
      );
      return new Map(rows.map((r) => [r.datname, Number(r.n)]));
    } finally {
      await client.end();
    }
  }

  /** Stops the service and Postgres and removes the run directory; copies the service log first if asked. */
  stop(options: { serviceLogCopy?: string } = {}): Promise<void> {
    this.stopped ??= (async () => {
      await this.service?.stop().catch(() => undefined);
      if (this.service && options.serviceLogCopy)
        await copyFile(this.service.logFile, options.serviceLogCopy).catch(() => undefined);
      await this.postgres?.stop().catch(() => undefined);
      if (this.runDir) await rm(this.runDir, { recursive: true, force: true });
    })();
    return this.stopped;
  }
}
