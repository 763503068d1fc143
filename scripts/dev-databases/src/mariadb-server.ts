/**
 * Throwaway MariaDB: a data dir copied from a cached mariadb-install-db template, started on
 * a private port with a ROW binlog and GTIDs (what the MySQL source module replicates from).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { mariadbBinaries } from './binaries.js';
import type { RunningServer } from './postgres-server.js';
import { isRoot, TEMPLATES_ROOT, waitFor } from './run-directory.js';
import { ServerProcess } from './server-process.js';

const exec = promisify(execFile);

async function ensureTemplate(installDb: string, server: string): Promise<string> {
  const { stdout } = await exec(server, ['--version']);
  const version = /Ver\s+([0-9.]+)/.exec(stdout)?.[1] ?? 'unknown';
  const template = path.join(TEMPLATES_ROOT, `mariadb-${version}`);
  if (existsSync(path.join(template, 'mysql'))) return template;
  mkdirSync(TEMPLATES_ROOT, { recursive: true, mode: 0o755 });
  const staging = `${template}.${process.pid}.tmp`;
  rmSync(staging, { recursive: true, force: true });
  const args = [
    '--no-defaults',
    `--datadir=${staging}`,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
    ...(isRoot() ? ['--user=root'] : []),
  ];
  try {
    await exec(installDb, args);
  } catch (e) {
    throw new Error(`mariadb-install-db failed: ${(e as Error).message}`);
  }
  try {
    renameSync(staging, template);
  } catch {
    rmSync(staging, { recursive: true, force: true });
  }
  return template;
}

export interface StartMariadbOptions {
  dataDir: string;
  port: number;
  databases: string[];
}

/** Starts a throwaway MariaDB and creates `databases` in it. */
export async function startMariadb(options: StartMariadbOptions): Promise<RunningServer> {
  const { installDb, server: serverBinary } = mariadbBinaries();
  const template = await ensureTemplate(installDb, serverBinary);
  await exec('cp', ['-a', template, options.dataDir]);
  const args = [
    '--no-defaults',
    `--datadir=${options.dataDir}`,
    `--port=${options.port}`,
    '--bind-address=127.0.0.1',
    `--socket=${path.join(options.dataDir, 'mariadbd.sock')}`,
    `--pid-file=${path.join(options.dataDir, 'mariadbd.pid')}`,
    `--log-bin=${path.join(options.dataDir, 'binlog')}`,
    '--binlog-format=ROW',
    '--binlog-row-image=FULL',
    '--server-id=1',
    '--skip-name-resolve',
    '--innodb-flush-log-at-trx-commit=0',
    '--sync-binlog=0',
    '--max-connections=300',
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_general_ci',
    ...(isRoot() ? ['--user=root'] : []),
  ];
  const server = new ServerProcess({
    command: serverBinary,
    args,
    logFile: path.join(path.dirname(options.dataDir), 'mariadb.log'),
  });
  const base = `mysql://root@127.0.0.1:${options.port}`;
  try {
    await waitFor(
      'MariaDB',
      async () => {
        const conn = await mysql.createConnection({ host: '127.0.0.1', port: options.port, user: 'root' });
        try {
          for (const db of options.databases) await conn.query(`CREATE DATABASE \`${db}\``);
        } finally {
          await conn.end();
        }
      },
      { timeoutMs: 20_000, isDead: () => server.deadReason },
    );
  } catch (e) {
    await server.stop('SIGKILL');
    throw e;
  }
  return {
    url: `${base}/`,
    port: options.port,
    get pid() {
      return server.pid;
    },
    databaseUrl: (db) => `${base}/${db}`,
    stop: () => server.stop('SIGTERM'),
  };
}
