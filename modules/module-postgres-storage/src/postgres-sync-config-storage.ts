/**
 * Postgres storage of one deployed sync config: table identities, checkpoints (commit rules
 * of invariant 2), checkpoint watching through the shared listener, chunked bucket reads,
 * cached incremental checksums, parameter lookups and error reporting.
 */
import {
  comparePositions,
  normaliseChecksum,
  type BucketChecksum,
  type BucketDataChunk,
  type BucketDataRequest,
  type Checkpoint,
  type CheckpointEvent,
  type CommitResult,
  type CompactOptions,
  type CompactResult,
  type OpId,
  type OpKind,
  type OplogEntry,
  type ResolvedTable,
  type SourceTableDescriptor,
  type SqliteRow,
  type StorageSyncConfig,
  type StorageSyncConfigEngine,
  type StoredTable,
  type SyncConfigState,
  type SyncConfigStatus,
  type SyncConfigStorage,
  type WriteBatch,
  type WriteBatchOptions,
} from '@bucketsync/service-core';
import type { Logger } from '@bucketsync/lib-services';
import type pg from 'pg';
import { compactBuckets } from './postgres-compactor.js';
import {
  checkpointChannel,
  encodeCheckpointNotification,
  type PostgresCheckpointListener,
} from './postgres-checkpoint-listener.js';
import { translatePostgresError } from './postgres-storage-config.js';
import { decodeRows } from './postgres-value-codec.js';
import { PostgresWriteBatch } from './postgres-write-batch.js';

/** What every part of Postgres storage shares: pool, schema, limits, engine, listener. */
export interface PostgresStorageContext {
  readonly pool: pg.Pool;
  readonly uri: string;
  /** Unquoted schema name. */
  readonly schemaName: string;
  /** Quoted schema name, for SQL. */
  readonly schema: string;
  readonly maxRowBytes: number;
  readonly engine: StorageSyncConfigEngine;
  readonly listener: PostgresCheckpointListener;
  readonly logger: Logger;
}

/** A `sync_configs` row as read under the config lock. */
export interface ConfigRow {
  readonly id: number;
  readonly state: SyncConfigState;
  readonly lastOpId: bigint;
  readonly checkpointOpId: bigint;
  readonly checkpointPosition: string | undefined;
  readonly lastCommitPosition: string | undefined;
  readonly resumePosition: string | undefined;
  readonly snapshotDone: boolean;
  readonly noCheckpointBefore: string | undefined;
  readonly compactedThrough: bigint;
  readonly lastError: string | undefined;
}

interface RawConfigRow {
  id: number;
  state: SyncConfigState;
  last_op_id: string;
  checkpoint_op_id: string;
  checkpoint_position: string | null;
  last_commit_position: string | null;
  resume_position: string | null;
  snapshot_done: boolean;
  no_checkpoint_before: string | null;
  compacted_through: string;
  last_error: string | null;
}

function toConfigRow(raw: RawConfigRow): ConfigRow {
  return {
    id: raw.id,
    state: raw.state,
    lastOpId: BigInt(raw.last_op_id),
    checkpointOpId: BigInt(raw.checkpoint_op_id),
    checkpointPosition: raw.checkpoint_position ?? undefined,
    lastCommitPosition: raw.last_commit_position ?? undefined,
    resumePosition: raw.resume_position ?? undefined,
    snapshotDone: raw.snapshot_done,
    noCheckpointBefore: raw.no_checkpoint_before ?? undefined,
    compactedThrough: BigInt(raw.compacted_through),
    lastError: raw.last_error ?? undefined,
  };
}

export interface RawTableRow {
  id: number;
  connection_tag: string;
  schema_name: string;
  table_name: string;
  object_id: string | null;
  replica_id_columns: string[];
  sync_data: boolean;
  sync_parameters: boolean;
  snapshot_done: boolean;
  snapshot_boundary: string | null;
  snapshot_progress: StoredTable['snapshotProgress'] | null;
}

