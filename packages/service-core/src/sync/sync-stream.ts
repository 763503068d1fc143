/**
 * The sync engine for one connection (sync-protocol.md): resolves the connection's buckets
 * from its token, parameters and stream subscriptions; sends a full `checkpoint`, then
 * `checkpoint_diff`s; sends bucket data in chunks by priority with
 * `partial_checkpoint_complete`, then `checkpoint_complete`; keepalives with the token's
 * remaining lifetime; ends when the token expires. A checkpoint whose data compaction
 * invalidated is abandoned for a new one (invariant 8). Lines are produced lazily, so the
 * HTTP layer's back-pressure paces the reads from storage.
 */
import type { Logger } from '@bucketsync/lib-services';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import {
  serializeParameterLookup,
  type ConnectionLimits,
  type ResolvedBucket,
  type SyncConfig,
} from '@bucketsync/sync-rules';
import type { BucketStorage } from '../storage/bucket-storage.js';
import type { OplogEntry } from '../storage/storage-types.js';
import type { SyncConfigStorage } from '../storage/sync-config-storage.js';
import type { SyncLine, WireBucketChecksum, WireOp, WireStreamStatus } from './sync-lines.js';
import type { SyncRequest } from './sync-request.js';

/** The authenticated user of a connection. */
export interface SyncIdentity {
  userId: string;
  claims: Record<string, unknown>;
  /** Token expiry, epoch seconds. */
  expiresAt: number;
}

export interface SyncStreamOptions {
  storage: BucketStorage;
  identity: SyncIdentity;
  request: SyncRequest;
  signal: AbortSignal;
  /** Compiles a deployed sync config's text (cached by the caller). */
  compile(content: string): SyncConfig;
  logger: Logger;
  limits?: ConnectionLimits;
  /** Seconds between `token_expires_in` keepalives. Default 20. */
  keepaliveSeconds?: number;
  /** Bucket data chunk limits. Defaults: 10,000 ops, 1 MiB. */
  chunkOps?: number;
  chunkBytes?: number;
  /** While no sync config is active yet (first replication running), how often to look again. Default 1 s. */
  waitForConfigMs?: number;
}

/** How often a connection checks that its sync config is still the active one. */
const ACTIVE_CHECK_INTERVAL_MS = 2000;

/** One active-config lookup per storage per interval, shared by every connection of the process. */
const activeConfigLookups = new WeakMap<BucketStorage, { at: number; configId: Promise<number | undefined> }>();

function activeConfigId(storage: BucketStorage): Promise<number | undefined> {
  const cached = activeConfigLookups.get(storage);
  if (cached && Date.now() - cached.at < ACTIVE_CHECK_INTERVAL_MS / 2) return cached.configId;
  const configId = storage.getActiveSyncConfig().then(
    (c) => c?.configId,
    () => undefined,
  );
  activeConfigLookups.set(storage, { at: Date.now(), configId });
  return configId;
}

/** Coalescing wake-ups: the loop handles the newest checkpoint and one keepalive at a time. */
class Wakeups {
  checkpoint = false;
  keepalive = false;
  private waiter: (() => void) | undefined;

