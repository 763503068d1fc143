/**
 * The databases tests run against: throwaway servers started here, or existing servers
 * named by environment variables. Postgres and MariaDB are always available (started when
 * their variable is unset and the caller asks for them, as it does by default); MongoDB and
 * SQL Server only when their variable is set, since no server for them can be installed on
 * the development machines.
 */
import path from 'node:path';
import { mariadbBinaries, postgresBinaries } from './binaries.js';
import { startMariadb } from './mariadb-server.js';
import { startPostgres, type RunningServer } from './postgres-server.js';
import { cleanStaleRuns, createRunDirectory, freePort, portInUse } from './run-directory.js';
import { rmSync } from 'node:fs';

/** Environment variables that point tests at existing servers. */
export const TEST_DATABASE_ENV = {
  postgres: 'PG_TEST_URL',
  postgresStorage: 'PG_STORAGE_TEST_URL',
  mysql: 'MYSQL_TEST_URL',
  mongodb: 'MONGO_TEST_URL',
  mssql: 'MSSQL_TEST_URL',
} as const;

export type TestDatabaseKind = keyof typeof TEST_DATABASE_ENV;

const HOW_TO_SET: Record<TestDatabaseKind, string> = {
  postgres: 'a Postgres server with wal_level=logical, e.g. postgres://postgres@127.0.0.1:5432/test',
  postgresStorage: 'a Postgres database for bucket storage, e.g. postgres://postgres@127.0.0.1:5432/storage',
  mysql: 'a MySQL/MariaDB server with log_bin=ON and binlog_format=ROW, e.g. mysql://root@127.0.0.1:3306/test',
  mongodb: 'a MongoDB replica set (change streams need one), e.g. mongodb://127.0.0.1:27017/test?replicaSet=rs0',
  mssql: 'a SQL Server with CDC enabled, e.g. mssql://sa:Password1@127.0.0.1:1433/test',
};

export type IntegrationTarget = { url: string; skipReason?: undefined } | { url?: undefined; skipReason: string };

/** Where an integration suite should connect, or why it must be skipped. */
export function integrationTarget(kind: TestDatabaseKind, env: NodeJS.ProcessEnv = process.env): IntegrationTarget {
  const variable = TEST_DATABASE_ENV[kind];
  const url = env[variable];
  if (url) return { url };
  return {
    skipReason: `${variable} is not set; set it to ${HOW_TO_SET[kind]} to run these tests`,
  };
}

/** A throwaway server that `startTestDatabases` started (not one named by the environment). */
export interface StartedServer {
  server: TestServer;
  port: number;
  /** Pid of its main process; undefined once it has exited. */
  readonly pid: number | undefined;
}

export interface TestDatabases {
  /** Variables to pass to tests (`PG_TEST_URL`, `PG_STORAGE_TEST_URL`, `MYSQL_TEST_URL`). */
  env: Record<string, string>;
  /** One line per database: which server is used and why. */
  description: string[];
  /** The servers started here, for callers that print or check them (the demo). */
  started: StartedServer[];
  /**
   * Folder under RUNS_ROOT holding the started servers' data directories and logs, removed by
   * `stop`; undefined when nothing was started.
   */
  runDirectory: string | undefined;
  /**
   * Stops the servers started here (not the ones named by the environment) and removes their
   * files. Idempotent: a second call (a second Ctrl-C) waits for the first instead of starting over.
   */
  stop(): Promise<void>;
}

/** The kinds of throwaway server `startTestDatabases` can start. */
export type TestServer = 'postgres' | 'mariadb';

export interface StartTestDatabasesOptions {
  env?: NodeJS.ProcessEnv;
  /** Ports to try first (e.g. stable ports for the demo); a busy one falls back to a free port. */
  preferredPorts?: { postgres?: number; mariadb?: number };
  /**
   * Which servers to start when the environment does not name one. Default: both, which is
   * what `npm test` and the integration suites need. The demo passes `['postgres']` so it works
   * (and starts faster) on a machine without MariaDB.
   */
  servers?: readonly TestServer[];
}

