/**
 * `bucketsync compact -c FILE`: compacts the bucket storage of the active (and processing)
 * sync config: superseded ops become MOVE, leading runs collapse into CLEAR; checksums stay
 * the same, so clients notice nothing but smaller downloads.
 */
import { ServiceError } from '@bucketsync/service-errors';
import { loadServiceConfig } from '../service-config.js';
import { UsageError } from './command-arguments.js';
import { parseConfigArguments } from './config-arguments.js';

const USAGE = 'Usage: bucketsync compact -c <config file>\n';

export async function compactCommand(args: string[]): Promise<number> {
  try {
    const { configFile } = parseConfigArguments(args, { allowRole: false });
    const config = loadServiceConfig(configFile, { requireReplication: false });
    const storage = await config.storage.module.open(config.storage.config);
    try {
      const configs = [await storage.getActiveSyncConfig(), await storage.getProcessingSyncConfig()].filter(
        (c) => c !== undefined,
      );
      if (configs.length === 0) console.log('nothing to compact: no sync config is deployed');
      for (const syncConfig of configs) {
        const started = Date.now();
        const result = await syncConfig.compact();
        console.log(
          `sync config ${syncConfig.configId}: ${result.bucketsCompacted} buckets compacted, ` +
            `${result.opsMoved} ops moved, ${result.opsCleared} ops cleared (${Date.now() - started} ms)`,
        );
      }
      return 0;
    } finally {
      await storage.close();
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`bucketsync compact: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    const message = e instanceof ServiceError ? e.message : String(e);
    process.stderr.write(`bucketsync compact: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
    return 1;
  }
}
