#!/usr/bin/env node
/**
 * `npm run demo`: starts the dev databases, creates a small schema (lists and todos of a few
 * users) and a sync config, starts BucketSync on it, syncs once as two users with the test
 * client and prints what each received, then keeps running and prints the endpoint and a dev
 * token until Ctrl-C. `--once` stops after the two clients (used by the demo's own test).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestDatabases } from '@bucketsync/dev-databases';
import { signDevToken } from '@bucketsync/service-core';
import pg from 'pg';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const once = process.argv.includes('--once');
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

function run(command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

say('Starting the dev databases...');
const databases = await startTestDatabases({ env: {}, preferredPorts: { postgres: 54329, mariadb: 33069 } });
let service: ChildProcess | undefined;
const shutdown = async (code: number) => {
  if (service && service.exitCode === null) {
    service.kill('SIGTERM');
    await new Promise((r) => service!.once('exit', r));
  }
  await databases.stop();
  process.exit(code);
};
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

try {
  const sourceUrl = databases.env.PG_TEST_URL!;
  const source = new pg.Client({ connectionString: sourceUrl });
  await source.connect();
  await source.query(SCHEMA);
  await source.end();
  say(`Source: ${sourceUrl} (tables lists, todos; publication powersync)`);

  const dir = path.join(root, '.dev', 'demo');
  mkdirSync(dir, { recursive: true });
  const key = { kty: 'oct', alg: 'HS256', kid: 'demo', k: randomBytes(32).toString('base64url') };
  const port = (await portFree(8080)) ? 8080 : 0;
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
  service = spawn(process.execPath, [path.join(root, 'service/bin/bucketsync'), 'start', '-c', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'info' },
  });
  service.stdout!.on('data', (d) => (log += d));
  service.stderr!.on('data', (d) => (log += d));
  const deadline = Date.now() + 60_000;
  while (!(log.includes('serving clients on') && log.includes('first consistent checkpoint'))) {
    if (service.exitCode !== null || Date.now() > deadline) {
      console.error(`BucketSync did not start:\n${log}`);
      await shutdown(1);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const actualPort = /"port":(\d+)/.exec(log.slice(log.indexOf('serving clients on')))![1];
  const endpoint = `http://127.0.0.1:${actualPort}`;
  say(`BucketSync is serving ${endpoint} (config: ${path.relative(root, configFile)})\n`);

  const testClient = path.join(root, 'test-client/bin/bucketsync-test-client');
  let failed = false;
  for (const user of ['alice', 'bob']) {
    const token = await signDevToken({ key, sub: user, audience: 'bucketsync', expiresInSeconds: 3600 });
    const result = await run(process.execPath, [testClient, 'fetch', '--endpoint', endpoint, '--token', token]);
    say(`--- ${user} received:\n${result.output.trim()}\n`);
    if (result.code !== 0) failed = true;
  }
  if (failed || once) await shutdown(failed ? 1 : 0);

  const devToken = await signDevToken({ key, sub: 'alice', audience: 'bucketsync', expiresInSeconds: 86_400 });
  say(`Endpoint:  ${endpoint}
Dev token (alice, 24 h):
${devToken}

Try:  node test-client/bin/bucketsync-test-client fetch --endpoint ${endpoint} --token <token>
Edit: psql ${sourceUrl}   (changes sync to connected clients)
Running. Press Ctrl-C to stop.`);
} catch (e) {
  console.error(e);
  await shutdown(1);
}
