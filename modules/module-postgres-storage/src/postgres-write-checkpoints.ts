/**
 * Managed write checkpoints as the sync engine reads them: every connection asks at every
 * checkpoint, so answers come from a per-process cache of (user, client) -> (id, head position),
 * invalidated by the notice each creation sends (in any process); misses are batched into one
 * query. A row is only cached while the LISTEN connection is up, so no notice can be missed.
 */
import { comparePositions } from '@bucketsync/service-core';
import type pg from 'pg';
import type { PostgresCheckpointListener } from './postgres-checkpoint-listener.js';

/** Rows kept; the least recently loaded go first. */
const MAX_CACHED = 100_000;
/**
 * A cached row is read again after this long: a safety net for a creation whose notice never
 * came (a process of an older version, without notices, created it during a rolling upgrade).
 */
const MAX_AGE_MS = 10_000;
/** Keys per query. */
const BATCH_KEYS = 1000;

interface StoredWriteCheckpoint {
  readonly id: bigint;
  readonly headPosition: string;
}

type Key = { readonly userId: string; readonly clientId: string };

/** What the cache needs of the storage: its listener and a query on the pool. */
export interface PostgresWriteCheckpointsContext {
  /** Quoted schema name. */
  readonly schema: string;
  readonly listener: PostgresCheckpointListener;
  query<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<pg.QueryResult<R>>;
}

function cacheKey(key: Key): string {
  return `${key.userId}\u0000${key.clientId}`;
}

export class PostgresWriteCheckpoints {
  private readonly cache = new Map<string, { row: StoredWriteCheckpoint | undefined; at: number }>();
  /** Loads in flight; `stale` once a notice for the key came while loading (the answer may predate it). */
  private readonly inflight = new Map<string, { row: Promise<StoredWriteCheckpoint | undefined>; stale: boolean }>();
  private nextBatch: { keys: Map<string, Key>; rows: Promise<Map<string, StoredWriteCheckpoint>> } | undefined;
  private subscription: Promise<() => void> | undefined;
  /** Batched queries run, for tests and diagnostics. */
  queries = 0;

  constructor(private readonly ctx: PostgresWriteCheckpointsContext) {}

  /** The id of (user, client)'s write checkpoint if its head is at or before `position`. */
  async find(request: Key & { position: string }): Promise<bigint | undefined> {
    const row = await this.get(request);
    return row && comparePositions(row.headPosition, request.position) <= 0 ? row.id : undefined;
  }

  /** Forgets (user, client), or everything: a write checkpoint was created (or notices were missed). */
  invalidate(key: Key | undefined): void {
    if (key === undefined) {
      this.cache.clear();
      for (const load of this.inflight.values()) load.stale = true;
      return;
    }
    const k = cacheKey(key);
    this.cache.delete(k);
    const load = this.inflight.get(k);
    if (load) load.stale = true;
  }

  /** Stops listening (the owning storage closes). */
  async close(): Promise<void> {
    const unsubscribe = await this.subscription?.catch(() => undefined);
    unsubscribe?.();
    this.subscription = undefined;
    this.cache.clear();
  }

  private async get(key: Key): Promise<StoredWriteCheckpoint | undefined> {
    // Listening first: a creation after this point invalidates whatever is loaded below.
    this.subscription ??= this.ctx.listener.subscribeWriteCheckpoints((k) => this.invalidate(k));
    // Without the listener (storage unreachable) nothing is cached: the load below decides.
    await this.subscription.catch(() => (this.subscription = undefined));
    const k = cacheKey(key);
    const cached = this.cache.get(k);
    if (cached && Date.now() - cached.at < MAX_AGE_MS) return cached.row;
    const running = this.inflight.get(k);
    if (running && !running.stale) return running.row;
    return this.load(k, key);
  }

  private load(k: string, key: Key): Promise<StoredWriteCheckpoint | undefined> {
    if (!this.nextBatch) {
      const keys = new Map<string, Key>();
      // One macrotask of collecting: the connections woken by one checkpoint ask together.
      const rows = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        if (this.nextBatch?.keys === keys) this.nextBatch = undefined;
        return this.fetch([...keys.values()]);
      });
      this.nextBatch = { keys, rows };
    }
    const batch = this.nextBatch;
    batch.keys.set(k, key);
    const startedAt = Date.now();
    const listening = this.ctx.listener.listening;
    const load = { row: batch.rows.then((rows) => rows.get(k)), stale: false };
    this.inflight.set(k, load);
    load.row.then(
      (row) => {
        if (this.inflight.get(k) !== load) return;
        this.inflight.delete(k);
        // Cached only if no notice could have been missed while it loaded.
        if (!load.stale && listening && this.ctx.listener.listening) this.remember(k, row, startedAt);
      },
      () => {
        if (this.inflight.get(k) === load) this.inflight.delete(k);
      },
    );
    return load.row;
  }

  private async fetch(keys: Key[]): Promise<Map<string, StoredWriteCheckpoint>> {
    const result = new Map<string, StoredWriteCheckpoint>();
    for (let i = 0; i < keys.length; i += BATCH_KEYS) {
      const slice = keys.slice(i, i + BATCH_KEYS);
      this.queries++;
      const { rows } = await this.ctx.query<{ user_id: string; client_id: string; id: string; head_position: string }>(
        `SELECT w.user_id, w.client_id, w.id, w.head_position FROM ${this.ctx.schema}.write_checkpoints w
           JOIN unnest($1::text[], $2::text[]) AS k(user_id, client_id)
             ON w.user_id = k.user_id AND w.client_id = k.client_id`,
        [slice.map((s) => s.userId), slice.map((s) => s.clientId)],
      );
      for (const row of rows) {
        result.set(cacheKey({ userId: row.user_id, clientId: row.client_id }), {
          id: BigInt(row.id),
          headPosition: row.head_position,
        });
      }
    }
    return result;
  }

  private remember(k: string, row: StoredWriteCheckpoint | undefined, at: number): void {
    this.cache.delete(k);
    this.cache.set(k, { row, at });
    if (this.cache.size > MAX_CACHED) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
  }
}
