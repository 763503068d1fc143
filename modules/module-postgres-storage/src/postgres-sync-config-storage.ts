/**
 * Postgres storage of one deployed sync config: table identities, checkpoints (commit rules
 * of invariant 2), checkpoint watching through the shared listener, chunked bucket reads,
 * cached incremental checksums, parameter lookups and error reporting.
 */
import {
  columnsChangeNeedsCopy,
  comparePositions,
  normaliseChecksum,
  sameColumns,
  type BucketChecksum,
  type BucketDataChunk,
  type BudgetLease,
  type ByteBudget,
  type BucketDataRequest,
  type Checkpoint,
  type CheckpointChanges,
  type CheckpointEvent,
  type CommitResult,
  type CompactOptions,
  type CompactResult,
  type OpId,
  type OpKind,
  type OplogEntry,
  type ResolvedTable,
  type SourceColumn,
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
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { compactBuckets } from './postgres-compactor.js';
import {
  checkpointChannel,
  encodeCheckpointNotification,
  type PostgresCheckpointListener,
} from './postgres-checkpoint-listener.js';
import { translatePostgresError } from './postgres-storage-config.js';
import { decodeRows } from './postgres-value-codec.js';
import { PostgresWriteBatch } from './postgres-write-batch.js';

const { escapeLiteral } = pg;

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
  columns: SourceColumn[] | null;
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
    ...(raw.columns ? { columns: raw.columns } : {}),
    syncData: raw.sync_data,
    syncParameters: raw.sync_parameters,
    snapshotDone: raw.snapshot_done,
    snapshotBoundary: raw.snapshot_boundary ?? undefined,
    snapshotProgress: raw.snapshot_progress ?? undefined,
  };
}

const OP_KINDS: Record<number, OpKind> = { 1: 'PUT', 2: 'REMOVE', 3: 'MOVE', 4: 'CLEAR' };

/** Chunks' worth of ops read per query. */
const READ_BATCH_CHUNKS = 2;
/** Bytes an op counts for beyond its data, in chunk budgets. */
const OP_OVERHEAD_BYTES = 48;
/** Binary COPY header: signature (11), flags (4), header extension length (4, always 0). */
const COPY_HEADER_BYTES = 19;

/**
 * The binary COPY output of one op batch (`op_id int8, op int2, row_table, row_id, subkey text,
 * checksum int4, data text`), decoded lazily. A first pass over the field lengths only finds the
 * op count, the bytes and the last op id.
 */
class OpBatch {
  /** Ops may follow this batch (the op or byte limit cut it). */
  readonly more: boolean;
  readonly lastOpId: bigint = 0n;
  /** Ops in the batch, and their budget bytes. */
  readonly count: number = 0;
  readonly bytes: number = 0;
  private pos = COPY_HEADER_BYTES;
  private readonly end: number;

