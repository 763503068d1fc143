/**
 * The Postgres write batch: buffers saves, evaluates each row once, diffs against the row's
 * stored record and writes ops (COPY), parameter entries (COPY) and current rows (one
 * array-bound upsert) per flush, in one transaction under the config lock.
 */
import {
  bucketRefs,
  diffParameterLookups,
  diffRowBuckets,
  comparePositions,
  opSubkey,
  putChecksum,
  removeChecksum,
  replicaKey,
  type BucketRowRef,
  type CommitResult,
  type EvaluatedRow,
  type FlushResult,
  type SaveOperation,
  type SqliteRow,
  type StoredTable,
  type TableSnapshotProgress,
  type WriteBatch,
  type WriteBatchMode,
  type WriteBatchOptions,
} from '@bucketsync/service-core';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import type pg from 'pg';
import { copyField, copyLines } from './postgres-copy-writer.js';
import type { ConfigRow, PostgresSyncConfigStorage, RawTableRow } from './postgres-sync-config-storage.js';
import { toStoredTable } from './postgres-sync-config-storage.js';
import { encodeRows } from './postgres-value-codec.js';

const PUT = 1;
const REMOVE = 2;

/** A save, evaluated outside the transaction. */
interface PreparedChange {
  readonly table: StoredTable;
  readonly key: string;
  readonly subkey: string;
  readonly position: string | undefined;
  /** `undefined` for a delete. */
  readonly outputs: PreparedOutput[] | undefined;
  readonly lookups: { lookup: string; outputs: readonly SqliteRow[] }[];
}

interface PreparedOutput extends EvaluatedRow {
  readonly json: string;
  readonly checksum: number;
}

/** The stored record of a row while a flush works on it. */
interface RowState {
  buckets: BucketRowRef[];
  lookups: string[];
  position: string | null;
  deletedOp: bigint | null;
  exists: boolean;
  /** Storage held a record before this flush (upsert) or not (plain COPY). */
  existed: boolean;
  changed: boolean;
}

/** Compact JSON of a row's bucket references: `[["bucket","table","id"],...]`. */
function encodeBucketRefs(refs: readonly BucketRowRef[]): string {
  if (refs.length === 0) return '[]';
  let out = '[';
  for (let i = 0; i < refs.length; i++) {
    const r = refs[i]!;
    out += `${i > 0 ? ',' : ''}[${JSON.stringify(r.bucket)},${JSON.stringify(r.table)},${JSON.stringify(r.id)}]`;
  }
  return out + ']';
}

function estimateBytes(row: SqliteRow | undefined): number {
  if (!row) return 0;
  let bytes = 16;
  for (const key in row) {
    const v = row[key];
    bytes += key.length + 8;
    if (typeof v === 'string') bytes += v.length;
    else if (v instanceof Uint8Array) bytes += v.byteLength;
  }
  return bytes;
}

export class PostgresWriteBatch implements WriteBatch {
  readonly mode: WriteBatchMode;
  private pending: SaveOperation[] = [];
  private pendingBytes = 0;
  private readonly progress = new Map<number, TableSnapshotProgress>();
  private customCheckpoints: { userId: string; checkpoint: bigint }[] = [];
  private dirtySinceCommit = false;
  private closed = false;
  private readonly maxRows: number;
  private readonly maxBytes: number;

  constructor(
    private readonly storage: PostgresSyncConfigStorage,
    private readonly options: WriteBatchOptions,
  ) {
    this.mode = options.mode ?? 'streaming';
    this.maxRows = options.maxBufferedRows ?? 10_000;
    this.maxBytes = options.maxBufferedBytes ?? 16 * 1024 * 1024;
  }

  private assertOpen(): void {
    if (this.closed) throw new ServiceError(ErrorCode.INTERNAL, 'write batch used after close()');
  }

