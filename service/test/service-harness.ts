/**
 * Runs the built `bucketsync start` against the throwaway Postgres for end-to-end tests: a
 * fresh source schema and publication, a fresh storage schema, a dev HS256 key, port 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { signDevToken } from '@bucketsync/service-core';
import pg from 'pg';
import { storageIdentity } from '../src/module-table.js';

const bin = path.resolve(import.meta.dirname, '../bin/bucketsync');

export interface ServiceHarness {
  id: string;
  key: { kty: string; alg: string; kid: string; k: string };
  schema: string;
  endpoint: string;
  source: pg.Client;
  output: () => string;
  token(sub: string, options?: { expiresInSeconds?: number; claims?: Record<string, unknown> }): Promise<string>;
  waitForLog(text: string, count?: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<number | null>;
}

export async function startService(options: {
  sourceUrl: string;
  storageUrl: string;
  /** SQL run in the fresh schema (`search_path` is set to it). */
  setupSql: string;
  /** Sync config; `$schema` is replaced by the schema name. */
  syncConfig: string;
  /** Extra top-level config YAML (e.g. `api:\n  bson: false\n`). */
  extraConfig?: string;
  /** Run a second service on the source and storage of this one (setupSql is then not run). */
  sharing?: ServiceHarness;
  /** Wait for this log line (default: the first consistent checkpoint). */
  readyWhen?: string;
}): Promise<ServiceHarness> {
  const id = options.sharing?.id ?? `${process.pid}_${randomBytes(3).toString('hex')}`;
  const schema = `e2e_${id}`;
  const source = new pg.Client({ connectionString: options.sourceUrl });
  await source.connect();
  if (!options.sharing) {
    await source.query(`CREATE SCHEMA ${schema}; SET search_path = ${schema};`);
    await source.query(options.setupSql);
    await source.query(`CREATE PUBLICATION pub_${id} FOR TABLES IN SCHEMA ${schema}`);
  }

  const key = options.sharing?.key ?? {
    kty: 'oct',
    alg: 'HS256',
    kid: 'dev',
    k: randomBytes(32).toString('base64url'),
  };
  const dir = mkdtempSync(path.join(tmpdir(), 'bucketsync-e2e-'));
  writeFileSync(path.join(dir, 'sync.yaml'), options.syncConfig.replaceAll('$schema', schema));
  writeFileSync(
    path.join(dir, 'config.yaml'),
    [
      'replication:',
      '  connections:',
      '    - type: postgresql',
      `      uri: ${options.sourceUrl}`,
      `      publication_name: pub_${id}`,
      'storage:',
      '  type: postgresql',
      `  uri: ${options.storageUrl}`,
      `  schema: st_${id}`,
      'sync_config:',
      '  path: sync.yaml',
      'client_auth:',
      '  jwks:',
      `    keys: [${JSON.stringify(key)}]`,
      '  audience: [bucketsync]',
      'port: 0',
      'host: 127.0.0.1',
      options.extraConfig ?? '',
    ].join('\n'),
  );

  let output = '';
  const child: ChildProcess = spawn(bin, ['start', '-c', path.join(dir, 'config.yaml')], {
    env: { ...process.env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

  const waitForLog = async (text: string, count = 1, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (output.split(text).length - 1 < count) {
      if (Date.now() > deadline) throw new Error(`"${text}" was not logged within ${timeoutMs} ms; output:\n${output}`);
      if (child.exitCode !== null) throw new Error(`the service exited (${child.exitCode}); output:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await waitForLog('serving clients on');
  const port = /"port":(\d+)/.exec(output.slice(output.indexOf('serving clients on')))![1];
  await waitForLog(options.readyWhen ?? 'first consistent checkpoint');

  return {
    id,
    key,
    schema,
    endpoint: `http://127.0.0.1:${port}`,
    source,
    output: () => output,
    token: (sub, o = {}) =>
      signDevToken({
        key,
        sub,
        audience: 'bucketsync',
        expiresInSeconds: o.expiresInSeconds ?? 3600,
        ...(o.claims ? { claims: o.claims } : {}),
      }),
    waitForLog,
    async stop() {
      child.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
      if (code === null) child.kill('SIGKILL');
      if (options.sharing) {
        await source.end();
        return code;
      }
      await source.query(`DROP SCHEMA ${schema} CASCADE; DROP PUBLICATION pub_${id}`);
      // Slots are kept when a service stops (it resumes from them); this test is done with them.
      const identity = storageIdentity({ type: 'postgresql', uri: options.storageUrl, schema: `st_${id}` });
      await source
        .query(
          'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active AND slot_name LIKE $1',
          [`bucketsync_${identity}_%`],
        )
        .catch(() => undefined);
      await source.end();
      return code;
    },
  };
}