export function toStoredTable(raw: RawTableRow): StoredTable {
  return {
    id: raw.id,
    connectionTag: raw.connection_tag,
    schema: raw.schema_name,
    name: raw.table_name,
    objectId: raw.object_id ?? undefined,
    replicaIdColumns: raw.replica_id_columns,
    syncData: raw.sync_data,
    syncParameters: raw.sync_parameters,
    snapshotDone: raw.snapshot_done,
    snapshotBoundary: raw.snapshot_boundary ?? undefined,
    snapshotProgress: raw.snapshot_progress ?? undefined,
  };
}

const OP_KINDS: Record<number, OpKind> = { 1: 'PUT', 2: 'REMOVE', 3: 'MOVE', 4: 'CLEAR' };

/** An op row `[op_id text, op, row_table, row_id, subkey, checksum, data, inside]` as an entry. */
function toOplogEntry(r: unknown[]): OplogEntry {
  const opId = BigInt(r[0] as string);
  const kind = r[1] as number;
  if (kind === 1) {
    return {
      opId,
      op: 'PUT',
      objectType: r[2] as string,
      objectId: r[3] as string,
      subkey: r[4] as string,
      checksum: r[5] as number,
      data: r[6] as string,
    };
  }
  if (kind === 2) {
    return {
      opId,
      op: 'REMOVE',
      objectType: r[2] as string,
      objectId: r[3] as string,
      subkey: r[4] as string,
      checksum: r[5] as number,
    };
  }
  return { opId, op: OP_KINDS[kind]!, checksum: r[5] as number };
}
const MAX_CACHED_CHECKSUMS = 100_000;

interface CachedChecksum {
  opId: bigint;
  checksum: number;
  count: number;
}

export class PostgresSyncConfigStorage implements SyncConfigStorage {
  readonly syncConfig: StorageSyncConfig;
  /** Tombstones were written since the last purge (replicator process only). */
  tombstonesWritten = false;
  /** Last op id at the previous `commit` of this process: every delete up to it is before the resume position. */
  private previousCommitOpId = 0n;
  private readonly checksumCache = new Map<string, CachedChecksum>();
  /** Bumped when a compaction is seen; checksum results computed across it are discarded. */
  private compactionEpoch = 0;
  private compactionSubscription: Promise<() => void> | undefined;

  constructor(
    readonly ctx: PostgresStorageContext,
    readonly configId: number,
    readonly content: string,
  ) {
    this.syncConfig = ctx.engine.parse(content, { configId: String(configId) });
  }