  constructor(
    private readonly buf: Buffer,
    maxOps: number,
    maxBytes: number,
  ) {
    let count = 0;
    let bytes = 0;
    let at = COPY_HEADER_BYTES;
    let lastAt = -1;
    while (at < buf.length && buf.readInt16BE(at) !== -1) {
      lastAt = at;
      at += 2;
      for (let f = 0; f < 7; f++) {
        const len = buf.readInt32BE(at);
        at += 4;
        if (len > 0) at += len;
        if (f === 6) bytes += Math.max(len, 0) + OP_OVERHEAD_BYTES;
      }
      count++;
    }
    this.end = at;
    this.count = count;
    this.bytes = bytes;
    if (lastAt >= 0) this.lastOpId = buf.readBigInt64BE(lastAt + 6);
    this.more = count > maxOps || (count > 0 && bytes >= maxBytes);
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** Budget bytes of the next op: its data bytes plus the fixed overhead. */
  peekSize(): number {
    // Tuple: field count (2), op_id (4 + 8), op (4 + 2), three texts, checksum (4 + 4), data.
    let at = this.pos + 2 + 12 + 6;
    for (let f = 0; f < 3; f++) at += 4 + Math.max(this.buf.readInt32BE(at), 0);
    const len = this.buf.readInt32BE(at + 8);
    return Math.max(len, 0) + OP_OVERHEAD_BYTES;
  }

  /** Decodes the next op and moves past it. */
  next(): OplogEntry {
    const buf = this.buf;
    let at = this.pos + 2 + 4;
    const opId = buf.readBigInt64BE(at);
    at += 8 + 4;
    const kind = buf.readInt16BE(at);
    at += 2;
    const text = (): string | undefined => {
      const len = buf.readInt32BE(at);
      at += 4;
      if (len < 0) return undefined;
      const value = buf.toString('utf8', at, at + len);
      at += len;
      return value;
    };
    const objectType = text();
    const objectId = text();
    const subkey = text();
    const checksum = buf.readInt32BE(at + 4);
    at += 8;
    const data = text();
    this.pos = at;
    if (kind === 1)
      return { opId, op: 'PUT', objectType: objectType!, objectId: objectId!, subkey: subkey!, checksum, data: data! };
    if (kind === 2)
      return { opId, op: 'REMOVE', objectType: objectType!, objectId: objectId!, subkey: subkey!, checksum };
    return { opId, op: OP_KINDS[kind]!, checksum };
  }
}

const MAX_CACHED_CHECKSUMS = 100_000;

interface CachedChecksum {
  opId: bigint;
  checksum: number;
  count: number;
}

/** A text-mode op row (the delta reads). */
interface OpRow {
  op_id: string;
  op: number;
  row_table: string | null;
  row_id: string | null;
  subkey: string | null;
  checksum: number;
  data: string | null;
}

function toOplogEntry(row: OpRow): OplogEntry {
  const opId = BigInt(row.op_id);
  const { checksum } = row;
  if (row.op === 1) {
    return {
      opId,
      op: 'PUT',
      objectType: row.row_table!,
      objectId: row.row_id!,
      subkey: row.subkey!,
      checksum,
      data: row.data!,
    };
  }
  if (row.op === 2)
    return { opId, op: 'REMOVE', objectType: row.row_table!, objectId: row.row_id!, subkey: row.subkey!, checksum };
  return { opId, op: OP_KINDS[row.op]!, checksum };
}

/**
 * Ops and op bytes per bucket in the shared first pass of a data read (new ops since a client's
 * last checkpoint); a bucket with more is streamed. Buckets per query of that pass.
 */
const DELTA_OPS = 100;
const DELTA_BYTES = 16 * 1024;
const DELTA_BUCKETS_PER_QUERY = 500;
/**
 * Shared delta reads kept after they settle, for the connections woken by the same checkpoint
 * that come a little later: how long, how many, and how many op bytes.
 */
const DELTA_KEEP_MS = 2000;
const MAX_DELTA_ENTRIES = 2000;
const MAX_DELTA_BYTES = 4 * 1024 * 1024;

function deltaKey(bucket: string, after: OpId, checkpoint: OpId, maxOps: number, chunkBytes: number): string {
  return `${bucket}\u0000${after}\u0000${checkpoint}\u0000${maxOps}\u0000${chunkBytes}`;
}

/** Delta reads shared by every connection: in flight, then kept briefly, bounded by count and bytes. */
class SharedDeltaReads {
  private readonly entries = new Map<
    string,
    { ops: Promise<readonly OplogEntry[] | undefined>; bytes: number; settledAt: number | undefined }
  >();
  private bytes = 0;

  get(key: string): Promise<readonly OplogEntry[] | undefined> | undefined {
    const entry = this.entries.get(key);
    if (entry?.settledAt !== undefined && Date.now() - entry.settledAt > DELTA_KEEP_MS) {
      this.delete(key);
      return undefined;
    }
    return entry?.ops;
  }

  set(key: string, ops: Promise<readonly OplogEntry[] | undefined>): void {
    this.delete(key);
    this.entries.set(key, { ops, bytes: 0, settledAt: undefined });
  }