  async save(operation: SaveOperation): Promise<void> {
    this.assertOpen();
    this.pending.push(operation);
    this.dirtySinceCommit = true;
    this.pendingBytes += operation.tag === 'delete' ? estimateBytes(operation.before) : estimateBytes(operation.after);
    if (this.pending.length >= this.maxRows || this.pendingBytes >= this.maxBytes) {
      // Pipelined: the buffer's rows are evaluated now, written while the caller buffers the next ones.
      const flush = this.startFlush();
      this.inflight = flush;
      flush.catch(() => undefined);
      await this.writing;
    }
  }

  async flush(): Promise<FlushResult | null> {
    this.assertOpen();
    if (this.pending.length === 0 && this.progress.size === 0 && this.customCheckpoints.length === 0) {
      await this.inflight;
      return null;
    }
    const flush = this.startFlush();
    this.inflight = flush;
    return flush;
  }

  /** At most one write in flight; resolves when the previous flush's transaction has started. */
  private writing: Promise<unknown> = Promise.resolve();
  private inflight: Promise<FlushResult | null> | undefined;

  /**
   * Takes the buffered saves, runs the before-flush hook, evaluates them, then writes them
   * after the previous flush finished (flushes of a batch apply in order).
   */
  private async startFlush(): Promise<FlushResult> {
    const saves = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const previous = this.inflight;
    const context = { mode: this.mode, pendingSaves: saves.length };
    let release!: () => void;
    this.writing = new Promise<void>((resolve) => (release = resolve));
    try {
      const prepared: PreparedChange[] = [];
      let skipped = 0;
      for (const save of saves) {
        const before = prepared.length;
        this.prepare(save, prepared);
        if (prepared.length === before) skipped++;
      }
      await previous;
      release();
      // Evaluation reads nothing from storage, so the hook still runs between the source read and every storage access.
      await this.options.hooks?.beforeFlush?.(context);
      this.options.signal?.throwIfAborted();
      const progress = [...this.progress];
      this.progress.clear();
      const custom = this.customCheckpoints;
      this.customCheckpoints = [];
      const result = await this.storage.withConfigLock((client, config) =>
        this.write(client, config, prepared, progress, custom),
      );
      const full: FlushResult = { ...result, rowsSkipped: result.rowsSkipped + skipped };
      await this.options.hooks?.afterFlush?.({ ...context, result: full });
      return full;
    } finally {
      release();
    }
  }

  /** Evaluates one save into prepared changes (an update that changes the key is a delete plus an insert). */
  private prepare(save: SaveOperation, out: PreparedChange[]): void {
    const { table } = save;
    const ref = { schema: table.schema, name: table.name };
    let key: string;
    try {
      key = replicaKey(save.tag === 'delete' ? save.before : save.after, table.replicaIdColumns);
    } catch (e) {
      this.rowError(e as ServiceError, table, '?');
      return;
    }
    if (save.tag === 'update' && save.before) {
      const oldKey = replicaKey(save.before, table.replicaIdColumns);
      if (oldKey !== key) {
        out.push({
          table,
          key: oldKey,
          subkey: opSubkey(ref, oldKey),
          position: save.position,
          outputs: undefined,
          lookups: [],
        });
      }
    }
    const subkey = opSubkey(ref, key);
    if (save.tag === 'delete') {
      out.push({ table, key, subkey, position: save.position, outputs: undefined, lookups: [] });
      return;
    }
    const { syncConfig } = this.storage;
    const engine = this.storage.ctx.engine;
    const outputs: PreparedOutput[] = [];
    if (table.syncData) {
      for (const result of syncConfig.evaluateRow(ref, save.after)) {
        if ('error' in result) {
          this.rowError(
            new ServiceError(
              ErrorCode.SYNC_CONFIG_INVALID,
              `row ${key} of ${table.schema}.${table.name}: ${result.error}`,
            ),
            table,
            key,
          );
          return;
        }
        const json = engine.rowToJson(result.data);
        if (json.length > this.storage.ctx.maxRowBytes / 4 && Buffer.byteLength(json) > this.storage.ctx.maxRowBytes) {
          this.rowError(
            new ServiceError(
              ErrorCode.ROW_TOO_LARGE,
              `row ${key} of ${table.schema}.${table.name} is ${Buffer.byteLength(json)} bytes as ${result.table} in ${result.bucket} (limit ${this.storage.ctx.maxRowBytes})`,
            ),
            table,
            key,
          );
          return;
        }
        outputs.push({ ...result, json, checksum: putChecksum({ table: result.table, id: result.id, subkey }, json) });
      }
    }
    const lookups: PreparedChange['lookups'] = [];
    if (table.syncParameters) {
      for (const result of syncConfig.evaluateParameterRow(ref, save.after)) {
        if ('error' in result) {
          this.rowError(
            new ServiceError(
              ErrorCode.SYNC_CONFIG_INVALID,
              `row ${key} of ${table.schema}.${table.name}: ${result.error}`,
            ),
            table,
            key,
          );
          return;
        }
        lookups.push({ lookup: engine.serializeParameterLookup(result.lookup), outputs: result.outputs });
      }
    }
    out.push({ table, key, subkey, position: save.position, outputs, lookups });
  }