  wake(kind: 'checkpoint' | 'keepalive'): void {
    this[kind] = true;
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async next(signal: AbortSignal): Promise<void> {
    if (this.checkpoint || this.keepalive || signal.aborted) return;
    await new Promise<void>((resolve) => {
      const onAbort = () => resolve();
      this.waiter = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

function toWireOp(op: OplogEntry): WireOp {
  const wire: WireOp = { op_id: op.opId.toString(), op: op.op, checksum: op.checksum };
  if (op.objectType !== undefined) wire.object_type = op.objectType;
  if (op.objectId !== undefined) wire.object_id = op.objectId;
  if (op.subkey !== undefined) wire.subkey = op.subkey;
  if (op.op === 'PUT') wire.data = op.data ?? null;
  return wire;
}

/** Produces the lines of one sync connection until the signal aborts or the token expires. */
export async function* syncStream(options: SyncStreamOptions): AsyncGenerator<SyncLine> {
  const { storage, identity, request, signal, logger } = options;
  const keepaliveMs = (options.keepaliveSeconds ?? 20) * 1000;
  const secondsLeft = () => Math.max(0, Math.floor(identity.expiresAt - Date.now() / 1000));

  // Wait for an active config (the first replication may still be copying).
  let config: SyncConfigStorage | undefined;
  for (;;) {
    config = await storage.getActiveSyncConfig();
    if (config || signal.aborted) break;
    await new Promise((r) => setTimeout(r, options.waitForConfigMs ?? 1000));
  }
  if (!config) return;

  const rules = options.compile(config.content);
  const resolution = rules.resolveConnection({
    claims: { ...identity.claims, sub: identity.userId },
    parameters: request.parameters,
    ...(request.streams ? { streams: request.streams } : {}),
  });
  const lookupKeys = resolution.lookups.map((l) => serializeParameterLookup(l));

  const wake = new Wakeups();
  const watchAbort = new AbortController();
  const stopWatch = () => watchAbort.abort();
  signal.addEventListener('abort', stopWatch, { once: true });
  const watchedConfig = config;
  // Without its watch a stream never sends a newer checkpoint: a failed watch (storage
  // unreachable) ends the stream, so the client reconnects instead of waiting on a dead one.
  let watchFailure: unknown;
  const watcher = (async () => {
    for await (const _event of watchedConfig.watchCheckpoints(watchAbort.signal)) wake.wake('checkpoint');
  })().catch((e: unknown) => {
    if (watchAbort.signal.aborted) return;
    watchFailure = e ?? new Error('the checkpoint watch failed');
    wake.wake('keepalive');
  });
  const keepaliveTimer = setInterval(() => wake.wake('keepalive'), keepaliveMs);
  // End promptly when the token expires, not at the next keepalive.
  const expiryTimer = setTimeout(
    () => wake.wake('keepalive'),
    Math.min(2 ** 31 - 1, Math.max(0, identity.expiresAt * 1000 - Date.now()) + 50),
  );
  wake.wake('checkpoint');

  // What the client holds: op id per bucket (from the request, then from what we sent).
  const clientAfter = new Map<string, bigint>(request.buckets.map((b) => [b.name, b.after]));
  let sentBuckets: Map<string, WireBucketChecksum> | undefined;
  let sentOpId: bigint | undefined;
  let sentWriteCheckpoint: string | undefined;
  // After a new sync config becomes active the old one is cleaned up: end this stream so the
  // client reconnects and resolves its buckets against the new config.
  let configChanged = false;
  const activeCheck = setInterval(() => {
    void activeConfigId(storage).then((active) => {
      if (active !== undefined && active !== watchedConfig.configId) {
        configChanged = true;
        wake.wake('keepalive');
      }
    });
  }, ACTIVE_CHECK_INTERVAL_MS);

  try {
    while (!signal.aborted) {
      await wake.next(signal);
      if (signal.aborted) break;
      if (watchFailure !== undefined) throw watchFailure;
      if (configChanged) {
        logger.info('the sync config changed; ending the stream so the client reconnects', { from: config.configId });
        return;
      }
      if (wake.keepalive) {
        wake.keepalive = false;
        const left = secondsLeft();
        yield { token_expires_in: left };
        if (left === 0) return; // the client reconnects with a fresh token
      }
      if (!wake.checkpoint) continue;
      wake.checkpoint = false;

      const checkpoint = await config.getCheckpoint();
      if (checkpoint.opId === 0n) continue; // not consistent yet

      const writeCheckpoint = await findWriteCheckpoint(
        storage,
        config,
        identity.userId,
        request.client_id,
        checkpoint,
      );
      if (checkpoint.opId === sentOpId && writeCheckpoint === sentWriteCheckpoint) continue;

      const lookupResults =
        lookupKeys.length > 0 ? await config.getParameterSets(checkpoint.opId, lookupKeys) : new Map();
      const resolved = resolution.finish(lookupResults, options.limits);
      if (resolved.error) throw new ServiceError(ErrorCode.TOO_MANY_BUCKETS, resolved.error);
      const checksums = await config.getChecksums(
        checkpoint.opId,
        resolved.buckets.map((b) => b.bucket),
      );
      const buckets = new Map<string, WireBucketChecksum>();
      for (const b of resolved.buckets) {
        const sum = checksums.get(b.bucket);
        buckets.set(b.bucket, {
          bucket: b.bucket,
          checksum: sum?.checksum ?? 0,
          count: sum?.count ?? 0,
          priority: b.priority,
          subscriptions: b.subscriptions,
        });
      }
      const lastOpId = checkpoint.opId.toString();
      const wc = writeCheckpoint !== undefined ? { write_checkpoint: writeCheckpoint } : {};
      if (!sentBuckets) {
        // Known streams, plus any unknown stream a subscription named (reported with its error).
        const names = [
          ...resolution.streams,
          ...resolved.streamErrors
            .filter((e) => !resolution.streams.some((s) => s.name === e.stream))
            .map((e) => ({ name: e.stream, isDefault: false })),
        ].filter((s, i, all) => all.findIndex((o) => o.name === s.name) === i);
        const streams: WireStreamStatus[] = names.map((s) => ({
          name: s.name,
          is_default: s.isDefault,
          errors: resolved.streamErrors
            .filter((e) => e.stream === s.name)
            .map((e) => ({ subscription: e.subscription, message: e.message })),
        }));
        yield { checkpoint: { last_op_id: lastOpId, ...wc, buckets: [...buckets.values()], streams } };
      } else {
        const previous = sentBuckets;
        const updated = [...buckets.values()].filter((b) => {
          const old = previous.get(b.bucket);
          return !old || old.checksum !== b.checksum || old.count !== b.count || old.priority !== b.priority;
        });
        const removed = [...previous.keys()].filter((name) => !buckets.has(name));
        yield { checkpoint_diff: { last_op_id: lastOpId, ...wc, updated_buckets: updated, removed_buckets: removed } };
      }
      for (const name of clientAfter.keys()) if (!buckets.has(name)) clientAfter.delete(name);
      sentBuckets = buckets;
      sentOpId = checkpoint.opId;
      sentWriteCheckpoint = writeCheckpoint;

      // Data, highest priority (lowest number) first.
      const byPriority = new Map<number, ResolvedBucket[]>();
      for (const b of resolved.buckets) {
        if ((clientAfter.get(b.bucket) ?? 0n) >= checkpoint.opId) continue;
        byPriority.set(b.priority, [...(byPriority.get(b.priority) ?? []), b]);
      }
      const priorities = [...new Set(resolved.buckets.map((b) => b.priority))].sort((a, b) => a - b);
      let abandoned = false;
      for (const priority of priorities) {
        const group = byPriority.get(priority) ?? [];
        if (group.length > 0) {
          for await (const chunk of config.getBucketData(
            {
              checkpoint: checkpoint.opId,
              buckets: group.map((b) => ({ bucket: b.bucket, after: clientAfter.get(b.bucket) ?? 0n })),
              ...(options.chunkOps !== undefined ? { chunkOps: options.chunkOps } : {}),
              ...(options.chunkBytes !== undefined ? { chunkBytes: options.chunkBytes } : {}),
            },
            signal,
          )) {
            if (chunk.checkpointInvalidated) {
              abandoned = true; // compaction moved data under us: send a newer checkpoint instead
              break;
            }
            if (chunk.ops.length > 0) {
              yield {
                data: {
                  bucket: chunk.bucket,
                  after: chunk.after.toString(),
                  next_after: chunk.nextAfter.toString(),
                  has_more: chunk.hasMore,
                  data: chunk.ops.map(toWireOp),
                },
              };
            }
            clientAfter.set(chunk.bucket, chunk.nextAfter);
            if (wake.keepalive) {
              wake.keepalive = false;
              yield { token_expires_in: secondsLeft() };
              if (secondsLeft() === 0) return;
            }
            if (signal.aborted) return;
          }
        }
        if (abandoned) break;
        if (priority !== priorities[priorities.length - 1]) {
          yield { partial_checkpoint_complete: { last_op_id: lastOpId, priority } };
        }
      }
      if (abandoned) {
        sentOpId = undefined; // force a fresh checkpoint line
        wake.wake('checkpoint');
        continue;
      }
      for (const b of resolved.buckets) clientAfter.set(b.bucket, checkpoint.opId);
      yield { checkpoint_complete: { last_op_id: lastOpId } };
    }
  } finally {
    clearInterval(keepaliveTimer);
    clearTimeout(expiryTimer);
    clearInterval(activeCheck);
    signal.removeEventListener('abort', stopWatch);
    watchAbort.abort();
    await watcher;
  }
}

async function findWriteCheckpoint(
  storage: BucketStorage,
  config: SyncConfigStorage,
  userId: string,
  clientId: string | undefined,
  checkpoint: { opId: bigint; position: string | undefined },
): Promise<string | undefined> {
  const custom = await config.getCustomWriteCheckpoint(userId, checkpoint.opId);
  if (custom !== undefined) return custom.toString();
  if (!clientId || !checkpoint.position) return undefined;
  const managed = await storage.getManagedWriteCheckpoint({ userId, clientId, position: checkpoint.position });
  return managed?.toString();
}
