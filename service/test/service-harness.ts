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
import { afterAll, beforeAll, expect } from 'vitest';
import { storageIdentity } from '../src/module-table.js';

const bin = path.resolve(import.meta.dirname, '../bin/bucketsync');

export interface ServiceHarness {
  id: string;
  key: { kty: string; alg: string; kid: string; k: string };
  schema: string;
  /** Schema of this service's bucket storage (in the storage database). */
  storageSchema: string;
  endpoint: string;
  source: pg.Client;
  output: () => string;
  /** The exit code once the process exited, else null. */
  exitCode: () => number | null;
  token(sub: string, options?: { expiresInSeconds?: number; claims?: Record<string, unknown> }): Promise<string>;
  waitForLog(text: string, count?: number, timeoutMs?: number): Promise<void>;
  /** Stops the service with `signal` (default SIGTERM); its exit code, or null if it had to be killed. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface ServiceOptions {
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
  /** Extra keys of the `storage` section (e.g. `{ max_row_bytes: 2048 }`). */
  storageConfig?: Record<string, string | number>;
  /** Extra arguments of `bucketsync start` (e.g. `['-r', 'api']`). */
  args?: string[];
}

/** Writes the config files of a service (shared source and storage when `options.sharing`); returns the config file. */
function writeServiceConfig(options: ServiceOptions, id: string, key: ServiceHarness['key']): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'bucketsync-e2e-'));
  const schema = `e2e_${id}`;
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
      ...Object.entries(options.storageConfig ?? {}).map(([k, v]) => `  ${k}: ${v}`),
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
  return path.join(dir, 'config.yaml');
}

function spawnService(configFile: string, args: string[] = []) {
  const process_ = { output: '' };
  const child: ChildProcess = spawn(bin, ['start', '-c', configFile, ...args], {
    env: { ...process.env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (process_.output += d));
  child.stderr!.on('data', (d) => (process_.output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => process_.output };
}

function newKey(): ServiceHarness['key'] {
  return { kty: 'oct', alg: 'HS256', kid: 'dev', k: randomBytes(32).toString('base64url') };
}

/**
 * Runs a service on the source and storage of `options.sharing` and waits for it to exit
 * (for configs it must refuse). Returns its exit code and output; kills it after `timeoutMs`.
 */
export async function runServiceToExit(
  options: ServiceOptions & { sharing: ServiceHarness },
  timeoutMs = 30_000,
): Promise<{ code: number | null; output: string }> {
  const { child, exited, output } = spawnService(
    writeServiceConfig(options, options.sharing.id, options.sharing.key),
    options.args,
  );
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    return { code: await exited, output: output() };
  } finally {
    clearTimeout(timer);
  }
}

export async function startService(options: ServiceOptions): Promise<ServiceHarness> {
  const id = options.sharing?.id ?? `${process.pid}_${randomBytes(3).toString('hex')}`;
  const schema = `e2e_${id}`;
  const source = new pg.Client({ connectionString: options.sourceUrl });
  await source.connect();
  if (!options.sharing) {
    await source.query(`CREATE SCHEMA ${schema}; SET search_path = ${schema};`);
    await source.query(options.setupSql);
    await source.query(`CREATE PUBLICATION pub_${id} FOR TABLES IN SCHEMA ${schema}`);
  }

  const key = options.sharing?.key ?? newKey();
  const { child, exited, output } = spawnService(writeServiceConfig(options, id, key), options.args);

  const waitForLog = async (text: string, count = 1, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (output().split(text).length - 1 < count) {
      if (Date.now() > deadline)
        throw new Error(`"${text}" was not logged within ${timeoutMs} ms; output:\n${output()}`);
      if (child.exitCode !== null) throw new Error(`the service exited (${child.exitCode}); output:\n${output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await waitForLog('serving clients on');
  const port = /"port":(\d+)/.exec(output().slice(output().indexOf('serving clients on')))![1];
  await waitForLog(options.readyWhen ?? 'first consistent checkpoint');

  return {
    id,
    key,
    schema,
    storageSchema: `st_${id}`,
    endpoint: `http://127.0.0.1:${port}`,
    source,
    output,
    exitCode: () => child.exitCode,
    token: (sub, o = {}) =>
      signDevToken({
        key,
        sub,
        audience: 'bucketsync',
        expiresInSeconds: o.expiresInSeconds ?? 3600,
        ...(o.claims ? { claims: o.claims } : {}),
      }),
    waitForLog,
    async stop(signal = 'SIGTERM') {
      child.kill(signal);
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

/**
 * Starts a service before the tests of the enclosing suite and stops it after them with
 * `stop.signal` (default SIGTERM), expecting a clean exit (code 0), then runs `stop.then`.
 * Returns the running service.
 */
export function useService(
  options: () => ServiceOptions,
  stop: { signal?: NodeJS.Signals; then?: (h: ServiceHarness) => void } = {},
): () => ServiceHarness {
  let h: ServiceHarness | undefined;
  beforeAll(async () => {
    h = await startService(options());
  }, 60_000);
  afterAll(async () => {
    if (!h) return;
    expect(await h.stop(stop.signal), h.output().split('\n').slice(-12).join('\n')).toBe(0);
    stop.then?.(h);
  }, 30_000);
  return () => {
    if (!h) throw new Error('the service did not start (see beforeAll)');
    return h;
  };
}

/** Polling with a deadline, shared by the service's tests and the browser tests. */
export { waitUntil } from './fault-harness.js';
