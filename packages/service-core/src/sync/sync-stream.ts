/**
 * The sync engine for one connection (sync-protocol.md): resolves the connection's buckets
 * from its token, parameters and stream subscriptions; sends a full `checkpoint`, then
 * `checkpoint_diff`s; sends bucket data in chunks by priority with
 * `partial_checkpoint_complete`, then `checkpoint_complete`; keepalives with the token's
 * remaining lifetime; ends when the token expires. A checkpoint whose data compaction
 * invalidated is abandoned for a new one (invariant 8). Lines are produced lazily, so the
 * HTTP layer's back-pressure paces the reads from storage. Per checkpoint, a connection reads
 * only what changed for it (sync/checkpoint-changes.ts): the checkpoint comes with the watch
 * event, and the changed buckets, lookups and write checkpoints from one lookup shared by every
 * connection, so an idle connection costs no storage round trip.
 */
import type { Logger } from '@bucketsync/lib-services';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import {
  serializeParameterLookup,
  type ConnectionBuckets,
  type ConnectionLimits,
  type ResolvedBucket,
  type SyncConfig,
} from '@bucketsync/sync-rules';
import type { ByteBudget } from '../storage/byte-budget.js';
import type { BucketStorage } from '../storage/bucket-storage.js';
import type { BucketChecksum, Checkpoint, OpId, OplogEntry } from '../storage/storage-types.js';
import type { CheckpointChanges, CheckpointEvent, SyncConfigStorage } from '../storage/sync-config-storage.js';
import {
  mayHaveChanged,
  noChanges,
  planBucketReads,
  sharedCheckpointChanges,
  type SentCheckpoint,
} from './checkpoint-changes.js';
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
  /** The process's budget for sync data held in memory (storage reads wait when it is spent). */
  budget?: ByteBudget;
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

/**
 * The error a client gets while no sync config is active: why (nothing deployed, or the first
 * copy still running) and that it retries. A retryable 503 (`PSYNC_S2302`), which the SDKs
 * retry after their retry delay.
 */