  private rowError(error: ServiceError, table: StoredTable, key: string): void {
    if (this.options.onRowError) this.options.onRowError(error, { table, key });
    else this.storage.ctx.logger.warn('row skipped', { error, table: `${table.schema}.${table.name}`, key });
  }

  /** The transaction body of a flush. */
  private async write(
    client: pg.PoolClient,
    config: ConfigRow,
    changes: readonly PreparedChange[],
    progress: [number, TableSnapshotProgress][],
    custom: { userId: string; checkpoint: bigint }[],
    mode: WriteBatchMode = this.mode,
  ): Promise<FlushResult> {
    const s = this.storage.ctx.schema;
    const configId = this.storage.configId;
    const states = await this.loadStates(client, changes);
    let opId = config.lastOpId;
    const opLines: string[] = [];
    const paramLines: string[] = [];
    let applied = 0;
    let skipped = 0;
    let tombstones = false;
    for (const change of changes) {
      const stateKey = `${change.table.id}\u0000${change.key}`;
      let state = states.get(stateKey);
      if (
        state &&
        change.position !== undefined &&
        state.position !== null &&
        comparePositions(change.position, state.position) <= 0
      ) {
        skipped++; // A replay of a change already applied (invariant 6).
        continue;
      }
      if (mode === 'snapshot' && state?.exists) {
        skipped++; // Insert-if-absent: a live record or a tombstone wins (invariant 4).
        continue;
      }
      if (!state) {
        state = {
          buckets: [],
          lookups: [],
          position: null,
          deletedOp: null,
          exists: false,
          existed: false,
          changed: false,
        };
        states.set(stateKey, state);
      }
      applied++;
      const diff = diffRowBuckets(state.buckets, change.outputs ?? []);
      const subkey = copyField(change.subkey);
      for (const ref of diff.removes) {
        opId++;
        const checksum = removeChecksum({ table: ref.table, id: ref.id, subkey: change.subkey });
        opLines.push(
          `${configId}\t${copyField(ref.bucket)}\t${opId}\t${REMOVE}\t${copyField(ref.table)}\t${copyField(ref.id)}\t${subkey}\t${checksum}\t\\N`,
        );
      }
      for (const put of diff.puts as PreparedOutput[]) {
        opId++;
        opLines.push(
          `${configId}\t${copyField(put.bucket)}\t${opId}\t${PUT}\t${copyField(put.table)}\t${copyField(put.id)}\t${subkey}\t${put.checksum}\t${copyField(put.json)}`,
        );
      }
      const params = diffParameterLookups(state.lookups, change.lookups);
      const rowKey = copyField(change.key);
      for (const entry of params.changes) {
        opId++;
        paramLines.push(
          `${configId}\t${copyField(entry.lookup)}\t${change.table.id}\t${rowKey}\t${opId}\t${copyField(encodeRows(entry.outputs))}`,
        );
      }
      state.changed = true;
      state.exists = true;
      state.position = change.position ?? state.position;
      if (change.outputs === undefined) {
        // A delete leaves a tombstone with the op id that deleted it (invariant 5); purged at a later checkpoint.
        state.buckets = [];
        state.lookups = [];
        state.deletedOp = opId;
        tombstones = true;
      } else {
        state.buckets = bucketRefs(diff.puts);
        state.lookups = params.current;
        state.deletedOp = null;
      }
    }
    for (const entry of custom) {
      opId++;
      await client.query(
        `INSERT INTO ${s}.custom_write_checkpoints (config_id, user_id, op_id, checkpoint) VALUES ($1, $2, $3, $4)`,
        [configId, entry.userId, opId.toString(), entry.checkpoint.toString()],
      );
    }
    if (opId !== config.lastOpId) {
      await client.query(`UPDATE ${s}.sync_configs SET last_op_id = $2 WHERE id = $1`, [configId, opId.toString()]);
    }
    await copyLines(
      client,
      `${s}.ops (config_id, bucket, op_id, op, row_table, row_id, subkey, checksum, data)`,
      opLines,
    );
    await copyLines(client, `${s}.parameter_index (config_id, lookup, table_id, row_key, op_id, outputs)`, paramLines);
    await this.writeStates(client, states);
    for (const [tableId, p] of progress) {
      await client.query(`UPDATE ${s}.source_tables SET snapshot_progress = $2 WHERE id = $1`, [
        tableId,
        JSON.stringify(p),
      ]);
    }
    if (tombstones) this.storage.tombstonesWritten = true;
    return {
      rowsApplied: applied,
      rowsSkipped: skipped,
      opsWritten: opLines.length + paramLines.length,
      lastOpId: opId,
    };
  }

