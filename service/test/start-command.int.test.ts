import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { PostgresStorage } from '@bucketsync/module-postgres-storage';
import { bucketRows } from '@bucketsync/service-core-tests';
import pg from 'pg';
import { expect, it } from 'vitest';

const bin = path.resolve(import.meta.dirname, '../bin/bucketsync');

describeIntegration('postgres', 'bucketsync start (built CLI) against real Postgres', (sourceUrl) => {
  it('replicates a database end to end, serves later changes, and stops cleanly on SIGTERM', async () => {
    const id = `${process.pid}_${randomBytes(3).toString('hex')}`;
    const source = new pg.Client({ connectionString: sourceUrl });
    await source.connect();
    await source.query(`
      CREATE SCHEMA svc_${id};
      CREATE TABLE svc_${id}.todos (id int8 PRIMARY KEY, owner text, title text);
      INSERT INTO svc_${id}.todos SELECT n, 'u' || (n % 2), 'todo ' || n FROM generate_series(1, 500) n;
      CREATE PUBLICATION pub_${id} FOR TABLES IN SCHEMA svc_${id};`);
    const dir = mkdtempSync(path.join(tmpdir(), 'bucketsync-start-'));
    writeFileSync(
      path.join(dir, 'sync.yaml'),
      `bucket_definitions:\n  by_owner:\n    parameters: SELECT request.user_id() AS owner\n    data:\n      - SELECT * FROM svc_${id}.todos WHERE owner = bucket.owner\n`,
    );
    const storageSchema = `svc_${id}`;
    writeFileSync(
      path.join(dir, 'config.yaml'),
      `replication:\n  connections:\n    - type: postgresql\n      uri: !env SOURCE_URL\n      publication_name: pub_${id}\n` +
        `storage:\n  type: postgresql\n  uri: ${process.env.PG_STORAGE_TEST_URL}\n  schema: ${storageSchema}\nsync_config:\n  path: sync.yaml\n`,
    );

    const child = spawn(bin, ['start', '-c', path.join(dir, 'config.yaml'), '-r', 'sync'], {
      env: { ...process.env, SOURCE_URL: sourceUrl, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const waitFor = async (text: string, count = 1) => {
      for (let i = 0; i < 300; i++) {
        if (output.split(text).length - 1 >= count) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`"${text}" not logged; output:\n${output}`);
    };

    const storage = await PostgresStorage.open({ uri: process.env.PG_STORAGE_TEST_URL, schema: storageSchema });
    try {
      await waitFor('first consistent checkpoint');
      expect(output, output).toContain('"message":"deployed the sync config"');
      await source.query(`UPDATE svc_${id}.todos SET owner = 'u0' WHERE id = 1`);
      const config = (await storage.getActiveSyncConfig())!;
      let rows = new Map<string, string>();
      for (let i = 0; i < 100; i++) {
        rows = await bucketRows(config, 'by_owner["u0"]', (await config.getCheckpoint()).opId);
        if (rows.size === 251) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(rows.size).toBe(251);
      expect(JSON.parse(rows.get('1')!)).toMatchObject({ id: 1, owner: 'u0' });

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(output).toContain('"message":"stopped"');
    } finally {
      child.kill('SIGKILL');
      await storage.teardown().catch(() => undefined);
      await storage.close();
      await source.query(`DROP SCHEMA svc_${id} CASCADE; DROP PUBLICATION pub_${id};`);
      await source.end();
    }
  }, 60_000);

  it('exits 1 with the problems when the config is invalid, and 2 on bad arguments', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bucketsync-bad-'));
    writeFileSync(path.join(dir, 'config.yaml'), 'storage:\n  type: postgresql\n  uri: nope\n');
    const run = (args: string[]) =>
      new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (d) => (output += d));
        child.stderr.on('data', (d) => (output += d));
        child.on('exit', (code) => resolve({ code, output }));
      });
    const bad = await run(['start', '-c', path.join(dir, 'config.yaml')]);
    expect(bad.code).toBe(1);
    expect(bad.output).toContain('storage.uri: expected a postgres:// URI');
    expect(bad.output).toContain('replication.connections: required');
    const usage = await run(['start', '--role', 'everything', '-c', 'x.yaml']);
    expect(usage.code).toBe(2);
    expect(usage.output).toContain('--role must be one of unified, sync, api (got "everything")');
  }, 30_000);
});