async function choosePort(preferred: number | undefined): Promise<number> {
  if (preferred !== undefined && !(await portInUse(preferred))) return preferred;
  return freePort();
}

/** Starts whatever the environment does not already provide, in parallel. */
export async function startTestDatabases(options: StartTestDatabasesOptions = {}): Promise<TestDatabases> {
  const env = options.env ?? process.env;
  const wanted = new Set<TestServer>(options.servers ?? ['postgres', 'mariadb']);
  const needPostgres = wanted.has('postgres') && (!env.PG_TEST_URL || !env.PG_STORAGE_TEST_URL);
  const needMariadb = wanted.has('mariadb') && !env.MYSQL_TEST_URL;
  const result: Record<string, string> = {};
  const description: string[] = [];
  const running: RunningServer[] = [];
  const started: StartedServer[] = [];

  // Fail before starting anything when a binary is missing, with what to install.
  if (needPostgres) postgresBinaries();
  if (needMariadb) mariadbBinaries();

  let runDir: string | undefined;
  if (needPostgres || needMariadb) {
    await cleanStaleRuns();
    runDir = createRunDirectory();
  }
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await Promise.all(running.map((s) => s.stop()));
      if (runDir) rmSync(runDir, { recursive: true, force: true });
    })());
  const track = (server: TestServer, instance: RunningServer) => {
    running.push(instance);
    started.push({
      server,
      port: instance.port,
      get pid() {
        return instance.pid;
      },
    });
  };

  // allSettled, not all: when one server fails, the other may still be starting, and stopping
  // before it is tracked would leave it running.
  const outcomes = await Promise.allSettled([
    (async () => {
      if (!needPostgres) return;
      const server = await startPostgres({
        dataDir: path.join(runDir!, 'postgres'),
        port: await choosePort(options.preferredPorts?.postgres),
        databases: ['bucketsync_source', 'bucketsync_storage'],
      });
      track('postgres', server);
      result.PG_TEST_URL = env.PG_TEST_URL ?? server.databaseUrl('bucketsync_source');
      result.PG_STORAGE_TEST_URL = env.PG_STORAGE_TEST_URL ?? server.databaseUrl('bucketsync_storage');
      description.push(`Postgres: throwaway server on 127.0.0.1:${server.port} (wal_level=logical)`);
    })(),
    (async () => {
      if (!needMariadb) return;
      const server = await startMariadb({
        dataDir: path.join(runDir!, 'mariadb'),
        port: await choosePort(options.preferredPorts?.mariadb),
        databases: ['bucketsync_source'],
      });
      track('mariadb', server);
      result.MYSQL_TEST_URL = server.databaseUrl('bucketsync_source');
      description.push(`MariaDB: throwaway server on 127.0.0.1:${server.port} (ROW binlog, GTIDs)`);
    })(),
  ]);
  const failure = outcomes.find((o) => o.status === 'rejected');
  if (failure) {
    await stop();
    throw failure.reason;
  }

  const serverOf: Partial<Record<TestDatabaseKind, TestServer>> = {
    postgres: 'postgres',
    postgresStorage: 'postgres',
    mysql: 'mariadb',
  };
  for (const kind of Object.keys(TEST_DATABASE_ENV) as TestDatabaseKind[]) {
    const variable = TEST_DATABASE_ENV[kind];
    const existing = env[variable];
    const server = serverOf[kind];
    if (existing) {
      result[variable] = existing;
      description.push(`${variable}: existing server from the environment`);
    } else if (server && !wanted.has(server)) {
      description.push(`${variable}: not set and no ${server} server requested`);
    } else if (!result[variable]) {
      description.push(`${variable}: not set, ${kind} integration tests will be skipped`);
    }
  }
  return { env: result, description, started, runDirectory: runDir, stop };
}