  /** Loads the stored records of every row touched by the flush, one query per table. */
  private async loadStates(client: pg.PoolClient, changes: readonly PreparedChange[]): Promise<Map<string, RowState>> {
    const byTable = new Map<number, Set<string>>();
    for (const c of changes) {
      let keys = byTable.get(c.table.id);
      if (!keys) byTable.set(c.table.id, (keys = new Set()));
      keys.add(c.key);
    }
    const states = new Map<string, RowState>();
    for (const [tableId, keys] of byTable) {
      const { rows } = await client.query<{
        row_key: string;
        buckets: string;
        lookups: string;
        position: string | null;
        deleted_op: string | null;
      }>(
        `SELECT row_key, buckets, lookups, position, deleted_op FROM ${this.storage.ctx.schema}.current_data
          WHERE config_id = $1 AND table_id = $2 AND row_key = ANY($3::text[])`,
        [this.storage.configId, tableId, [...keys]],
      );
      for (const row of rows) {
        const buckets = (JSON.parse(row.buckets) as [string, string, string][]).map(([bucket, table, id]) => ({
          bucket,
          table,
          id,
        }));
        states.set(`${tableId}\u0000${row.row_key}`, {
          buckets,
          lookups: JSON.parse(row.lookups) as string[],
          position: row.position,
          deletedOp: row.deleted_op === null ? null : BigInt(row.deleted_op),
          exists: true,
          existed: true,
          changed: false,
        });
      }
    }
    return states;
  }

