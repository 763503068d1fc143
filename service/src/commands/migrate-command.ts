/**
 * `bucketsync migrate -c FILE`: creates or upgrades the bucket storage schema. Harmless when
 * run twice; `start` runs it automatically.
 */
import { ServiceError } from '@bucketsync/service-errors';
import { loadServiceConfig } from '../service-config.js';
import { UsageError } from './command-arguments.js';
import { parseConfigArguments } from './config-arguments.js';

const USAGE = 'Usage: bucketsync migrate -c <config file>\n';

export async function migrateCommand(args: string[]): Promise<number> {
  try {
    const { configFile } = parseConfigArguments(args, { allowRole: false });
    const config = loadServiceConfig(configFile, { requireReplication: false });
    const result = (await config.storage.module.migrate(config.storage.config)) as {
      from?: number;
      to?: number;
      applied?: readonly string[];
    };
    if (result.applied && result.applied.length === 0) {
      console.log(`storage schema is up to date (version ${result.to})`);
    } else {
      console.log(`storage schema migrated from version ${result.from} to ${result.to}: ${result.applied?.join(', ')}`);
    }
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`bucketsync migrate: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    // One line: the error names the storage (without its password) and what to check.
    const message = e instanceof ServiceError ? e.message : String(e);
    process.stderr.write(`bucketsync migrate: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
    return 1;
  }
}
