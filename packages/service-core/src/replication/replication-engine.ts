/**
 * The replication engine: keeps one coordinator running for each sync config that needs
 * replicating (the active one, and a processing one beside it after a deploy), each under
 * its storage replication lock. Storage activates a processing config at its first
 * consistent checkpoint; the engine then stops the old config's job, drops its stream
 * resources (slot) and cleans up its storage. History loss restarts into a fresh copy; an
 * unexpected error (a bug, BS9001) starts the job again after a slow backoff; any other
 * permanent failure stops that config's replication until the service is restarted (the
 * coordinator has already retried what retrying can fix), and the log says so.
 */
import { sleep, type Logger } from '@bucketsync/lib-services';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import type { BucketStorage, ReplicationLock } from '../storage/bucket-storage.js';
import type { SyncConfigStorage } from '../storage/sync-config-storage.js';
import { holderIsDeadLocalProcess } from './lock-holder.js';
import { ReplicationCoordinator, type ReplicationCoordinatorOptions } from './replication-coordinator.js';
import { formatDelay, RetryBackoff } from './retry-backoff.js';
import type { SourceModule, SourceTablePattern } from './source-module.js';

/** Restarts after an unexpected error: 5 s doubling to 5 min (reset after 5 min of running). */
const UNEXPECTED_RETRY = { initialDelayMs: 5_000, maxDelayMs: 300_000 };

/**
 * What the engine does after a job failed (the coordinator already retried what it could):
 * `fresh-copy` when the source lost the history replication needs; `restart-later` for an
 * error no module classified (a bug, BS9001), which is not known to be permanent; `stop` for a
 * classified permanent error (bad credentials, a missing right or setting), which needs a fix.
 */
export function replicationFailureAction(error: unknown): 'fresh-copy' | 'restart-later' | 'stop' {
  if (!(error instanceof ServiceError) || error.code === ErrorCode.INTERNAL) return 'restart-later';
  if (error.code === ErrorCode.SOURCE_HISTORY_LOST) return 'fresh-copy';
  return 'stop';
}

export interface ReplicationEngineOptions<Config> {
  storage: BucketStorage;
  source: { module: SourceModule<Config>; config: Config };
  /** Table patterns and edition of a sync config's text (from the sync config engine). */
  describeSyncConfig(content: string): { patterns: readonly SourceTablePattern[]; edition: number };
  logger: Logger;
  /** Identifies this process in replication locks. */
  holder: string;
  /**
   * Distinguishes this bucket storage from others replicating the same source, so their
   * stream resources (Postgres slots) never collide. Stable for a storage: changing it
   * orphans the old resources. Default '' (one BucketSync per source).
   */
  replicationIdPrefix?: string;
  /** How often config states are re-read and locks retried. Default 2 s. */
  pollIntervalMs?: number;
  coordinator?: Pick<ReplicationCoordinatorOptions, 'tableConcurrency' | 'chunkSize' | 'retry'>;
}

interface Job {
  configId: number;
  abort: AbortController;
  done: Promise<void>;
}

export class ReplicationEngine<Config> {
  private readonly jobs = new Map<number, Job>();
  private readonly lockWaitLogged = new Set<number>();
  /** Configs whose source history is gone: they keep serving but are not replicated again. */
  private readonly historyLost = new Set<number>();
  /**
   * Configs whose replication stopped with a permanent error (bad credentials, a missing
   * setting or right): not started again by this process, since nothing would change until
   * someone fixes the cause and restarts the service. Their stored data keeps serving clients.
   */
  private readonly failed = new Set<number>();
  /** Per config, the delay before starting a job again after an unexpected error. */
  private readonly unexpectedBackoff = new Map<number, RetryBackoff>();
  /** Stopped configs whose stream resources and storage are still to be cleaned up. */
  private readonly toRetire = new Set<number>();

  constructor(private readonly options: ReplicationEngineOptions<Config>) {}