  /**
   * Writes the changed records: rows storage did not hold yet with COPY (no conflict is
   * possible under the config lock), rows it held with one array-bound upsert per 10,000.
   */
  private async writeStates(client: pg.PoolClient, states: Map<string, RowState>): Promise<void> {
    const configId = this.storage.configId;
    const fresh: string[] = [];
    const tableIds: number[] = [];
    const keys: string[] = [];
    const buckets: string[] = [];
    const lookups: string[] = [];
    const positions: (string | null)[] = [];
    const deleted: (string | null)[] = [];
    const upsert = async () => {
      if (keys.length === 0) return;
      await client.query(
        `INSERT INTO ${this.storage.ctx.schema}.current_data (config_id, table_id, row_key, buckets, lookups, position, deleted_op)
         SELECT $1, * FROM unnest($2::int4[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[])
         ON CONFLICT (config_id, table_id, row_key) DO UPDATE SET buckets = excluded.buckets, lookups = excluded.lookups,
           position = excluded.position, deleted_op = excluded.deleted_op`,
        [configId, tableIds, keys, buckets, lookups, positions, deleted],
      );
      tableIds.length = keys.length = buckets.length = lookups.length = positions.length = deleted.length = 0;
    };
    for (const [stateKey, state] of states) {
      if (!state.changed) continue;
      const sep = stateKey.indexOf('\u0000');
      const bucketsJson = encodeBucketRefs(state.buckets);
      const lookupsJson = state.lookups.length === 0 ? '[]' : JSON.stringify(state.lookups);
      const deletedOp = state.deletedOp === null ? null : state.deletedOp.toString();
      if (!state.existed) {
        fresh.push(
          `${configId}\t${stateKey.slice(0, sep)}\t${copyField(stateKey.slice(sep + 1))}\t${copyField(bucketsJson)}\t${copyField(lookupsJson)}\t${copyField(state.position)}\t${copyField(deletedOp)}`,
        );
        continue;
      }
      tableIds.push(Number(stateKey.slice(0, sep)));
      keys.push(stateKey.slice(sep + 1));
      buckets.push(bucketsJson);
      lookups.push(lookupsJson);
      positions.push(state.position);
      deleted.push(deletedOp);
      if (keys.length >= 10_000) await upsert();
    }
    await upsert();
    await copyLines(
      client,
      `${this.storage.ctx.schema}.current_data (config_id, table_id, row_key, buckets, lookups, position, deleted_op)`,
      fresh,
    );
  }

  async truncate(tables: readonly StoredTable[]): Promise<void> {
    await this.removeAllRows(tables, false);
  }

  async drop(tables: readonly StoredTable[]): Promise<void> {
    await this.removeAllRows(tables, true);
  }

  /** REMOVE ops and empty parameter entries for every live row of the tables, a page at a time. */
  private async removeAllRows(tables: readonly StoredTable[], drop: boolean): Promise<void> {
    this.assertOpen();
    await this.flush();
    this.dirtySinceCommit = true;
    const s = this.storage.ctx.schema;
    for (const table of tables) {
      let after = '';
      while (true) {
        const more = await this.storage.withConfigLock(async (client, config) => {
          const { rows } = await client.query<{ row_key: string }>(
            `SELECT row_key FROM ${s}.current_data WHERE config_id = $1 AND table_id = $2 AND deleted_op IS NULL
               AND row_key > $3 ORDER BY row_key LIMIT 5000`,
            [this.storage.configId, table.id, after],
          );
          if (rows.length === 0) return false;
          after = rows[rows.length - 1]!.row_key;
          const ref = { schema: table.schema, name: table.name };
          const changes = rows.map((r) => ({
            table,
            key: r.row_key,
            subkey: opSubkey(ref, r.row_key),
            position: undefined,
            outputs: undefined,
            lookups: [],
          }));
          await this.write(client, config, changes, [], [], 'streaming');
          return rows.length === 5000;
        });
        if (!more) break;
      }
      if (drop) {
        await this.storage.withConfigLock(async (client) => {
          await client.query(`DELETE FROM ${s}.current_data WHERE config_id = $1 AND table_id = $2`, [
            this.storage.configId,
            table.id,
          ]);
          await client.query(`UPDATE ${s}.source_tables SET dropped = true WHERE id = $1`, [table.id]);
        });
      }
    }
  }

