/**
 * What a user sees from the built `bucketsync start` when a connection setting is wrong: the
 * log names the true cause and says truthfully what happens next (retrying in N s, or
 * stopping), and the process does what the log says. Runs its own Postgres that checks
 * passwords (the shared test server trusts every local login).
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startPostgres, type RunningServer } from '@bucketsync/dev-databases';
import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';

const bin = path.resolve(import.meta.dirname, '../bin/bucketsync');

interface Running {
  output: () => string;
  exited: Promise<number | null>;
  exitCode: () => number | null;
  waitForLog(text: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<number | null>;
}

/** Starts `bucketsync start -c <config> -r sync` with a config pointing at `sourceUri` and `storageUri`. */
function startService(dir: string, sourceUri: string, storageUri: string): Running {
  writeFileSync(path.join(dir, 'sync.yaml'), 'bucket_definitions:\n  all:\n    data: [SELECT * FROM todos]\n');
  writeFileSync(
    path.join(dir, 'config.yaml'),
    `replication:\n  connections:\n    - type: postgresql\n      uri: ${sourceUri}\n` +
      `storage:\n  type: postgresql\n  uri: ${storageUri}\n  schema: st_errors\nsync_config:\n  path: sync.yaml\n`,
  );
  const child = spawn(bin, ['start', '-c', path.join(dir, 'config.yaml'), '-r', 'sync'], {
    env: { ...process.env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    output: () => output,
    exited,
    exitCode: () => child.exitCode,
    async waitForLog(text, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!output.includes(text)) {
        if (Date.now() > deadline) throw new Error(`"${text}" was not logged; output:\n${output}`);
        if (child.exitCode !== null) throw new Error(`exited (${child.exitCode}) before "${text}"; output:\n${output}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
      if (code === null) child.kill('SIGKILL');
      return code;
    },
  };
}

/** The log lines (JSON) of a run. */
const logLines = (output: string) =>
  output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: string; message: string; error?: { code?: string } });

describeIntegration('postgres', 'bucketsync start names the true cause of a bad connection setting', () => {
  let dir: string;
  let server: RunningServer;
  let source: pg.Client;
  /** The source as user `app` with `password`. */
  const sourceAs = (password: string) => {
    const url = new URL(server.databaseUrl('app'));
    url.username = 'app';
    url.password = password;
    return url.toString();
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bucketsync-source-errors-'));
    chmodSync(dir, 0o755); // the server runs as the postgres user when tests run as root
    const hbaFile = path.join(dir, 'pg_hba.conf');
    writeFileSync(
      hbaFile,
      'local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n',
    );
    chmodSync(hbaFile, 0o644);
    server = await startPostgres({
      dataDir: path.join(dir, 'postgres'),
      port: await freePort(),
      databases: ['app', 'storage'],
      settings: { hba_file: hbaFile },
    });
    source = new pg.Client({ connectionString: server.databaseUrl('app') });
    await source.connect();
    await source.query(`
      CREATE ROLE app LOGIN REPLICATION PASSWORD 'right';
      CREATE TABLE todos (id int PRIMARY KEY, title text);
      GRANT SELECT ON todos TO app;
      CREATE PUBLICATION powersync FOR ALL TABLES;
      GRANT ALL ON DATABASE storage TO app;`);
  }, 60_000);

  afterAll(async () => {
    await source?.end();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a wrong source password: the log names the rejected login, says it stops, and it does not retry', async () => {
    const service = startService(mkdtempSync(path.join(dir, 'run-')), sourceAs('wrong'), server.databaseUrl('storage'));
    try {
      await service.waitForLog('replication of this sync config stopped and is not retried');
      const errors = logLines(service.output()).filter((l) => l.level === 'error');
      expect(errors.map((l) => l.error?.code)).toEqual(['BS3004']);
      expect(errors[0]!.message).toContain('fix the cause named in the error, then restart the service');
      const text = service.output();
      expect(text).toContain('The source database rejected the login');
      expect(text).toContain('password authentication failed for user \\"app\\"');
      expect(text).not.toContain('not set up for replication');
      expect(text).not.toContain(':wrong@'); // the password is not logged
      // It said it stops: no retry comes (the old behaviour retried every 30 s), no slot was made.
      await new Promise((r) => setTimeout(r, 3000));
      expect(service.output()).not.toMatch(/retrying/i);
      expect(logLines(service.output()).filter((l) => l.error?.code === 'BS3004')).toHaveLength(1);
      const slots = await source.query('SELECT slot_name FROM pg_replication_slots');
      expect(slots.rows).toEqual([]);
      // The process keeps running (serving what storage has) until stopped.
      expect(service.exitCode()).toBeNull();
    } finally {
      expect(await service.stop()).toBe(0);
    }
  }, 60_000);

  it('an unreachable source: the log says when it retries, with a growing delay', async () => {
    const service = startService(
      mkdtempSync(path.join(dir, 'run-')),
      `postgres://app:right@127.0.0.1:${await freePort()}/app`,
      server.databaseUrl('storage'),
    );
    try {
      await service.waitForLog('replication failed; retrying in 2 s');
      const retries = logLines(service.output()).filter((l) => l.message.startsWith('replication failed; retrying'));
      expect(retries.map((l) => l.message).slice(0, 2)).toEqual([
        'replication failed; retrying in 1 s',
        'replication failed; retrying in 2 s',
      ]);
      expect(retries.every((l) => l.error?.code === 'BS3001')).toBe(true);
      expect(service.output()).toContain('ECONNREFUSED');
    } finally {
      expect(await service.stop()).toBe(0);
    }
  }, 60_000);

  it('a wrong storage password: the message says it stops, and it exits with 1', async () => {
    const storage = new URL(server.databaseUrl('storage'));
    storage.username = 'app';
    storage.password = 'wrong';
    const service = startService(mkdtempSync(path.join(dir, 'run-')), sourceAs('right'), storage.toString());
    const code = await Promise.race([service.exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))]);
    await service.stop();
    expect(code, service.output()).toBe(1);
    const text = service.output();
    expect(text).toContain('[BS4001]');
    expect(text).toContain('password authentication failed for user \\"app\\"');
    expect(text).toContain('Stopping (exit code 1)');
    expect(text).toContain('fix it and start again');
    expect(text).not.toMatch(/retries meanwhile|retrying in/i);
  }, 60_000);

  it('unreachable storage at start: the log says when it retries, and it waits instead of exiting', async () => {
    const service = startService(
      mkdtempSync(path.join(dir, 'run-')),
      sourceAs('right'),
      `postgres://postgres@127.0.0.1:${await freePort()}/storage`,
    );
    try {
      await service.waitForLog('Retrying in 2 s');
      expect(service.output()).toContain('Retrying in 1 s');
      expect(service.output()).toContain('[BS4001]');
      expect(service.exitCode()).toBeNull();
    } finally {
      expect(await service.stop()).toBe(0);
    }
  }, 60_000);
});
