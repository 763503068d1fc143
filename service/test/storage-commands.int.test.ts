import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '@bucketsync/dev-databases';
import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { PostgresStorage } from '@bucketsync/module-postgres-storage';
import { expect, it } from 'vitest';

const exec = promisify(execFile);
const bin = path.resolve(import.meta.dirname, '../bin/bucketsync');

function configFor(storageUri: string, schema: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'bucketsync-storage-cmd-'));
  writeFileSync(path.join(dir, 'sync.yaml'), 'bucket_definitions:\n  all:\n    data:\n      - SELECT * FROM items\n');
  const file = path.join(dir, 'config.yaml');
  writeFileSync(
    file,
    `storage:\n  type: postgresql\n  uri: ${storageUri}\n  schema: ${schema}\nsync_config:\n  path: sync.yaml\n`,
  );
  return file;
}

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(bin, args);
    return { code: 0, stdout, stderr };
  } catch (e) {
    const error = e as { code: number; stdout: string; stderr: string };
    return { code: error.code, stdout: error.stdout, stderr: error.stderr };
  }
}

describeIntegration('postgresStorage', 'bucketsync migrate and compact (built CLI)', (storageUrl) => {
  it('migrate creates the schema on an empty database, and running it twice is harmless', async () => {
    const schema = `mig_${process.pid}_${randomBytes(3).toString('hex')}`;
    const config = configFor(storageUrl, schema);
    const first = await run(['migrate', '-c', config]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/storage schema migrated from version 0 to \d+/);
    const second = await run(['migrate', '-c', config]);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/storage schema is up to date \(version \d+\)/);
    const storage = await PostgresStorage.open({ uri: storageUrl, schema });
    await storage.teardown();
    await storage.close();
  }, 30_000);

  it('migrate against an unreachable or wrong storage URI fails with one line naming it, without the password', async () => {
    const unreachable = `postgres://app:secret@127.0.0.1:${await freePort()}/nothing`;
    const down = await run(['migrate', '-c', configFor(unreachable, 'x')]);
    expect(down.code).toBe(1);
    expect(down.stderr.trim().split('\n')).toHaveLength(1);
    expect(down.stderr).toContain(`127.0.0.1`);
    expect(down.stderr).not.toContain('secret');
    const wrong = await run(['migrate', '-c', configFor('mysql://127.0.0.1/db', 'x')]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('storage.uri: expected a postgres:// URI');
  }, 30_000);

  it('compact runs against the deployed config and reports what it did', async () => {
    const schema = `cmp_${process.pid}_${randomBytes(3).toString('hex')}`;
    const config = configFor(storageUrl, schema);
    const empty = await run(['compact', '-c', config]);
    expect(empty.stdout).toContain('nothing to compact: no sync config is deployed');
    const storage = await PostgresStorage.open({ uri: storageUrl, schema });
    await storage.deploySyncConfig('bucket_definitions:\n  all:\n    data:\n      - SELECT * FROM items\n');
    const result = await run(['compact', '-c', config]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/sync config \d+: \d+ buckets compacted, \d+ ops moved, \d+ ops cleared/);
    await storage.teardown();
    await storage.close();
  }, 30_000);
});
