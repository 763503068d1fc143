/**
 * `bucketsync start -c FILE [-r unified|sync|api]`: opens storage (migrating it), deploys the
 * sync config, replicates (roles `sync`, `unified`) and serves clients (roles `api`,
 * `unified`). Prints what it connected to and what it is doing; on SIGTERM / SIGINT / SIGHUP
 * (a closed terminal) it closes client streams, stops replication (finishing the in-flight
 * flush, releasing the replication lock) and closes storage.
 */
import { createLogger, sleep, type Logger } from '@bucketsync/lib-services';
import {
  createSyncServer,
  formatDelay,
  lockHolderName,
  ReplicationEngine,
  RetryBackoff,
  TokenVerifier,
  type BucketStorage,
} from '@bucketsync/service-core';
import { ServiceError } from '@bucketsync/service-errors';
import { parseSyncConfig, type SyncConfig } from '@bucketsync/sync-rules';
import { loadServiceConfig, type ServiceConfig } from '../service-config.js';
import { UsageError } from './command-arguments.js';
import { parseConfigArguments, type ServiceRole } from './config-arguments.js';

const USAGE = 'Usage: bucketsync start -c <config file> [-r unified|sync|api]\n';

/** Compiled sync configs by text: compiling is done once per deployed config, not per connection. */
function syncConfigCompiler(): (content: string) => SyncConfig {
  const cache = new Map<string, SyncConfig>();
  return (content) => {
    let compiled = cache.get(content);
    if (!compiled) {
      const result = parseSyncConfig(content);
      if (!result.config) throw new Error('a deployed sync config no longer compiles');
      compiled = result.config;
      cache.set(content, compiled);
    }
    return compiled;
  };
}

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
    const config = loadServiceConfig(parsed.configFile, { requireClientAuth: parsed.role !== 'sync' });
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
    return await run(config, parsed.role, logger);
  } catch (e) {
    logger.error(e instanceof ServiceError ? e.message : `could not start: ${(e as Error).message}`, { error: e });
    return 1;
  }
}

/**
 * Opens bucket storage. While it cannot be reached (not up yet, restarting) it retries with
 * backoff, saying so; a permanent error (bad credentials, a missing database, a newer schema)
 * is thrown at once, since nothing changes until the settings do. Undefined when aborted.
 */
async function openStorage(
  config: ServiceConfig,
  logger: Logger,
  signal: AbortSignal,
): Promise<BucketStorage | undefined> {
  const backoff = new RetryBackoff(); // 1 s doubling to 60 s, like replication
  for (;;) {
    try {
      return await config.storage.module.open(config.storage.config);
    } catch (e) {
      if (!(e instanceof ServiceError) || !e.retryable || signal.aborted) throw e;
      const delay = backoff.next();
      logger.warn(`${e.message} Retrying in ${formatDelay(delay)}`, { error: e, retryInMs: delay });
      await sleep(delay, signal).catch(() => undefined);
      if (signal.aborted) return undefined;
    }
  }
}

async function run(config: ServiceConfig, role: ServiceRole, logger: Logger): Promise<number> {
  const abort = new AbortController();
  let signals = 0;
  const onSignal = (signal: string) => {
    if (++signals > 1) {
      logger.warn('second signal: exiting without waiting');
      process.exit(130);
    }
    logger.info(`${signal} received: stopping (send it again to exit at once)`);
    abort.abort();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGHUP', () => onSignal('SIGHUP'));
  const stopped = new Promise<void>((resolve) =>
    abort.signal.addEventListener('abort', () => resolve(), { once: true }),
  );
  let opened: BucketStorage | undefined;
  try {
    opened = await openStorage(config, logger, abort.signal);
  } catch (e) {
    logger.error(
      `${e instanceof ServiceError ? e.message : `could not open bucket storage: ${(e as Error).message}`} ` +
        'Stopping (exit code 1): this does not pass by itself; fix it and start again.',
      { error: e },
    );
    return 1;
  }
  if (!opened) {
    logger.info('stopped before bucket storage was reachable');
    return 0;
  }
  const storage = opened;
  logger.info('bucket storage ready', { type: config.storage.module.type });
  const compile = syncConfigCompiler();
  const connection = config.connections[0]!;

  try {
    const previouslyActive = await storage.getActiveSyncConfig();
    const deployed = await storage.deploySyncConfig(config.syncConfig.content);
    const what = !deployed.changed
      ? 'sync config unchanged'
      : previouslyActive
        ? 'deployed a new sync config; it replicates beside the active one, which serves clients until the new one is consistent'
        : 'deployed the sync config';
    logger.info(what, { configId: deployed.config.configId, source: config.syncConfig.source });

    const tasks: Promise<unknown>[] = [];
    if (role !== 'api') {
      logger.info('replicating', { source: connection.module.type });
      const engine = new ReplicationEngine({
        storage,
        source: connection,
        describeSyncConfig: (content) => {
          const rules = compile(content);
          return { patterns: rules.sourceTables, edition: rules.edition };
        },
        logger,
        holder: lockHolderName(),
        replicationIdPrefix: config.storage.identity,
      });
      tasks.push(engine.run(abort.signal).then(() => logger.info('replication stopped')));
    }
    if (role !== 'sync') {
      const sourceApi = connection.module.createSourceApi({
        config: connection.config,
        replicationId: 'api',
        edition: 1,
      });
      const server = await createSyncServer({
        storage,
        authenticator: new TokenVerifier(config.clientAuth!, { logger: logger.child({ component: 'auth' }) }),
        sourceApi,
        compile,
        logger: logger.child({ component: 'api' }),
        allowBson: config.api.bson,
        gzip: config.api.gzip,
        ...(config.api.parameters.maxConcurrentConnections !== undefined
          ? { maxConcurrentConnections: config.api.parameters.maxConcurrentConnections }
          : {}),
        limits: {
          ...(config.api.parameters.maxBucketsPerConnection !== undefined
            ? { maxBuckets: config.api.parameters.maxBucketsPerConnection }
            : {}),
          ...(config.api.parameters.maxParameterQueryResults !== undefined
            ? { maxParameterQueryResults: config.api.parameters.maxParameterQueryResults }
            : {}),
        },
        corsOrigins: config.api.cors.origins,
        ...(config.api.syncBufferMb !== undefined ? { syncBufferBytes: config.api.syncBufferMb * 1024 * 1024 } : {}),
      });
      const address = await server.listen({ port: config.port, host: config.host });
      logger.info(`serving clients on ${address}`, { port: (server.server.address() as { port: number }).port });
      tasks.push(
        stopped.then(async () => {
          await server.close();
          await sourceApi.close();
          logger.info('api stopped');
        }),
      );
    }
    await Promise.all(tasks);
    logger.info('stopped');
    return 0;
  } finally {
    abort.abort();
    await storage.close();
  }
}
