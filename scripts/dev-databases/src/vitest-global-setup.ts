/**
 * Vitest global setup for packages with integration tests: starts the throwaway databases
 * unless the environment already names them (as `npm test` does), and stops them after.
 */
import { startTestDatabases, type TestDatabases } from './test-databases.js';

let databases: TestDatabases | undefined;

export async function setup(): Promise<void> {
  if (process.env.PG_TEST_URL && process.env.PG_STORAGE_TEST_URL && process.env.MYSQL_TEST_URL) return;
  databases = await startTestDatabases();
  // Workers are forked after global setup, so they inherit these.
  Object.assign(process.env, databases.env);
  for (const line of databases.description) console.log(`[test databases] ${line}`);
}

export async function teardown(): Promise<void> {
  await databases?.stop();
  databases = undefined;
}