  /** Accounts a settled read's bytes and evicts the oldest entries beyond the bounds. */
  settled(key: string, value: readonly OplogEntry[] | undefined): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    let bytes = OP_OVERHEAD_BYTES;
    for (const op of value ?? []) bytes += (op.data?.length ?? 0) + OP_OVERHEAD_BYTES;
    entry.bytes = bytes;
    entry.settledAt = Date.now();
    this.bytes += bytes;
    // Oldest first (insertion order): past the bounds, or kept long enough.
    for (const [oldest, first] of this.entries) {
      const expired = first.settledAt !== undefined && entry.settledAt - first.settledAt > DELTA_KEEP_MS;
      if (!expired && this.entries.size <= MAX_DELTA_ENTRIES && this.bytes <= MAX_DELTA_BYTES) break;
      this.delete(oldest);
    }
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.bytes -= entry.bytes;
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

/** Changes listed per kind by `getCheckpointChanges`; more means "unknown: everything may have changed". */
const MAX_LISTED_CHANGES = 10_000;

export class PostgresSyncConfigStorage implements SyncConfigStorage {
  readonly syncConfig: StorageSyncConfig;
  /** Tombstones were written since the last purge (replicator process only). */
  tombstonesWritten = false;
  /** Last op id at the previous `commit` of this process: every delete up to it is before the resume position. */
  private previousCommitOpId = 0n;
  /**
   * False once no copy of a replacing identity is pending (replicator process only: it alone
   * creates them, in `resolveTable`), so commits skip that query; unknown after a start.
   */
  private replacingCopyPending = true;
  private readonly checksumCache = new Map<string, CachedChecksum>();
  private readonly deltaReads = new SharedDeltaReads();
  /** Delta queries collecting buckets until the end of the current turn, by checkpoint and limits. */
  private readonly pendingDeltas = new Map<
    string,
    {
      items: { key: string; bucket: string; after: OpId }[];
      answers: Promise<Map<string, readonly OplogEntry[] | undefined>>;
      start(): void;
    }
  >();
  /** Bumped when a compaction is seen; checksum results computed across it are discarded. */
  private compactionEpoch = 0;
  private compactionSubscription: Promise<() => void> | undefined;
  /** `compacted_through` as the notifications tell it; undefined while it may have been missed. */
  private knownCompactedThrough: bigint | undefined;

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
          r.replica_id_columns.every((c, i) => c === columns[i]) &&
          !columnsChangeNeedsCopy(r.columns ?? undefined, descriptor.columns),
      );
      if (same) {
        // Other live identities are leftovers of a replacement whose drop was interrupted (a
        // crash between creating the new identity and dropping the old): replace them again.
        const replaced = rows.filter((r) => r.id !== same.id).map(toStoredTable);
        if (descriptor.columns === undefined || sameColumns(same.columns ?? undefined, descriptor.columns)) {
          return { table: toStoredTable(same), replaced, created: false };
        }
        // Changed columns that left stored rows as they were (e.g. a column added without a default).
        const updated = await client.query<RawTableRow>(
          `UPDATE ${this.ctx.schema}.source_tables SET columns = $2 WHERE id = $1 RETURNING *`,
          [same.id, JSON.stringify(descriptor.columns)],
        );
        return { table: toStoredTable(updated.rows[0]!), replaced, created: false };
      }
      const inserted = await client.query<RawTableRow>(
        `INSERT INTO ${this.ctx.schema}.source_tables
           (config_id, connection_tag, schema_name, table_name, object_id, replica_id_columns, columns, sync_data,
            sync_parameters, replaces_earlier)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *`,
        [
          this.configId,
          connectionTag,
          descriptor.schema,
          descriptor.name,
          objectId,
          columns,
          descriptor.columns ? JSON.stringify(descriptor.columns) : null,
          this.syncConfig.tableIsRelevant(ref),
          this.syncConfig.tableHasParameterQueries(ref),
          rows.length > 0,
        ],
      );
      if (rows.length > 0) this.replacingCopyPending = true;
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
      } else if (this.replacingCopyPending) {
        // A table copied again after a schema change replaced rows clients already have: a
        // checkpoint now would show it half copied. (A table new to replication appears as
        // it is copied, without holding back the other tables' changes.)
        const pending = await client.query<{ name: string }>(
          `SELECT schema_name || '.' || table_name AS name FROM ${s}.source_tables
            WHERE config_id = $1 AND replaces_earlier AND NOT dropped AND NOT snapshot_done LIMIT 1`,
          [this.configId],
        );
        if (pending.rows[0]) blockedBy = `table ${pending.rows[0].name} is being copied again after a schema change`;
        else this.replacingCopyPending = false;
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

  /**
   * One statement: the buckets written since `from` (by the op id of their last write, from the
   * running sums) with their checksum at `to`, which warms the checksum cache for every
   * connection; the parameter lookups and custom write checkpoint users with entries in between.
   * A bucket last written after `to` is only reported when it also has an op in (from, to].
   */
  async getCheckpointChanges(from: OpId, to: OpId): Promise<CheckpointChanges> {
    if (from >= to)
      return { from, to, buckets: new Set(), parameterLookups: new Set(), customWriteCheckpointUsers: new Set() };
    await this.subscribeToCompactions();
    const epoch = this.compactionEpoch;
    const s = this.ctx.schema;
    const { rows } = await this.query<{
      kind: 'b' | 'l' | 'w';
      name: string;
      changed: boolean;
      checksum: string | null;
      count: string | null;
    }>(
      `(SELECT 'b'::text AS kind, bc.bucket::text AS name,
               CASE WHEN bc.op_id <= $3 THEN true
                    ELSE EXISTS (SELECT 1 FROM ${s}.ops o
                                  WHERE o.config_id = $1 AND o.bucket = bc.bucket AND o.op_id > $2 AND o.op_id <= $3) END
                 AS changed,
               bc.checksum - coalesce(later.total, 0) AS checksum, bc.count - coalesce(later.n, 0) AS count
          FROM ${s}.bucket_checksums bc
          LEFT JOIN LATERAL (SELECT sum(o.checksum) AS total, count(*) AS n FROM ${s}.ops o
                              WHERE o.config_id = $1 AND o.bucket = bc.bucket AND o.op_id > $3) later ON bc.op_id > $3
         WHERE bc.config_id = $1 AND bc.op_id > $2 LIMIT $4)
       UNION ALL
       (SELECT DISTINCT 'l'::text, lookup::text, true, NULL::int8, NULL::int8 FROM ${s}.parameter_index
         WHERE config_id = $1 AND op_id > $2 AND op_id <= $3 LIMIT $4)
       UNION ALL
       (SELECT DISTINCT 'w'::text, user_id, true, NULL::int8, NULL::int8 FROM ${s}.custom_write_checkpoints
         WHERE config_id = $1 AND op_id > $2 AND op_id <= $3 LIMIT $4)`,
      [this.configId, from.toString(), to.toString(), MAX_LISTED_CHANGES + 1],
    );
    const buckets = new Set<string>();
    const lookups = new Set<string>();
    const users = new Set<string>();
    let bucketRows = 0;
    const seed = epoch === this.compactionEpoch;
    for (const row of rows) {
      if (row.kind === 'l') lookups.add(row.name);
      else if (row.kind === 'w') users.add(row.name);
      else {
        bucketRows++;
        if (row.changed) buckets.add(row.name);
        if (seed) {
          this.cacheChecksum(row.name, {
            opId: to,
            checksum: normaliseChecksum(row.checksum!),
            count: Number(row.count),
          });
        }
      }
    }
    const listed = (set: Set<string>, n: number) => (n > MAX_LISTED_CHANGES ? undefined : set);
    return {
      from,
      to,
      buckets: listed(buckets, bucketRows),
      parameterLookups: listed(lookups, lookups.size),
      customWriteCheckpointUsers: listed(users, users.size),
    };
  }

  async *getBucketData(request: BucketDataRequest, signal?: AbortSignal): AsyncIterable<BucketDataChunk> {
    const chunkOps = Math.max(1, request.chunkOps ?? 10_000);
    const chunkBytes = Math.max(1, request.chunkBytes ?? 1024 * 1024);
    const invalidated = (await this.compactedThrough()) > request.checkpoint;
    // Buckets the client already holds (after > 0) usually have only a few new ops: one query
    // reads them all, shared with other connections reading the same range. A bucket whose new
    // ops do not fit one chunk is streamed instead.
    const held = request.buckets.filter((b) => b.after > 0n);
    // Within these limits the new ops fit one chunk (chunkOps, and the chunk byte rule).
    const deltaOps = Math.min(DELTA_OPS, chunkOps);
    const deltaBytes = Math.min(DELTA_BYTES, chunkBytes);
    const deltas =
      held.length > 0
        ? await this.readDeltas(held, request.checkpoint, deltaOps, deltaBytes)
        : new Map<string, readonly OplogEntry[] | undefined>();
    for (const { bucket, after } of request.buckets) {
      const delta = deltas.get(deltaKey(bucket, after, request.checkpoint, deltaOps, deltaBytes));
      if (delta) {
        signal?.throwIfAborted();
        const nextAfter = delta.length > 0 ? delta[delta.length - 1]!.opId : after;
        yield { bucket, after, nextAfter, hasMore: false, ops: delta, checkpointInvalidated: invalidated };
        continue;
      }
      yield* this.streamBucket(
        { bucket, after, checkpoint: request.checkpoint, chunkOps, chunkBytes, invalidated },
        signal,
        request.budget,
      );
    }
  }

  /**
   * One bucket's ops after `after` up to the checkpoint, in chunks. The next batch is read ahead
   * while the budget is less than half spent; otherwise it is read once this one is handed out,
   * after waiting (holding nothing) for its lease.
   */
  private async *streamBucket(
    read: {
      bucket: string;
      after: bigint;
      checkpoint: bigint;
      chunkOps: number;
      chunkBytes: number;
      invalidated: boolean;
    },
    signal: AbortSignal | undefined,
    budget: ByteBudget | undefined,
  ): AsyncIterable<BucketDataChunk> {
    const { bucket, after, chunkOps, chunkBytes } = read;
    // Ops are fetched in batches of up to READ_BATCH_CHUNKS chunks, independent of chunk
    // boundaries (cut here, by the same byte rule), so no row is scanned twice.
    const batchOps = chunkOps * READ_BATCH_CHUNKS;
    const batchBytes = chunkBytes * READ_BATCH_CHUNKS;
    let cursor = after;
    // The batch being handed out and the read after it, each with its lease of the budget.
    let batch: OpBatch | undefined;
    let batchLease: BudgetLease | undefined;
    // (Assigned in the closures below; typed by a cast so no branch narrows it to undefined.)
    let next = undefined as { ops: Promise<OpBatch>; lease: BudgetLease | undefined } | undefined;
    /** Where the next read starts when it was not made ahead. */
    let deferred: { from: bigint; limit: number } | undefined = { from: after, limit: batchOps };
    const startRead = (from: bigint, limit: number, lease: BudgetLease | undefined) => {
      const ops = this.readOpBatch(bucket, from, read.checkpoint, limit, batchBytes);
      ops.catch(() => undefined);
      next = { ops, lease };
    };
    /** Hands back the consumed batch's lease, takes the next batch and reads ahead when it may. */
    const advance = async () => {
      batchLease?.release();
      batchLease = undefined;
      if (!next) {
        const lease = budget ? await budget.acquire(batchBytes, signal) : undefined;
        startRead(deferred!.from, deferred!.limit, lease);
        deferred = undefined;
      }
      const taken = next!;
      next = undefined;
      batchLease = taken.lease;
      batch = await taken.ops;
      batchLease?.resize(batch.bytes);
      if (batch.more) {
        // The op limit follows the sizes just seen, so that the byte budget rather than the
        // limit usually ends a batch without the query scanning many rows past it.
        const perOp = batch.bytes / Math.max(1, batch.count);
        const limit = Math.max(1, Math.min(batchOps, Math.ceil((batchBytes / perOp) * 1.1)));
        const lease = budget?.tryAcquire(batchBytes, budget.limit / 2);
        if (!budget || lease) startRead(batch.lastOpId, limit, lease);
        else deferred = { from: batch.lastOpId, limit };
      }
    };
    try {
      await advance();
      for (;;) {
        signal?.throwIfAborted();
        const ops: OplogEntry[] = [];
        let bytes = 0;
        while (ops.length < chunkOps && bytes < chunkBytes) {
          if (batch!.done) {
            if (!batch!.more) break;
            await advance();
            continue;
          }
          bytes += batch!.peekSize();
          ops.push(batch!.next());
        }
        if (batch!.done && batch!.more) await advance(); // is anything left?
        const hasMore = !batch!.done;
        const nextAfter = ops.length > 0 ? ops[ops.length - 1]!.opId : cursor;
        yield { bucket, after: cursor, nextAfter, hasMore, ops, checkpointInvalidated: read.invalidated };
        cursor = nextAfter;
        if (!hasMore) break;
      }
    } finally {
      batchLease?.release();
      next?.lease?.release();
    }
  }

  /**
   * The new ops of several buckets: per bucket, its ops after `after` up to the checkpoint when
   * they are at most `maxOps` and the bytes before each stay under `maxBytes` (so they fit one
   * chunk), else undefined. Answers are shared by every connection of the process (same bucket,
   * after, checkpoint and limits): the connections syncing a global bucket read its new ops once.
   * The buckets that are not, of every connection asking in the same turn of the event loop (the
   * connections woken by one checkpoint), are read in one query.
   */
  private async readDeltas(
    buckets: ReadonlyArray<{ readonly bucket: string; readonly after: OpId }>,
    checkpoint: OpId,
    maxOps: number,
    maxBytes: number,
  ): Promise<Map<string, readonly OplogEntry[] | undefined>> {
    const result = new Map<string, readonly OplogEntry[] | undefined>();
    const waits: Promise<void>[] = [];
    const epoch = this.compactionEpoch;
    for (const { bucket, after } of buckets) {
      const key = deltaKey(bucket, after, checkpoint, maxOps, maxBytes);
      let ops = this.deltaReads.get(key);
      if (!ops) {
        const read = this.queueDelta({ key, bucket, after }, checkpoint, maxOps, maxBytes);
        ops = read;
        this.deltaReads.set(key, read);
        read.then(
          (value) => {
            // Kept briefly for the other connections, unless a compaction came meanwhile.
            if (this.deltaReads.get(key) !== read) return;
            if (epoch !== this.compactionEpoch) this.deltaReads.delete(key);
            else this.deltaReads.settled(key, value);
          },
          () => {
            if (this.deltaReads.get(key) === read) this.deltaReads.delete(key);
          },
        );
      }
      waits.push(ops.then((value) => void result.set(key, value)));
    }
    await Promise.all(waits);
    return result;
  }

  /** Adds one bucket to the delta query that starts at the end of this turn (or when full). */
  private queueDelta(
    item: { key: string; bucket: string; after: OpId },
    checkpoint: OpId,
    maxOps: number,
    maxBytes: number,
  ): Promise<readonly OplogEntry[] | undefined> {
    const group = `${checkpoint}\u0000${maxOps}\u0000${maxBytes}`;
    let batch = this.pendingDeltas.get(group);
    if (!batch) {
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const items: { key: string; bucket: string; after: OpId }[] = [];
      const answers = released.then(() => this.queryDeltas(items, checkpoint, maxOps, maxBytes));
      answers.catch(() => undefined);
      const pending = {
        items,
        answers,
        start: () => {
          if (this.pendingDeltas.get(group) === pending) this.pendingDeltas.delete(group);
          release();
        },
      };
      this.pendingDeltas.set(group, pending);
      setImmediate(pending.start);
      batch = pending;
    }
    batch.items.push(item);
    const answer = batch.answers.then((answers) => answers.get(item.key));
    if (batch.items.length >= DELTA_BUCKETS_PER_QUERY) batch.start();
    return answer;
  }

  private async queryDeltas(
    buckets: ReadonlyArray<{ key: string; bucket: string; after: OpId }>,
    checkpoint: OpId,
    maxOps: number,
    maxBytes: number,
  ): Promise<Map<string, readonly OplogEntry[] | undefined>> {
    const { rows } = await this.query<OpRow & { i: string; fetched: string }>(
      `SELECT r.i, d.fetched, d.op_id, d.op, d.row_table, d.row_id, d.subkey, d.checksum, d.data
         FROM unnest($2::text[], $3::int8[]) WITH ORDINALITY AS r(bucket, after, i)
         CROSS JOIN LATERAL (
           SELECT w.* FROM (
             SELECT o.*, count(*) OVER () AS fetched,
                    sum(o.size) OVER (ORDER BY o.op_id ROWS UNBOUNDED PRECEDING) - o.size AS before_bytes
               FROM (SELECT op_id, op, row_table, row_id, subkey, checksum, data,
                            coalesce(octet_length(data), 0) + ${OP_OVERHEAD_BYTES} AS size
                       FROM ${this.ctx.schema}.ops
                      WHERE config_id = $1 AND bucket = r.bucket AND op_id > r.after AND op_id <= $4
                      ORDER BY op_id LIMIT $5) o) w
            WHERE w.before_bytes < $6) d
        ORDER BY r.i, d.op_id`,
      [
        this.configId,
        buckets.map((b) => b.bucket),
        buckets.map((b) => b.after.toString()),
        checkpoint.toString(),
        maxOps + 1,
        maxBytes,
      ],
    );
    const ops = buckets.map((): OplogEntry[] => []);
    const fetched = buckets.map(() => 0);
    for (const row of rows) {
      const i = Number(row.i) - 1;
      fetched[i] = Number(row.fetched);
      ops[i]!.push(toOplogEntry(row));
    }
    const result = new Map<string, readonly OplogEntry[] | undefined>();
    buckets.forEach((b, i) => {
      // Complete: no op beyond the limit and none cut by the byte budget.
      const complete = fetched[i]! <= maxOps && ops[i]!.length === fetched[i];
      result.set(b.key, complete ? ops[i]! : undefined);
    });
    return result;
  }

  /**
   * One batch of a bucket's ops after `after`, up to `checkpoint`: at most `maxOps + 1` ops, while
   * the bytes before each stay under `maxBytes` (a running int8 window sum over the index order:
   * no sort). Read with binary COPY into one Buffer, decoded op by op as chunks are cut: the
   * batch costs no JS objects until it is handed out, and no text parsing of numbers. COPY takes
   * no parameters: every value is a number formatted here except the bucket, an escaped literal.
   */
  private async readOpBatch(
    bucket: string,
    after: bigint,
    checkpoint: bigint,
    maxOps: number,
    maxBytes: number,
  ): Promise<OpBatch> {
    const sql = `COPY (
      SELECT op_id, op, row_table, row_id, subkey, checksum, data
        FROM (SELECT o.*, sum(o.size) OVER (ORDER BY o.op_id ROWS UNBOUNDED PRECEDING) - o.size AS before_bytes
                FROM (SELECT op_id, op, row_table, row_id, subkey, checksum, data,
                             coalesce(octet_length(data), 0) + ${OP_OVERHEAD_BYTES} AS size
                        FROM ${this.ctx.schema}.ops
                       WHERE config_id = ${Number(this.configId)} AND bucket = ${escapeLiteral(bucket)}
                         AND op_id > ${BigInt(after)} AND op_id <= ${BigInt(checkpoint)}
                       ORDER BY op_id LIMIT ${Number(maxOps) + 1}) o) t
       WHERE before_bytes < ${Number(maxBytes)} ORDER BY op_id) TO STDOUT (FORMAT binary)`;
    const client = await this.connect();
    let failed: unknown;
    try {
      const parts: Buffer[] = [];
      for await (const part of client.query(copyTo(sql, { highWaterMark: 1 << 20 }))) parts.push(part as Buffer);
      return new OpBatch(Buffer.concat(parts), maxOps, maxBytes);
    } catch (e) {
      failed = e;
      throw translatePostgresError(e, this.ctx.uri);
    } finally {
      // A connection that failed mid-COPY is not reused.
      client.release(failed instanceof Error ? failed : undefined);
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
      // One statement (one snapshot): per bucket, start from whichever is nearer the checkpoint,
      // this process's cached sum (at or before it) or the stored running sum (as of the last
      // flush that wrote the bucket, maybe past the checkpoint), and sum the ops in between: the
      // ones after the base are added, the ones after the checkpoint subtracted. Cold, at the
      // newest checkpoint, that range is only the last flushes; never the whole bucket.
      const { rows } = await this.query<{
        bucket: string;
        stored: boolean;
        base_op: string;
        base_sum: string;
        base_n: string;
        total: string;
        n: string;
      }>(
        `WITH r AS (
           SELECT r.bucket, r.after, bc.op_id, bc.checksum, bc.count,
                  bc.op_id IS NOT NULL AND abs(bc.op_id - $4::int8) < $4::int8 - r.after AS stored
             FROM unnest($2::text[], $3::int8[]) AS r(bucket, after)
             LEFT JOIN ${this.ctx.schema}.bucket_checksums bc ON bc.config_id = $1 AND bc.bucket = r.bucket)
         SELECT r.bucket, r.stored, CASE WHEN r.stored THEN r.op_id ELSE r.after END AS base_op,
                CASE WHEN r.stored THEN r.checksum ELSE 0 END AS base_sum,
                CASE WHEN r.stored THEN r.count ELSE 0 END AS base_n, s.total, s.n
           FROM r CROSS JOIN LATERAL (
             SELECT coalesce(sum(checksum), 0) AS total, count(*) AS n FROM ${this.ctx.schema}.ops
              WHERE config_id = $1 AND bucket = r.bucket
                AND op_id > least(CASE WHEN r.stored THEN r.op_id ELSE r.after END, $4::int8)
                AND op_id <= greatest(CASE WHEN r.stored THEN r.op_id ELSE r.after END, $4::int8)) s`,
        [this.configId, slice.map((q) => q.bucket), slice.map((q) => q.base.opId.toString()), checkpoint.toString()],
      );
      const byBucket = new Map(rows.map((r) => [r.bucket, r]));
      for (const { bucket, base } of slice) {
        const row = byBucket.get(bucket);
        let checksum = base.checksum;
        let count = base.count;
        if (row) {
          const sign = BigInt(row.base_op) > checkpoint ? -1n : 1n;
          const start = row.stored ? BigInt(row.base_sum) : BigInt(base.checksum);
          checksum = normaliseChecksum(start + sign * BigInt(row.total));
          count = (row.stored ? Number(row.base_n) : base.count) + Number(sign) * Number(row.n);
        }
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

  /**
   * Forgets cached checksums and shared delta reads: a CLEAR op sums a prefix, so a cached
   * prefix sum would be counted twice.
   */
  invalidateChecksums(): void {
    this.compactionEpoch++;
    this.checksumCache.clear();
    this.deltaReads.clear();
  }

  private subscribeToCompactions(): Promise<unknown> {
    this.compactionSubscription ??= (async () => {
      // Listening before reading: a compaction in between is seen either way.
      const unsubscribe = await this.ctx.listener.subscribe((n) => {
        if (n === undefined) {
          this.knownCompactedThrough = undefined;
          this.invalidateChecksums();
        } else if (n.configId === this.configId && n.compactedThrough !== this.knownCompactedThrough) {
          this.knownCompactedThrough = n.compactedThrough;
          this.invalidateChecksums();
        }
      });
      this.learnCompactedThrough((await this.readConfig()).compactedThrough);
      return unsubscribe;
    })();
    this.compactionSubscription.catch(() => (this.compactionSubscription = undefined));
    return this.compactionSubscription;
  }

  /** Takes a `compacted_through` read from the config row (it only grows). */
  private learnCompactedThrough(read: bigint): void {
    if (this.knownCompactedThrough === undefined || read > this.knownCompactedThrough) {
      if (this.knownCompactedThrough !== undefined) this.invalidateChecksums();
      this.knownCompactedThrough = read;
    }
  }

  /**
   * `compacted_through` now: from the notifications while the listener is up (no query), else
   * read from the config row.
   */
  private async compactedThrough(): Promise<bigint> {
    await this.subscribeToCompactions();
    if (this.knownCompactedThrough !== undefined && this.ctx.listener.listening) return this.knownCompactedThrough;
    const read = (await this.readConfig()).compactedThrough;
    if (this.ctx.listener.listening) this.learnCompactedThrough(read);
    return read;
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
