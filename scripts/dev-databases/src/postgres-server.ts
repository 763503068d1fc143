/**
 * Throwaway Postgres: a cluster copied from a cached initdb template (initdb once per
 * machine), started on a private port with logical replication enabled, durability off
 * (tests only), and the databases the test suites expect.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, chownSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { postgresBinaries } from './binaries.js';
import { isRoot, TEMPLATES_ROOT, waitFor } from './run-directory.js';
import { ServerProcess } from './server-process.js';

const exec = promisify(execFile);

export interface RunningServer {
  /** Base URL of the server's default database. */
  readonly url: string;
  readonly port: number;
  /**
   * Pid of the server's main process (the Postgres postmaster, `mariadbd`), undefined once it
   * has exited. Printed by the demo so a user (and the demo's cleanup test) can check it is gone.
   */
  readonly pid: number | undefined;
  /** URL of another database on the same server. */
  databaseUrl(database: string): string;
  stop(): Promise<void>;
  /**
   * Stops the server (a fast shutdown, or with `crash` an immediate one that
   * leaves crash recovery to the next start), keeps it down for `downMs`,
   * then starts it again on the same data and port and waits until it accepts connections.
   * For fault tests. MariaDB servers do not support it yet.
   */
  restart?(options?: { downMs?: number; crash?: boolean }): Promise<void>;
}

/** Settings every throwaway Postgres runs with: logical replication for the source module, speed over durability. */
export const POSTGRES_SETTINGS: Record<string, string> = {
  wal_level: 'logical',
  max_replication_slots: '64',
  max_wal_senders: '64',
  max_connections: '300',
  fsync: 'off',
  // Not `synchronous_commit: off`: WAL senders only send flushed WAL, so asynchronous commits
  // would reach logical replication up to wal_writer_delay (200 ms) late.
  full_page_writes: 'off',
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
  shared_buffers: '256MB',
  max_wal_size: '2GB',
  log_min_messages: 'warning',
};

function postgresUser(): { uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const parts = line?.split(':');
  if (!parts || parts.length < 4) {
    throw new Error(
      'Postgres refuses to run as root and there is no `postgres` user to run it as. Create one (`useradd -r postgres`) or run as a normal user.',
    );
  }
  return { uid: Number(parts[2]), gid: Number(parts[3]) };
}

async function ensureTemplate(initdb: string, user: { uid: number; gid: number } | undefined): Promise<string> {
  const { stdout } = await exec(initdb, ['--version']);
  const version = stdout.trim().replace(/[^0-9.]+/g, '');
  const template = path.join(TEMPLATES_ROOT, `postgres-${version}`);
  if (existsSync(path.join(template, 'PG_VERSION'))) return template;
  mkdirSync(TEMPLATES_ROOT, { recursive: true, mode: 0o755 });
  const staging = `${template}.${process.pid}.tmp`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { mode: 0o700 });
  if (user) chownSync(staging, user.uid, user.gid);
  await new Promise<void>((resolve, reject) => {
    const proc = new ServerProcess({
      command: initdb,
      args: ['-D', staging, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '--locale=C'],
      logFile: `${staging}.log`,
      ...(user ? { user } : {}),
    });
    proc.child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`initdb failed (exit ${code}): ${proc.logTail()}`)),
    );
  });
  rmSync(`${staging}.log`, { force: true });
  try {
    renameSync(staging, template);
  } catch {
    // another process created the template first; use theirs
    rmSync(staging, { recursive: true, force: true });
  }
  return template;
}

export interface StartPostgresOptions {
  /** Folder that will hold the cluster (created; must not exist yet). */
  dataDir: string;
  port: number;
  databases: string[];
  /** Overrides of POSTGRES_SETTINGS (e.g. `wal_level: 'replica'` to test the error). */
  settings?: Record<string, string>;
}

/** Starts a throwaway Postgres cluster and creates `databases` in it. */
export async function startPostgres(options: StartPostgresOptions): Promise<RunningServer> {
  const { initdb, postgres } = postgresBinaries();
  const user = postgresUser();
  const template = await ensureTemplate(initdb, user);
  await exec('cp', ['-a', template, options.dataDir]);

  const args = ['-D', options.dataDir, '-p', String(options.port)];
  for (const [key, value] of Object.entries({ ...POSTGRES_SETTINGS, ...options.settings })) {
    args.push('-c', `${key}=${value}`);
  }
  const launch = () =>
    new ServerProcess({
      command: postgres,
      args,
      logFile: path.join(path.dirname(options.dataDir), 'postgres.log'),
      ...(user ? { user } : {}),
    });
  let server = launch();

  const base = `postgres://postgres@127.0.0.1:${options.port}`;
  const databaseUrl = (db: string) => `${base}/${db}`;
  const waitReady = (setup: (client: pg.Client) => Promise<void>) =>
    waitFor(
      'Postgres',
      async () => {
        const client = new pg.Client({ connectionString: databaseUrl('postgres') });
        await client.connect();
        try {
          await setup(client);
        } finally {
          await client.end();
        }
      },
      { timeoutMs: 20_000, isDead: () => server.deadReason },
    );
  try {
    await waitReady(async (client) => {
      for (const db of options.databases) await client.query(`CREATE DATABASE "${db}"`);
    });
  } catch (e) {
    await server.stop('SIGKILL');
    throw e;
  }
  return {
    url: databaseUrl('postgres'),
    port: options.port,
    get pid() {
      return server.pid;
    },
    databaseUrl,
    // SIGINT = Postgres "fast" shutdown: disconnect clients, no waiting.
    stop: () => server.stop('SIGINT'),
    async restart({ downMs = 0, crash = false } = {}) {
      // SIGQUIT = "immediate" shutdown: no checkpoint, crash recovery on the next start.
      await server.stop(crash ? 'SIGQUIT' : 'SIGINT');
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      server = launch();
      await waitReady(async () => undefined);
    },
  };
}
