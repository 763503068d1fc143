#!/usr/bin/env node
/**
 * `npm run demo`: starts the dev databases, creates a small schema (lists and todos of a few
 * users) and a sync config, starts BucketSync on it, syncs once as two users with the test
 * client and prints what each received, then keeps running and prints the endpoint and a dev
 * token until Ctrl-C. `--once` stops after the two clients (used by the demo's own test);
 * `--free-ports` takes any free ports instead of the stable 8080 and 54329, so a test run can
 * start a demo beside another one (two demos checking the same port at once would both take it).
 * Whatever ends it (Ctrl-C, a closed terminal, SIGTERM, a failure), it stops BucketSync and the
 * databases and removes their files before exiting, printing "stopping ..." and "stopped".
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestDatabases, TEMPLATES_ROOT } from '@bucketsync/dev-databases';
import { signDevToken } from '@bucketsync/service-core';
import pg from 'pg';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const once = process.argv.includes('--once');
const freePorts = process.argv.includes('--free-ports');
const say = (text: string) => console.log(text);

const SCHEMA = `
  DROP PUBLICATION IF EXISTS powersync;
  DROP TABLE IF EXISTS todos, lists;
  CREATE TABLE lists (id text PRIMARY KEY, owner_id text NOT NULL, name text NOT NULL);
  CREATE TABLE todos (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), list_id text NOT NULL REFERENCES lists,
                      description text NOT NULL, completed boolean NOT NULL DEFAULT false, created_at timestamptz DEFAULT now());
  INSERT INTO lists VALUES ('groceries', 'alice', 'Groceries'), ('work', 'alice', 'Work'),
                           ('garden', 'bob', 'Garden'), ('books', 'carol', 'Books to read');
  INSERT INTO todos (list_id, description, completed)
    SELECT (ARRAY['groceries','work','garden','books'])[1 + n % 4], 'Task ' || n, n % 3 = 0 FROM generate_series(1, 40) n;
  CREATE PUBLICATION powersync FOR ALL TABLES;
`;

const SYNC_CONFIG = `# Each user syncs their own lists and the todos in them.
bucket_definitions:
  user_lists:
    parameters: SELECT id AS list_id FROM lists WHERE owner_id = request.user_id()
    data:
      - SELECT * FROM lists WHERE id = bucket.list_id
      - SELECT * FROM todos WHERE list_id = bucket.list_id
`;

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

// Everything the demo starts is stopped by `stop`, whatever ends the demo: Ctrl-C, a closed
// terminal (SIGHUP), SIGTERM, a failure, or the end of `--once`. Only SIGKILL skips it; the
// next run's startTestDatabases then stops the databases left behind (cleanStaleRuns), but
// not a BucketSync left behind, which nothing records.
const children = new Set<ChildProcess>();
let stopping: Promise<never> | undefined;
let service: ChildProcess | undefined;

/** Starts a child that `stop` will stop; refuses once stopping, so nothing starts behind it. */
function startChild(command: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  if (stopping) throw new Error('the demo is stopping');
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** SIGTERM (BucketSync stops its streams and closes its pools), then SIGKILL after `timeoutMs`. */
async function stopChild(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  if (hasExited(child)) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

function run(command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = startChild(command, args);
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

say('Starting the dev databases...');
// Postgres only: the demo replicates from Postgres into Postgres storage, so it neither needs
// nor starts MariaDB (and works on a machine without it).
const databasesStarting = startTestDatabases({
  env: {},
  servers: ['postgres'],
  preferredPorts: freePorts ? {} : { postgres: 54329 },
});
databasesStarting.catch(() => undefined); // awaited below and by stop; no unhandled rejection meanwhile

const SERVER_NAMES = { postgres: 'Postgres', mariadb: 'MariaDB' } as const;

/**
 * Stops BucketSync and the other children, then the databases (their files go with them),
 * printing "stopping ..." and "stopped", and exits with `code`. A signal during startup waits
 * for the databases to be up, then stops them. Idempotent: a second signal while stopping
 * (Ctrl-C pressed again, the pane closing after Ctrl-C) waits for the same stop.
 */
function stop(code: number, reason: string): Promise<never> {
  stopping ??= (async () => {
    const databases = await databasesStarting.catch(() => undefined);
    const running = [
      ...[...children]
        .filter((c) => !hasExited(c))
        .map((c) => (c === service ? `BucketSync (pid ${c.pid})` : `a child (pid ${c.pid})`)),
      ...(databases?.started ?? []).map((s) => `${SERVER_NAMES[s.server]} (pid ${s.pid}, port ${s.port})`),
    ];
    say(`${reason}: stopping ${running.join(', ') || 'nothing left running'}...`);
    await Promise.all([...children].map((c) => stopChild(c)));
    await databases?.stop();
    say(`stopped${databases?.runDirectory ? `; removed ${databases.runDirectory}` : ''}.`);
    process.exit(code);
  })();
  return stopping;
}
// SIGHUP is a closed terminal (or tmux pane): without a handler Node would exit at once and
// leave Postgres running. npm run demo reaches here through scripts/workspace.mjs, which passes
// its signals on and waits for this process.
let firstSignalAt = 0;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (!stopping) {
      firstSignalAt = Date.now();
      void stop(0, signal);
    } else if (Date.now() - firstSignalAt > 1000) {
      // Within a second it is the same Ctrl-C arriving twice (from the terminal and through workspace.mjs).
      say(`${signal}: already stopping, waiting for it to finish...`);
    }
  });
}