  /** Runs `fn` in a transaction holding this config's row lock: flushes and commits are serialised. */
  async withConfigLock<T>(fn: (client: pg.PoolClient, config: ConfigRow) => Promise<T>): Promise<T> {
    const client = await this.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<RawConfigRow>(
        `SELECT * FROM ${this.ctx.schema}.sync_configs WHERE id = $1 FOR UPDATE`,
        [this.configId],
      );
      if (!rows[0]) throw new Error(`sync config ${this.configId} no longer exists`);
      const result = await fn(client, toConfigRow(rows[0]));
      await client.query('COMMIT');
      return result;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw translatePostgresError(e, this.ctx.uri);
    } finally {
      client.release();
    }
  }

  /** A pooled connection; connection failures become STORAGE_UNREACHABLE. */
  async connect(): Promise<pg.PoolClient> {
    try {
      return await this.ctx.pool.connect();
    } catch (e) {
      throw translatePostgresError(e, this.ctx.uri);
    }
  }

  /** One query on the pool, with errors translated. */
  async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    try {
      return await this.ctx.pool.query<R>(sql, params);
    } catch (e) {
      throw translatePostgresError(e, this.ctx.uri);
    }
  }

  async readConfig(): Promise<ConfigRow> {
    const { rows } = await this.query<RawConfigRow>(`SELECT * FROM ${this.ctx.schema}.sync_configs WHERE id = $1`, [
      this.configId,
    ]);
    if (!rows[0]) throw new Error(`sync config ${this.configId} no longer exists`);
    return toConfigRow(rows[0]);
  }

  async resolveTable(descriptor: SourceTableDescriptor): Promise<ResolvedTable> {
    const connectionTag = descriptor.connectionTag ?? 'default';
    const objectId = descriptor.objectId === undefined ? null : String(descriptor.objectId);
    const columns = [...descriptor.replicaIdColumns];
    const ref = { schema: descriptor.schema, name: descriptor.name };
    return this.withConfigLock(async (client) => {
      const { rows } = await client.query<RawTableRow>(
        `SELECT * FROM ${this.ctx.schema}.source_tables
          WHERE config_id = $1 AND connection_tag = $2 AND schema_name = $3 AND table_name = $4 AND NOT dropped ORDER BY id`,
        [this.configId, connectionTag, descriptor.schema, descriptor.name],
      );
      const same = rows.find(
        (r) =>
          r.object_id === objectId &&
          r.replica_id_columns.length === columns.length &&
          r.replica_id_columns.every((c, i) => c === columns[i]),
      );
      if (same) return { table: toStoredTable(same), replaced: [], created: false };
      const inserted = await client.query<RawTableRow>(
        `INSERT INTO ${this.ctx.schema}.source_tables
           (config_id, connection_tag, schema_name, table_name, object_id, replica_id_columns, sync_data, sync_parameters)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
        [
          this.configId,
          connectionTag,
          descriptor.schema,
          descriptor.name,
          objectId,
          columns,
          this.syncConfig.tableIsRelevant(ref),
          this.syncConfig.tableHasParameterQueries(ref),
        ],
      );
      return { table: toStoredTable(inserted.rows[0]!), replaced: rows.map(toStoredTable), created: true };
    });
  }

  createWriteBatch(options: WriteBatchOptions = {}): WriteBatch {
    return new PostgresWriteBatch(this, options);
  }

  async listTables(): Promise<StoredTable[]> {
    const { rows } = await this.query<RawTableRow>(
      `SELECT * FROM ${this.ctx.schema}.source_tables WHERE config_id = $1 AND NOT dropped ORDER BY id`,
      [this.configId],
    );
    return rows.map(toStoredTable);
  }

  async getStatus(): Promise<SyncConfigStatus> {
    const [config, tables] = await Promise.all([this.readConfig(), this.listTables()]);
    return {
      configId: this.configId,
      state: config.state,
      resumePosition: config.resumePosition,
      snapshotDone: config.snapshotDone,
      checkpoint: { opId: config.checkpointOpId, position: config.checkpointPosition },
      lastCommitPosition: config.lastCommitPosition,
      tables,
      lastError: config.lastError,
    };
  }

  async getCheckpoint(): Promise<Checkpoint> {
    const config = await this.readConfig();
    return { opId: config.checkpointOpId, position: config.checkpointPosition };
  }

  /**
   * The commit rules of invariant 2, under the config lock: records `position` as progress
   * and resume position, and creates a checkpoint only when nothing blocks it.
   */
  async commitCheckpoint(position: string): Promise<CommitResult> {
    const s = this.ctx.schema;
    return this.withConfigLock(async (client, config) => {
      const current: Checkpoint = { opId: config.checkpointOpId, position: config.checkpointPosition };
      const purgeUpTo = this.previousCommitOpId;
      this.previousCommitOpId = config.lastOpId;
      let blockedBy: string | undefined;
      if (!config.snapshotDone) blockedBy = 'the initial snapshot is not done';
      else if (config.checkpointPosition !== undefined && comparePositions(position, config.checkpointPosition) < 0) {
        blockedBy = `position ${position} is before the last checkpoint's position ${config.checkpointPosition}`;
      } else if (config.noCheckpointBefore !== undefined && comparePositions(position, config.noCheckpointBefore) < 0) {
        blockedBy = `position ${position} has not reached the snapshot boundary ${config.noCheckpointBefore}`;
      }
      if (blockedBy !== undefined) {
        await client.query(
          `UPDATE ${s}.sync_configs SET last_commit_position = $2, resume_position = $2 WHERE id = $1`,
          [this.configId, position],
        );
        return { checkpointCreated: false, checkpoint: current, blockedBy };
      }
      if (config.checkpointOpId === config.lastOpId && config.checkpointPosition === position) {
        return { checkpointCreated: false, checkpoint: current };
      }
      await client.query(
        `UPDATE ${s}.sync_configs SET checkpoint_op_id = last_op_id, checkpoint_position = $2, last_commit_position = $2,
           resume_position = $2, last_error = NULL WHERE id = $1`,
        [this.configId, position],
      );
      if (config.state === 'processing') {
        // The first consistent checkpoint of a processing config activates it (architecture.md section 5).
        await client.query(`UPDATE ${s}.sync_configs SET state = 'stopped' WHERE state = 'active' AND id <> $1`, [
          this.configId,
        ]);
        await client.query(`UPDATE ${s}.sync_configs SET state = 'active' WHERE id = $1`, [this.configId]);
      }
      if (this.tombstonesWritten) {
        // Tombstones are only needed while a snapshot could still write their row, and while a replay
        // could still reach their delete: purge those of finished tables from earlier transactions.
        await client.query(
          `DELETE FROM ${s}.current_data cd USING ${s}.source_tables st
            WHERE cd.config_id = $1 AND cd.deleted_op IS NOT NULL AND cd.deleted_op <= $2
              AND st.id = cd.table_id AND st.snapshot_done AND st.snapshot_boundary COLLATE "C" <= $3 COLLATE "C"`,
          [this.configId, purgeUpTo.toString(), position],
        );
        const left = await client.query(
          `SELECT 1 FROM ${s}.current_data WHERE config_id = $1 AND deleted_op IS NOT NULL LIMIT 1`,
          [this.configId],
        );
        this.tombstonesWritten = left.rowCount !== 0;
      }
      await this.notify(client, { opId: config.lastOpId, position, compactedThrough: config.compactedThrough });
      return { checkpointCreated: true, checkpoint: { opId: config.lastOpId, position } };
    });
  }

  /** Sends the checkpoint notification (delivered when the transaction commits). */
  async notify(
    client: pg.ClientBase,
    n: { opId: bigint; position: string | undefined; compactedThrough: bigint },
  ): Promise<void> {
    await client.query('SELECT pg_notify($1, $2)', [
      checkpointChannel(this.ctx.schemaName),
      encodeCheckpointNotification({ configId: this.configId, ...n }),
    ]);
  }

  async *watchCheckpoints(signal: AbortSignal): AsyncIterable<CheckpointEvent> {
    let latest: CheckpointEvent | undefined;
    let reread = true;
    let wake: (() => void) | undefined;
    const unsubscribe = await this.ctx.listener.subscribe((n) => {
      if (n === undefined) reread = true;
      else if (n.configId === this.configId) {
        latest = {
          configId: n.configId,
          checkpoint: { opId: n.opId, position: n.position },
          compactedThrough: n.compactedThrough,
        };
      } else return;
      wake?.();
    });
    let last: CheckpointEvent | undefined;
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort);
    try {
      while (!signal.aborted) {
        if (reread) {
          reread = false;
          const config = await this.readConfig();
          latest ??= {
            configId: this.configId,
            checkpoint: { opId: config.checkpointOpId, position: config.checkpointPosition },
            compactedThrough: config.compactedThrough,
          };
        }
        const next = latest;
        latest = undefined;
        if (
          next &&
          (!last ||
            next.checkpoint.opId !== last.checkpoint.opId ||
            next.checkpoint.position !== last.checkpoint.position ||
            next.compactedThrough !== last.compactedThrough)
        ) {
          last = next;
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      unsubscribe();
    }
  }

  async *getBucketData(request: BucketDataRequest, signal?: AbortSignal): AsyncIterable<BucketDataChunk> {
    const chunkOps = request.chunkOps ?? 10_000;
    const chunkBytes = Math.max(1, request.chunkBytes ?? 1024 * 1024);
    const config = await this.readConfig();
    const invalidated = config.compactedThrough > request.checkpoint;
    // One chunk per query: ops while the bytes before them stay under the limit, plus one
    // sentinel row (data left out) that says whether more follow, so nothing is counted or
    // sent past the chunk. The sum is a running window over the index order (no sort).
    const sql = `
      SELECT t.op_id::text AS id, op, row_table, row_id, subkey, checksum,
             CASE WHEN before_bytes < $6 THEN data END AS data, before_bytes < $6 AS inside
        FROM (SELECT o.*, coalesce(sum(o.size) OVER w - o.size, 0) AS before_bytes,
                     coalesce(sum(o.size) OVER w - o.size - lag(o.size, 1, 0::int8) OVER w, 0) AS before_previous
                FROM (SELECT op_id, op, row_table, row_id, subkey, checksum, data, coalesce(octet_length(data), 0)::int8 + 48 AS size
                        FROM ${this.ctx.schema}.ops
                       WHERE config_id = $1 AND bucket = $2 AND op_id > $3 AND op_id <= $4
                       ORDER BY op_id LIMIT $5) o
              WINDOW w AS (ORDER BY o.op_id ROWS UNBOUNDED PRECEDING)) t
       WHERE before_previous < $6 ORDER BY t.op_id`;
    const fetch = (bucket: string, after: OpId) =>
      this.queryArray(sql, [
        this.configId,
        bucket,
        after.toString(),
        request.checkpoint.toString(),
        chunkOps + 1,
        chunkBytes,
      ]);
    for (const { bucket, after } of request.buckets) {
      let cursor = after;
      let next: Promise<pg.QueryArrayResult<unknown[]>> | undefined = fetch(bucket, cursor);
      while (next) {
        signal?.throwIfAborted();
        const rows = (await next).rows;
        next = undefined;
        let take = 0;
        while (take < rows.length && take < chunkOps && rows[take]![7] === true) take++;
        const hasMore = rows.length > take;
        const ops: OplogEntry[] = new Array(take);
        for (let i = 0; i < take; i++) ops[i] = toOplogEntry(rows[i]!);
        const nextAfter = take > 0 ? ops[take - 1]!.opId : cursor;
        if (hasMore) {
          // Prefetch: the next chunk is read while the caller handles this one.
          next = fetch(bucket, nextAfter);
          next.catch(() => undefined);
        }
        yield { bucket, after: cursor, nextAfter, hasMore, ops, checkpointInvalidated: invalidated };
        cursor = nextAfter;
      }
    }
  }

  private async queryArray(sql: string, params: unknown[]): Promise<pg.QueryArrayResult<unknown[]>> {
    try {
      return await this.ctx.pool.query({ text: sql, values: params, rowMode: 'array' });
    } catch (e) {
      throw translatePostgresError(e, this.ctx.uri);
    }
  }

  async getChecksums(checkpoint: OpId, buckets: readonly string[]): Promise<Map<string, BucketChecksum>> {
    await this.subscribeToCompactions();
    const epoch = this.compactionEpoch;
    const result = new Map<string, BucketChecksum>();
    const toQuery: { bucket: string; base: CachedChecksum }[] = [];
    for (const bucket of new Set(buckets)) {
      const cached = this.checksumCache.get(bucket);
      const base = cached && cached.opId <= checkpoint ? cached : { opId: 0n, checksum: 0, count: 0 };
      if (base.opId === checkpoint) result.set(bucket, { bucket, checksum: base.checksum, count: base.count });
      else toQuery.push({ bucket, base });
    }
    for (let i = 0; i < toQuery.length; i += 1000) {
      const slice = toQuery.slice(i, i + 1000);
      const { rows } = await this.query<{ bucket: string; total: string; n: string }>(
        `SELECT r.bucket, s.total, s.n
           FROM unnest($2::text[], $3::int8[]) AS r(bucket, after)
          CROSS JOIN LATERAL (
            SELECT coalesce(sum(checksum), 0) AS total, count(*) AS n FROM ${this.ctx.schema}.ops
             WHERE config_id = $1 AND bucket = r.bucket AND op_id > r.after AND op_id <= $4) s`,
        [this.configId, slice.map((q) => q.bucket), slice.map((q) => q.base.opId.toString()), checkpoint.toString()],
      );
      const byBucket = new Map(rows.map((r) => [r.bucket, r]));
      for (const { bucket, base } of slice) {
        const row = byBucket.get(bucket);
        const checksum = normaliseChecksum(BigInt(base.checksum) + BigInt(row?.total ?? 0));
        const count = base.count + Number(row?.n ?? 0);
        result.set(bucket, { bucket, checksum, count });
        if (epoch === this.compactionEpoch) this.cacheChecksum(bucket, { opId: checkpoint, checksum, count });
      }
    }
    return result;
  }

  private cacheChecksum(bucket: string, value: CachedChecksum): void {
    const existing = this.checksumCache.get(bucket);
    if (existing && existing.opId > value.opId) return;
    this.checksumCache.delete(bucket);
    this.checksumCache.set(bucket, value);
    if (this.checksumCache.size > MAX_CACHED_CHECKSUMS) {
      const oldest = this.checksumCache.keys().next().value;
      if (oldest !== undefined) this.checksumCache.delete(oldest);
    }
  }

  /** Forgets cached checksums: a CLEAR op sums a prefix, so a cached prefix sum would be counted twice. */
  invalidateChecksums(): void {
    this.compactionEpoch++;
    this.checksumCache.clear();
  }

  private subscribeToCompactions(): Promise<unknown> {
    this.compactionSubscription ??= (async () => {
      let known = (await this.readConfig()).compactedThrough;
      return this.ctx.listener.subscribe((n) => {
        if (n === undefined) this.invalidateChecksums();
        else if (n.configId === this.configId && n.compactedThrough !== known) {
          known = n.compactedThrough;
          this.invalidateChecksums();
        }
      });
    })();
    return this.compactionSubscription;
  }

  /** Stops listening (called when the owning storage closes). */
  async close(): Promise<void> {
    const unsubscribe = await this.compactionSubscription?.catch(() => undefined);
    unsubscribe?.();
  }

  async getParameterSets(checkpoint: OpId, lookups: readonly string[]): Promise<Map<string, SqliteRow[]>> {
    const result = new Map<string, SqliteRow[]>(lookups.map((l) => [l, []]));
    if (lookups.length === 0) return result;
    const { rows } = await this.query<{ lookup: string; outputs: string }>(
      `SELECT DISTINCT ON (lookup, table_id, row_key) lookup, outputs FROM ${this.ctx.schema}.parameter_index
        WHERE config_id = $1 AND lookup = ANY($2::text[]) AND op_id <= $3
        ORDER BY lookup, table_id, row_key, op_id DESC`,
      [this.configId, [...new Set(lookups)], checkpoint.toString()],
    );
    for (const row of rows) {
      if (row.outputs === '[]') continue;
      result.get(row.lookup)!.push(...decodeRows(row.outputs));
    }
    return result;
  }

  async getCustomWriteCheckpoint(userId: string, checkpoint: OpId): Promise<bigint | undefined> {
    const { rows } = await this.query<{ checkpoint: string }>(
      `SELECT checkpoint FROM ${this.ctx.schema}.custom_write_checkpoints
        WHERE config_id = $1 AND user_id = $2 AND op_id <= $3 ORDER BY op_id DESC LIMIT 1`,
      [this.configId, userId, checkpoint.toString()],
    );
    return rows[0] ? BigInt(rows[0].checkpoint) : undefined;
  }

  async compact(options: CompactOptions = {}): Promise<CompactResult> {
    const config = await this.readConfig();
    const maxOpId = options.maxOpId ?? config.checkpointOpId;
    const result = await compactBuckets(this, { maxOpId, buckets: options.buckets, signal: options.signal });
    this.invalidateChecksums();
    await this.withConfigLock(async (client, locked) => {
      const through = locked.compactedThrough > maxOpId ? locked.compactedThrough : maxOpId;
      await client.query(`UPDATE ${this.ctx.schema}.sync_configs SET compacted_through = $2 WHERE id = $1`, [
        this.configId,
        through.toString(),
      ]);
      await this.notify(client, {
        opId: locked.checkpointOpId,
        position: locked.checkpointPosition,
        compactedThrough: through,
      });
    });
    return result;
  }

  async reportError(error: unknown): Promise<void> {
    const text = error instanceof Error ? error.message : String(error);
    await this.query(`UPDATE ${this.ctx.schema}.sync_configs SET last_error = $2 WHERE id = $1`, [
      this.configId,
      text.slice(0, 10_000),
    ]);
  }
}