  async commit(position: string): Promise<CommitResult> {
    this.assertOpen();
    await this.flush();
    this.dirtySinceCommit = false;
    return this.storage.commitCheckpoint(position);
  }

  async keepalive(position: string): Promise<CommitResult> {
    this.assertOpen();
    if (this.dirtySinceCommit || this.pending.length > 0) {
      const checkpoint = await this.storage.getCheckpoint();
      return { checkpointCreated: false, checkpoint, blockedBy: 'a source transaction is in progress in this batch' };
    }
    await this.flush();
    return this.storage.commitCheckpoint(position);
  }

  async setResumePosition(position: string): Promise<void> {
    this.assertOpen();
    await this.storage.query(`UPDATE ${this.storage.ctx.schema}.sync_configs SET resume_position = $2 WHERE id = $1`, [
      this.storage.configId,
      position,
    ]);
  }

  async markTableSnapshotDone(tables: readonly StoredTable[], position: string): Promise<StoredTable[]> {
    this.assertOpen();
    await this.flush();
    const s = this.storage.ctx.schema;
    return this.storage.withConfigLock(async (client, config) => {
      const { rows } = await client.query<RawTableRow>(
        `UPDATE ${s}.source_tables SET snapshot_done = true, snapshot_boundary = $2 WHERE id = ANY($1::int4[]) RETURNING *`,
        [tables.map((t) => t.id), position],
      );
      if (config.noCheckpointBefore === undefined || comparePositions(position, config.noCheckpointBefore) > 0) {
        await client.query(`UPDATE ${s}.sync_configs SET no_checkpoint_before = $2 WHERE id = $1`, [
          this.storage.configId,
          position,
        ]);
      }
      return rows.map(toStoredTable);
    });
  }

  async markTableSnapshotRequired(table: StoredTable): Promise<StoredTable> {
    this.assertOpen();
    const { rows } = await this.storage.query<RawTableRow>(
      `UPDATE ${this.storage.ctx.schema}.source_tables SET snapshot_done = false, snapshot_boundary = NULL, snapshot_progress = NULL
        WHERE id = $1 RETURNING *`,
      [table.id],
    );
    return rows[0]
      ? toStoredTable(rows[0])
      : { ...table, snapshotDone: false, snapshotBoundary: undefined, snapshotProgress: undefined };
  }

  async markSnapshotDone(position: string): Promise<void> {
    this.assertOpen();
    await this.flush();
    const s = this.storage.ctx.schema;
    await this.storage.withConfigLock(async (client, config) => {
      const { rows } = await client.query<{ name: string }>(
        `SELECT schema_name || '.' || table_name AS name FROM ${s}.source_tables
          WHERE config_id = $1 AND NOT dropped AND NOT snapshot_done ORDER BY schema_name, table_name`,
        [this.storage.configId],
      );
      if (rows.length > 0) {
        throw new ServiceError(ErrorCode.SNAPSHOT_PENDING, `pending: ${rows.map((r) => r.name).join(', ')}`);
      }
      const boundary =
        config.noCheckpointBefore === undefined || comparePositions(position, config.noCheckpointBefore) > 0
          ? position
          : config.noCheckpointBefore;
      await client.query(`UPDATE ${s}.sync_configs SET snapshot_done = true, no_checkpoint_before = $2 WHERE id = $1`, [
        this.storage.configId,
        boundary,
      ]);
    });
  }

  async updateTableProgress(table: StoredTable, progress: TableSnapshotProgress): Promise<StoredTable> {
    this.assertOpen();
    this.progress.set(table.id, progress);
    return { ...table, snapshotProgress: progress };
  }

  async addCustomWriteCheckpoint(entry: { userId: string; checkpoint: bigint }): Promise<void> {
    this.assertOpen();
    this.customCheckpoints.push(entry);
    this.dirtySinceCommit = true;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.inflight?.catch(() => undefined);
    this.pending = [];
    this.progress.clear();
    this.customCheckpoints = [];
  }
}