try {
  const databases = await databasesStarting;
  const sourceUrl = databases.env.PG_TEST_URL!;
  const source = new pg.Client({ connectionString: sourceUrl });
  await source.connect();
  await source.query(SCHEMA);
  await source.end();
  say(`Source: ${sourceUrl} (tables lists, todos; publication powersync)`);

  // In the databases' run directory: removed with them, and never shared with another demo
  // running at the same time (which would overwrite the key and URLs before our service reads them).
  const dir = path.join(databases.runDirectory!, 'demo');
  mkdirSync(dir, { recursive: true });
  const key = { kty: 'oct', alg: 'HS256', kid: 'demo', k: randomBytes(32).toString('base64url') };
  const port = !freePorts && (await portFree(8080)) ? 8080 : 0;
  writeFileSync(path.join(dir, 'sync-config.yaml'), SYNC_CONFIG);
  const configFile = path.join(dir, 'config.yaml');
  writeFileSync(
    configFile,
    [
      'replication:',
      '  connections:',
      '    - type: postgresql',
      `      uri: ${sourceUrl}`,
      'storage:',
      '  type: postgresql',
      `  uri: ${databases.env.PG_STORAGE_TEST_URL}`,
      'sync_config:',
      '  path: sync-config.yaml',
      'client_auth:',
      '  jwks:',
      `    keys: [${JSON.stringify(key)}]`,
      '  audience: [bucketsync]',
      `port: ${port}`,
      'host: 127.0.0.1',
      '',
    ].join('\n'),
  );

  say('Starting BucketSync...');
  let log = '';
  service = startChild(process.execPath, [path.join(root, 'service/bin/bucketsync'), 'start', '-c', configFile], {
    ...process.env,
    LOG_LEVEL: 'info',
  });
  service.stdout!.on('data', (d) => (log += d));
  service.stderr!.on('data', (d) => (log += d));
  const deadline = Date.now() + 60_000;
  while (!(log.includes('serving clients on') && log.includes('first consistent checkpoint'))) {
    if (stopping) await stopping;
    if (hasExited(service) || Date.now() > deadline) {
      console.error(`BucketSync did not start:\n${log}`);
      await stop(1, 'BucketSync did not start');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const actualPort = /"port":(\d+)/.exec(log.slice(log.indexOf('serving clients on')))![1];
  const endpoint = `http://127.0.0.1:${actualPort}`;
  say(`BucketSync is serving ${endpoint} (config: ${configFile})\n`);
  const postgres = databases.started.find((s) => s.server === 'postgres');
  // One line to find every process the demo started (its cleanup test reads it too).
  say(
    `Processes: BucketSync pid ${service.pid} port ${actualPort}; Postgres pid ${postgres?.pid} port ${postgres?.port}; ` +
      `database files in ${databases.runDirectory}`,
  );
  say(`(all stopped and removed on Ctrl-C; initdb templates stay in ${TEMPLATES_ROOT}, see README)\n`);

  const testClient = path.join(root, 'test-client/bin/bucketsync-test-client');
  let failed = false;
  for (const user of ['alice', 'bob']) {
    const token = await signDevToken({ key, sub: user, audience: 'bucketsync', expiresInSeconds: 3600 });
    const result = await run(process.execPath, [testClient, 'fetch', '--endpoint', endpoint, '--token', token]);
    say(`--- ${user} received:\n${result.output.trim()}\n`);
    if (result.code !== 0) failed = true;
  }
  if (failed || once) await stop(failed ? 1 : 0, failed ? 'a client failed' : 'done (--once)');

  const devToken = await signDevToken({ key, sub: 'alice', audience: 'bucketsync', expiresInSeconds: 86_400 });
  say(`Endpoint:  ${endpoint}
Dev token (alice, 24 h):
${devToken}

Try:  node test-client/bin/bucketsync-test-client fetch --endpoint ${endpoint} --token <token>
Edit: psql ${sourceUrl}   (changes sync to connected clients)
Running. Press Ctrl-C to stop.`);
} catch (e) {
  // Errors caused by stopping (a closed connection, a refused start) are expected, not news.
  if (!stopping) console.error(e);
  await stop(1, 'error');
}
