#!/usr/bin/env node
/**
 * Starts the dev databases (the same throwaway servers the tests use), prints how to
 * connect, and keeps them running until Ctrl-C; `--once` stops them right after printing.
 */
import { startTestDatabases } from './test-databases.js';

const once = process.argv.includes('--once');
// Stable ports when free, so the printed commands keep working between runs.
const databases = await startTestDatabases({ env: {}, preferredPorts: { postgres: 54329, mariadb: 33069 } });
const pgSource = databases.env.PG_TEST_URL!;
const pgStorage = databases.env.PG_STORAGE_TEST_URL!;
const mysqlUrl = new URL(databases.env.MYSQL_TEST_URL!);

console.log(`
BucketSync dev databases (throwaway: data is removed when they stop)

  Postgres source   ${pgSource}
                    psql ${pgSource}
  Postgres storage  ${pgStorage}
  MariaDB source    ${mysqlUrl.href}
                    mariadb -h 127.0.0.1 -P ${mysqlUrl.port} -u root bucketsync_source

To run tests against these servers instead of fresh ones:
  ${Object.entries(databases.env)
    .map(([k, v]) => `${k}=${v}`)
    .join(' \\\n  ')} npm test
`);

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  console.log('Stopping dev databases...');
  await databases.stop();
  process.exit(0);
};
if (once) {
  await shutdown();
} else {
  console.log('Running. Press Ctrl-C to stop.');
  // SIGHUP: the terminal was closed; the servers must not outlive it.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void shutdown());
}