  /**
   * Runs until `signal` aborts, then stops every job (finishing in-flight flushes, releasing
   * locks). A round that fails (bucket storage unreachable) is tried again after the poll
   * interval; running jobs retry on their own meanwhile.
   */
  async run(signal: AbortSignal): Promise<void> {
    const { logger } = this.options;
    const pollMs = this.options.pollIntervalMs ?? 2000;
    let failing = false;
    try {
      while (!signal.aborted) {
        try {
          await this.round(signal);
          if (failing) logger.info('checking which sync configs to replicate works again');
          failing = false;
        } catch (e) {
          // Once per outage: the jobs log their own retries.
          if (!failing)
            logger.warn('could not check which sync configs to replicate; retrying', { error: e, retryInMs: pollMs });
          failing = true;
        }
        await sleep(pollMs, signal).catch(() => undefined);
      }
    } finally {
      for (const job of this.jobs.values()) job.abort.abort();
      await Promise.all([...this.jobs.values()].map((j) => j.done));
      this.jobs.clear();
    }
  }

  /** One round: stop and retire replaced configs, start jobs for the wanted ones. */
  private async round(signal: AbortSignal): Promise<void> {
    const { storage, logger } = this.options;
    const wanted = [await storage.getActiveSyncConfig(), await storage.getProcessingSyncConfig()].filter(
      (c): c is SyncConfigStorage => c !== undefined,
    );
    const wantedIds = new Set(wanted.map((c) => c.configId));
    for (const [configId, job] of this.jobs) {
      if (wantedIds.has(configId)) continue;
      logger.info('sync config replaced; stopping its replication', { configId });
      job.abort.abort();
      await job.done;
      this.jobs.delete(configId);
      this.toRetire.add(configId);
    }
    // A config whose history was lost has no job; once its fresh copy replaced it, retire it too.
    for (const configId of this.historyLost) {
      if (wantedIds.has(configId)) continue;
      this.historyLost.delete(configId);
      this.toRetire.add(configId);
    }
    // A config stopped by a permanent error that was replaced since: retire it like any other.
    for (const configId of this.failed) {
      if (wantedIds.has(configId)) continue;
      this.failed.delete(configId);
      this.toRetire.add(configId);
    }
    // Kept until done: a retirement that failed is tried again next round.
    for (const configId of this.toRetire) {
      await this.retire(configId);
      this.toRetire.delete(configId);
    }
    for (const config of wanted) {
      if (
        !this.jobs.has(config.configId) &&
        !this.historyLost.has(config.configId) &&
        !this.failed.has(config.configId)
      ) {
        await this.startJob(config, signal);
      }
    }
  }

  private context(configId: number, content: string) {
    const { edition } = this.options.describeSyncConfig(content);
    const prefix = this.options.replicationIdPrefix ? `${this.options.replicationIdPrefix}_` : '';
    return { config: this.options.source.config, replicationId: `${prefix}c${configId}`, edition };
  }

  private async startJob(config: SyncConfigStorage, signal: AbortSignal): Promise<void> {
    const { storage, logger, holder } = this.options;
    const lock = await storage.acquireReplicationLock(config.configId, {
      holder,
      takeOver: (current) => {
        const dead = holderIsDeadLocalProcess(current, holder);
        if (dead)
          logger.info('taking over the replication lock of a process that no longer runs', { previous: current });
        return dead;
      },
    });
    if (!lock) {
      if (!this.lockWaitLogged.has(config.configId)) {
        logger.info('another process replicates this sync config; waiting for its lock', { configId: config.configId });
        this.lockWaitLogged.add(config.configId);
      }
      return;
    }
    this.lockWaitLogged.delete(config.configId);
    const abort = new AbortController();
    const onParentAbort = () => abort.abort();
    signal.addEventListener('abort', onParentAbort, { once: true });
    if (signal.aborted) abort.abort();
    const done = this.runJob(config, lock, abort.signal).finally(() => {
      signal.removeEventListener('abort', onParentAbort);
      this.jobs.delete(config.configId);
    });
    this.jobs.set(config.configId, { configId: config.configId, abort, done });
  }

