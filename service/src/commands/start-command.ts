/**
 * `bucketsync start -c FILE [-r unified|sync|api]`: opens storage (migrating it), deploys the
 * sync config, and replicates (roles `sync` and `unified`). Prints what it connected to and
 * what it is doing; on SIGTERM / SIGINT it stops replication (finishing the in-flight flush,
 * releasing the replication lock) and closes storage.
 */
import { hostname } from 'node:os';
import { createLogger } from '@bucketsync/lib-services';
import { ReplicationEngine } from '@bucketsync/service-core';
import { ServiceError } from '@bucketsync/service-errors';
import { parseSyncConfig } from '@bucketsync/sync-rules';
import { loadServiceConfig } from '../service-config.js';
import { UsageError } from './command-arguments.js';
import { parseConfigArguments } from './config-arguments.js';

const USAGE = 'Usage: bucketsync start -c <config file> [-r unified|sync|api]\n';

export async function startCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseConfigArguments(args, { allowRole: true });
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`bucketsync start: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    throw e;
  }
  const logger = createLogger().child({ role: parsed.role });
  try {
    const config = loadServiceConfig(parsed.configFile, { requireReplication: parsed.role !== 'api' });
    for (const warning of config.warnings) logger.warn(`config: ${warning}`);
    const compiled = parseSyncConfig(config.syncConfig.content);
    for (const d of compiled.diagnostics) {
      logger[d.severity === 'fatal' ? 'error' : 'warn'](
        `${config.syncConfig.source}:${d.line}:${d.column} ${d.message}`,
      );
    }
    if (!compiled.config) {
      logger.error(
        'the sync config has errors; fix them and start again (`bucketsync validate <file>` checks it offline)',
      );
      return 1;
    }

    const storage = await config.storage.module.open(config.storage.config);
    logger.info('bucket storage ready', { type: config.storage.module.type });
    const abort = new AbortController();
    let signals = 0;
    const onSignal = (signal: string) => {
      signals++;
      if (signals > 1) {
        logger.warn('second signal: exiting without waiting');
        process.exit(130);
      }
      logger.info(`${signal} received: stopping (press Ctrl-C again to exit at once)`);
      abort.abort();
    };
    process.on('SIGINT', () => onSignal('SIGINT'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));

    try {
      const previouslyActive = await storage.getActiveSyncConfig();
      const deployed = await storage.deploySyncConfig(config.syncConfig.content);
      const what = !deployed.changed
        ? 'sync config unchanged'
        : previouslyActive
          ? 'deployed a new sync config; it replicates beside the active one, which serves clients until the new one is consistent'
          : 'deployed the sync config';
      logger.info(what, { configId: deployed.config.configId, source: config.syncConfig.source });
      if (parsed.role === 'api') {
        logger.warn('the api role serves clients once the HTTP sync API is available; nothing to do yet');
        await new Promise<void>((resolve) => abort.signal.addEventListener('abort', () => resolve(), { once: true }));
        return 0;
      }
      const connection = config.connections[0]!;
      logger.info('replicating', { source: connection.module.type });
      const engine = new ReplicationEngine({
        storage,
        source: connection,
        describeSyncConfig: (content) => {
          const result = parseSyncConfig(content);
          if (!result.config) throw new Error('a deployed sync config no longer compiles');
          return { patterns: result.config.sourceTables, edition: result.config.edition };
        },
        logger,
        holder: `${hostname()}:${process.pid}`,
      });
      await engine.run(abort.signal);
      logger.info('stopped');
      return 0;
    } finally {
      await storage.close();
    }
  } catch (e) {
    logger.error(e instanceof ServiceError ? e.message : `could not start: ${(e as Error).message}`, { error: e });
    return 1;
  }
}
