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
    const result = await config.storage.module.migrate(config.storage.config);
    console.log(`storage migrated: ${JSON.stringify(result)}`);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`bucketsync migrate: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    process.stderr.write(`bucketsync migrate: ${e instanceof ServiceError ? e.message : String(e)}\n`);
    return 1;
  }
}