  private async runJob(config: SyncConfigStorage, lock: ReplicationLock, signal: AbortSignal): Promise<void> {
    const { storage, logger, source } = this.options;
    const log = logger.child({ configId: config.configId });
    const context = this.context(config.configId, config.content);
    const { patterns } = this.options.describeSyncConfig(config.content);
    const refresh = setInterval(() => {
      lock.refresh().catch((e: unknown) => log.warn('could not refresh the replication lock', { error: e }));
    }, 20_000);
    const snapshotter = source.module.createSnapshotter(context);
    const streamer = source.module.createStreamer(context);
    const started = Date.now();
    try {
      log.info('replicating sync config');
      const coordinator = new ReplicationCoordinator({
        storage: config,
        snapshotter,
        streamer,
        patterns,
        logger: log,
        ...this.options.coordinator,
      });
      await coordinator.run(signal);
    } catch (e) {
      const action = replicationFailureAction(e);
      if (action === 'fresh-copy') {
        log.error('the source lost the history replication needs; starting a fresh copy while clients keep syncing', {
          error: e,
        });
        this.historyLost.add(config.configId);
        // Its stream resources (an invalidated slot) can never be used again: drop them now.
        await streamer.destroy().catch((d: unknown) => log.warn('could not drop the replication stream', { error: d }));
        try {
          const fresh = await storage.restartReplication(config.configId);
          log.info('started the fresh copy as a new sync config', { freshConfigId: fresh.configId });
        } catch (r) {
          // Storage is unreachable: the next round replicates this config again, fails the same way and retries this.
          log.error('could not start the fresh copy; retrying later', { error: r });
          this.historyLost.delete(config.configId);
          await sleep(this.options.pollIntervalMs ?? 2000, signal).catch(() => undefined);
        }
      } else if (action === 'restart-later') {
        // A bug or an error nobody classified: not known to be permanent, so the job starts again,
        // slowly (a stalled replication serves stale data; a hot retry loop floods the log).
        const backoff = this.unexpectedBackoff.get(config.configId) ?? new RetryBackoff(UNEXPECTED_RETRY);
        this.unexpectedBackoff.set(config.configId, backoff);
        if (Date.now() - started > UNEXPECTED_RETRY.maxDelayMs) backoff.reset(); // it ran a while: a new failure
        const delay = backoff.next();
        log.error(
          `replication of this sync config failed unexpectedly; starting it again in ${formatDelay(delay)} (report it if it repeats)`,
          { error: e },
        );
        await sleep(delay, signal).catch(() => undefined);
      } else {
        // Not retried: the coordinator retries what retrying can fix; this needs a change first.
        this.failed.add(config.configId);
        log.error(
          'replication of this sync config stopped and is not retried: fix the cause named in the error, then restart the service',
          { error: e },
        );
      }
    } finally {
      clearInterval(refresh);
      await streamer.close().catch(() => undefined);
      await snapshotter.close().catch(() => undefined);
      await lock.release().catch(() => undefined);
    }
  }

  /** A stopped config: drop its stream resources (e.g. the slot) and its stored data. */
  private async retire(configId: number): Promise<void> {
    const { storage, source, logger } = this.options;
    const config = await storage.getSyncConfig(configId);
    if (config) {
      const streamer = source.module.createStreamer(this.context(configId, config.content));
      await streamer
        .destroy()
        .catch((e: unknown) => logger.warn('could not drop the replication stream', { configId, error: e }));
      await streamer.close().catch(() => undefined);
    }
    const cleaned = await storage.cleanupStoppedConfigs();
    logger.info('cleaned up stopped sync configs', { cleaned });
  }
}
