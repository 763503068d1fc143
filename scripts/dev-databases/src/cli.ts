#!/usr/bin/env node
/**
 * `bucketsync-dev-databases`: starts the dev databases, prints how to connect, and keeps
 * them running until Ctrl-C (or exits at once after printing with `--once`).
 */
import { startTestDatabases } from './test-databases.js';

const once = process.argv.includes('--once');
const databases = await startTestDatabases({ preferredPorts: { postgres: 54329, mariadb: 33069 } });
for (const line of databases.description) console.log(line);
console.log('');
for (const [name, value] of Object.entries(databases.env)) console.log(`  ${name}=${value}`);
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
  console.log('\nDev databases are running. Press Ctrl-C to stop them.');
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
}
