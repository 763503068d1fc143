import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  cleanStaleRuns,
  freePort,
  integrationTarget,
  mariadbBinaries,
  MissingBinaryError,
  postgresBinaries,
  RUNS_ROOT,
  startPostgres,
  startTestDatabases,
} from '../src/index.js';

async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('throwaway test databases', () => {
  it('start a second set beside running ones without a port clash, and stop cleanly', async () => {
    // The suite itself already runs against one set (npm test / global setup started it).
    const databases = await startTestDatabases({ env: {} });
    try {
      expect(databases.env.PG_TEST_URL).not.toBe(process.env.PG_TEST_URL);
      expect(databases.env.MYSQL_TEST_URL).not.toBe(process.env.MYSQL_TEST_URL);
      const client = new pg.Client({ connectionString: databases.env.PG_TEST_URL });
      await client.connect();
      const { rows } = await client.query<{ wal_level: string }>('SHOW wal_level');
      await client.end();
      expect(rows[0]?.wal_level).toBe('logical');
      const conn = await mysql.createConnection(databases.env.MYSQL_TEST_URL!);
      const [vars] = await conn.query<mysql.RowDataPacket[]>("SHOW VARIABLES LIKE 'binlog_format'");
      await conn.end();
      expect(vars[0]?.Value).toBe('ROW');
    } finally {
      await databases.stop();
    }
    const pg2 = new pg.Client({ connectionString: databases.env.PG_TEST_URL, connectionTimeoutMillis: 2000 });
    await expect(pg2.connect()).rejects.toThrow();
  });

  it('start only the servers asked for (the demo needs Postgres, not MariaDB), and stop once when asked twice', async () => {
    const databases = await startTestDatabases({ env: {}, servers: ['postgres'] });
    const runDirectory = databases.runDirectory!;
    try {
      expect(databases.started.map((s) => s.server)).toEqual(['postgres']);
      expect(alive(databases.started[0]!.pid!)).toBe(true);
      expect(Object.keys(databases.env).sort()).toEqual(['PG_STORAGE_TEST_URL', 'PG_TEST_URL']);
      expect(databases.description).toContain('MYSQL_TEST_URL: not set and no mariadb server requested');
      expect(readdirSync(runDirectory)).toContain('postgres');
      expect(readdirSync(runDirectory)).not.toContain('mariadb');
    } finally {
      // A second Ctrl-C calls stop again while the first is still stopping.
      await Promise.all([databases.stop(), databases.stop()]);
    }
    expect(databases.started[0]!.pid).toBeUndefined();
    expect(existsSync(runDirectory)).toBe(false);
  });

  it('use the servers named by the environment instead of starting new ones', async () => {
    const env = {
      PG_TEST_URL: 'postgres://example/source',
      PG_STORAGE_TEST_URL: 'postgres://example/storage',
      MYSQL_TEST_URL: 'mysql://example/source',
    };
    const databases = await startTestDatabases({ env });
    expect(databases.env).toEqual(env);
    expect(databases.description).toContain('PG_TEST_URL: existing server from the environment');
    await databases.stop();
  });

  it('stop servers left behind by a run whose owner died', async () => {
    const runDir = path.join(RUNS_ROOT, `stale-${Date.now()}`);
    mkdirSync(runDir, { recursive: true });
    writeFileSync(path.join(runDir, 'owner.pid'), `${await deadPid()}\n`);
    const server = await startPostgres({
      dataDir: path.join(runDir, 'postgres'),
      port: await freePort(),
      databases: [],
    });
    const postmasterPid = Number(readFileSync(path.join(runDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
    expect(alive(postmasterPid)).toBe(true);
    await cleanStaleRuns();
    expect(existsSync(runDir)).toBe(false);
    for (let i = 0; i < 100 && alive(postmasterPid); i++) await new Promise((r) => setTimeout(r, 50));
    expect(alive(postmasterPid)).toBe(false);
    await server.stop();
  });
});

describe('missing binaries', () => {
  it('say what to install and which variable to set instead', () => {
    const nowhere = { path: '/nonexistent', postgresRoot: '/nonexistent' };
    expect(() => postgresBinaries(nowhere)).toThrow(MissingBinaryError);
    expect(() => postgresBinaries(nowhere)).toThrow(/apt-get install postgresql-15.*PG_TEST_URL/);
    expect(() => mariadbBinaries(nowhere)).toThrow(/apt-get install mariadb-server.*MYSQL_TEST_URL/);
  });
});

describe('integration targets', () => {
  it('give the URL when the variable is set and a reason to print when not', () => {
    expect(integrationTarget('mongodb', { MONGO_TEST_URL: 'mongodb://x' })).toEqual({ url: 'mongodb://x' });
    expect(integrationTarget('mssql', {}).skipReason).toMatch(/^MSSQL_TEST_URL is not set; set it to a SQL Server/);
  });
});