async function notReadyError(storage: BucketStorage): Promise<ServiceError> {
  const processing = await storage.getProcessingSyncConfig().catch(() => undefined);
  const why = processing
    ? `sync config ${processing.configId} is still being replicated for the first time; clients can sync once it reaches its first consistent checkpoint`
    : 'no sync config is deployed (set sync_config in the service config and restart)';
  return new ServiceError(ErrorCode.SYNC_NOT_READY, why);
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

/** Sync streams of this process that hold a checkpoint watch and timers (for tests and metrics). */
let liveStreams = 0;

/** How many sync streams of this process are past their start and not yet ended. */
export function liveSyncStreams(): number {
  return liveStreams;
}

/** Produces the lines of one sync connection until the signal aborts or the token expires. */
export async function* syncStream(options: SyncStreamOptions): AsyncGenerator<SyncLine> {
  const { storage, identity, request, signal, logger } = options;
  const keepaliveMs = (options.keepaliveSeconds ?? 20) * 1000;
  const secondsLeft = () => Math.max(0, Math.floor(identity.expiresAt - Date.now() / 1000));

  // No active config yet (none deployed, or its first copy is still running): the client is
  // told so at once (a retryable 503) rather than held on a silent stream.
  const config = await storage.getActiveSyncConfig();
  if (!config) throw await notReadyError(storage);

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
  // The newest checkpoint event: the loop sends its checkpoint as is (no re-read per connection).
  let latest: CheckpointEvent | undefined;
  // Without its watch a stream never sends a newer checkpoint: a failed watch (storage
  // unreachable) ends the stream, so the client reconnects instead of waiting on a dead one.
  let watchFailure: unknown;
  const watcher = (async () => {
    for await (const event of watchedConfig.watchCheckpoints(watchAbort.signal)) {
      latest = event;
      wake.wake('checkpoint');
    }
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

  // What the client holds: op id per bucket (from the request, then from what we sent).
  const clientAfter = new Map<string, bigint>(request.buckets.map((b) => [b.name, b.after]));
  // The last checkpoint line sent: checkpoint_diffs, and the changes looked up, are relative to it.
  let sent: (SentCheckpoint & { writeCheckpoint: string | undefined }) | undefined;
  // Set when a checkpoint was abandoned: the next one is sent even if it looks the same.
  let resend = false;
  // The connection's buckets, re-resolved only when one of its parameter lookups changed.
  let resolved: ConnectionBuckets | undefined;
  const writeCheckpoints = new WriteCheckpointTracker(storage, config, identity.userId, request.client_id);
  const changesOf = sharedCheckpointChanges(config);
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

  liveStreams++;
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

      // An active config is consistent whatever its op id: a config whose tables were empty
      // activates at op id 0, and its clients get a complete (empty) checkpoint at once. Only
      // an event without a position (no checkpoint committed at all) has nothing to send.
      const event = latest;
      if (!event || event.checkpoint.position === undefined) continue;
      const checkpoint = event.checkpoint;

      // What changed since the last checkpoint line: one lookup shared by every connection
      // that sent the same one. Unknown (undefined) at the first line, or if op ids went back.
      let changes: CheckpointChanges | undefined;
      if (sent && checkpoint.opId === sent.opId) changes = noChanges(sent.opId, checkpoint.opId);
      else if (sent && checkpoint.opId > sent.opId) changes = await changesOf.get(sent.opId, checkpoint.opId);

      const writeCheckpoint = await writeCheckpoints.find(checkpoint, changes);
      if (!resend && sent && checkpoint.opId === sent.opId && writeCheckpoint === sent.writeCheckpoint) continue;

      if (!resolved || mayHaveChanged(changes?.parameterLookups, lookupKeys)) {
        const lookupResults =
          lookupKeys.length > 0 ? await config.getParameterSets(checkpoint.opId, lookupKeys) : new Map();
        resolved = resolution.finish(lookupResults, options.limits);
        if (resolved.error) throw new ServiceError(ErrorCode.TOO_MANY_BUCKETS, resolved.error);
      }
      const current = resolved;
      const plan = planBucketReads({
        checkpoint: checkpoint.opId,
        buckets: current.buckets,
        sent,
        changes,
        compactedThrough: event.compactedThrough,
        clientAfter,
      });
      const checksums =
        plan.checksums.length > 0
          ? await config.getChecksums(checkpoint.opId, plan.checksums)
          : new Map<string, BucketChecksum>();
      const buckets = new Map<string, WireBucketChecksum>();
      for (const b of current.buckets) {
        const sum = checksums.get(b.bucket) ?? sent?.buckets.get(b.bucket);
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
      if (!sent) {
        // Known streams, plus any unknown stream a subscription named (reported with its error);
        // grouped with a map, so many subscriptions cost linear time.
        const byStream = new Map<string, WireStreamStatus>();
        for (const s of resolution.streams) {
          if (!byStream.has(s.name)) byStream.set(s.name, { name: s.name, is_default: s.isDefault, errors: [] });
        }
        for (const e of current.streamErrors) {
          let status = byStream.get(e.stream);
          if (!status) byStream.set(e.stream, (status = { name: e.stream, is_default: false, errors: [] }));
          status.errors.push({ subscription: e.subscription, message: e.message });
        }
        const streams = [...byStream.values()];
        yield { checkpoint: { last_op_id: lastOpId, ...wc, buckets: [...buckets.values()], streams } };
      } else {
        const previous = sent.buckets;
        const updated = [...buckets.values()].filter((b) => {
          const old = previous.get(b.bucket);
          return !old || old.checksum !== b.checksum || old.count !== b.count || old.priority !== b.priority;
        });
        const removed = [...previous.keys()].filter((name) => !buckets.has(name));
        yield { checkpoint_diff: { last_op_id: lastOpId, ...wc, updated_buckets: updated, removed_buckets: removed } };
      }
      for (const name of clientAfter.keys()) if (!buckets.has(name)) clientAfter.delete(name);
      // A bucket without ops since the last checkpoint, held through it, needs no read.
      for (const name of plan.upToDate) clientAfter.set(name, checkpoint.opId);
      sent = { opId: checkpoint.opId, buckets, compactedThrough: event.compactedThrough, writeCheckpoint };
      resend = false;

      // Data, highest priority (lowest number) first.
      const byPriority = new Map<number, ResolvedBucket[]>();
      for (const b of current.buckets) {
        if ((clientAfter.get(b.bucket) ?? 0n) >= checkpoint.opId) continue;
        byPriority.set(b.priority, [...(byPriority.get(b.priority) ?? []), b]);
      }
      const priorities = [...new Set(current.buckets.map((b) => b.priority))].sort((a, b) => a - b);
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
              ...(options.budget ? { budget: options.budget } : {}),
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
      // A compaction past this checkpoint, seen while sending it (even with no data to read):
      // its data may no longer be complete (invariant 8).
      if (!abandoned && latest !== undefined && latest.compactedThrough > checkpoint.opId) abandoned = true;
      if (abandoned) {
        resend = true; // force a fresh checkpoint line
        // A newer checkpoint is sent at once; without one, the next watch event wakes the loop.
        if (latest !== undefined && latest.checkpoint.opId > checkpoint.opId) wake.wake('checkpoint');
        continue;
      }
      for (const b of current.buckets) clientAfter.set(b.bucket, checkpoint.opId);
      yield { checkpoint_complete: { last_op_id: lastOpId } };
    }
  } finally {
    liveStreams--;
    clearInterval(keepaliveTimer);
    clearTimeout(expiryTimer);
    clearInterval(activeCheck);
    signal.removeEventListener('abort', stopWatch);
    watchAbort.abort();
    await watcher;
  }
}

/**
 * The `write_checkpoint` of a connection. A custom one is read at the first checkpoint and
 * then only when the checkpoint changes name the user; a managed one is asked of storage at
 * every checkpoint, which answers from its cache (BucketStorage.getManagedWriteCheckpoint).
 */
class WriteCheckpointTracker {
  private custom: { value: bigint | undefined; at: OpId } | undefined;

  constructor(
    private readonly storage: BucketStorage,
    private readonly config: SyncConfigStorage,
    private readonly userId: string,
    private readonly clientId: string | undefined,
  ) {}

  async find(checkpoint: Checkpoint, changes: CheckpointChanges | undefined): Promise<string | undefined> {
    const known = this.custom;
    const stale =
      !known ||
      !changes ||
      changes.from !== known.at ||
      checkpoint.opId < known.at ||
      mayHaveChanged(changes.customWriteCheckpointUsers, [this.userId]);
    if (stale) {
      this.custom = {
        value: await this.config.getCustomWriteCheckpoint(this.userId, checkpoint.opId),
        at: checkpoint.opId,
      };
    } else if (known) {
      this.custom = { value: known.value, at: checkpoint.opId };
    }
    if (this.custom!.value !== undefined) return this.custom!.value.toString();
    if (!this.clientId || !checkpoint.position) return undefined;
    const managed = await this.storage.getManagedWriteCheckpoint({
      userId: this.userId,
      clientId: this.clientId,
      position: checkpoint.position,
    });
    return managed?.toString();
  }
}
