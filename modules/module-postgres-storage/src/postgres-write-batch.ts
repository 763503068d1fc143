/**
 * The Postgres write batch: evaluates and encodes each saved row once, when it is saved
 * (`postgres-prepared-flush.ts`), so that work overlaps the previous flush's writes; then per
 * flush, in one transaction under the config lock: decides which rows storage may already hold
 * (`postgres-key-tracker.ts`), looks only those up and diffs them, fills in op ids, and writes
 * ops, parameter entries and new current rows with COPY, existing current rows with one
 * array-bound upsert.
 */
import {
  comparePositions,
  diffParameterLookups,
  opSubkey,
  removeChecksum,
  type BucketRowRef,
  type CommitResult,
  type FlushResult,
  type SaveOperation,
  type StoredTable,
  type TableSnapshotProgress,
  type WriteBatch,
  type WriteBatchMode,
  type WriteBatchOptions,
} from '@bucketsync/service-core';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import type pg from 'pg';
import { CopyBuffer, copyBuffers } from './postgres-copy-writer.js';
import { HashSet32, MAX_TRACKED_KEYS, type TrackedKeys } from './postgres-key-tracker.js';
import {
  decodeBucketRefs,
  encodeBucketRefs,
  OP_COLUMNS,
  OP_ID_WIDTH,
  PreparedFlush,
  RECORD_COLUMNS,
  REMOVE,
  type PrepareContext,
} from './postgres-prepared-flush.js';
import type { ConfigRow, PostgresSyncConfigStorage, RawTableRow } from './postgres-sync-config-storage.js';
import { toStoredTable } from './postgres-sync-config-storage.js';
import { encodeRows } from './postgres-value-codec.js';

/** The stored record of a row while a flush works on it (rows that were looked up). */
interface RowState {
  buckets: BucketRowRef[];
  lookups: string[];
  position: string | null;
  deletedOp: bigint | null;
  exists: boolean;
  /** Storage held a record before this flush (upsert) or not (COPY). */
  existed: boolean;
  changed: boolean;
}

/** Op ids of a flush: `base + n`, as plain numbers while they are exact. */
class OpIds {
  private n = 0;
  private readonly small: boolean;
  private readonly baseNumber: number;

  constructor(private readonly base: bigint) {
    this.small = base < BigInt(Number.MAX_SAFE_INTEGER) - (1n << 32n);
    this.baseNumber = Number(base);
  }

  /** Allocates the next op id. */
  allocate(): bigint {
    this.n++;
    return this.current;
  }

  /** Allocates the next op id and writes it into the zero placeholder at `at` of `buf`. */
  fillNext(buf: CopyBuffer, at: number): void {
    this.n++;
    if (this.small) buf.fillNumber(at, OP_ID_WIDTH, this.baseNumber + this.n);
    else buf.fillDigits(at, OP_ID_WIDTH, (this.base + BigInt(this.n)).toString());
  }

  /** Allocates the next op id and appends it to `buf`. */
  writeNext(buf: CopyBuffer): void {
    this.n++;
    if (this.small) buf.int(this.baseNumber + this.n);
    else buf.raw((this.base + BigInt(this.n)).toString());
  }

  /** The last allocated op id (the base when none). */
  get current(): bigint {
    return this.base + BigInt(this.n);
  }

  get allocated(): number {
    return this.n;
  }
}

export class PostgresWriteBatch implements WriteBatch {
  readonly mode: WriteBatchMode;
  /** Saves evaluated and encoded, waiting for the next flush. */
  private pending = new PreparedFlush();
  private readonly progress = new Map<number, TableSnapshotProgress>();
  private customCheckpoints: { userId: string; checkpoint: bigint }[] = [];
  private dirtySinceCommit = false;
  private closed = false;
  private readonly maxRows: number;
  private readonly maxBytes: number;
  /** Per table id: the keys this batch knows storage holds (see postgres-key-tracker.ts). */
  private readonly tracked = new Map<number, TrackedKeys>();
  private readonly prepareContext: PrepareContext;

  constructor(
    private readonly storage: PostgresSyncConfigStorage,
    private readonly options: WriteBatchOptions,
  ) {
    this.mode = options.mode ?? 'streaming';
    this.maxRows = options.maxBufferedRows ?? 10_000;
    this.maxBytes = options.maxBufferedBytes ?? 16 * 1024 * 1024;
    this.prepareContext = {
      configId: storage.configId,
      syncConfig: storage.syncConfig,
      engine: storage.ctx.engine,
      maxRowBytes: storage.ctx.maxRowBytes,
      onRowError: (error, table, key) => this.rowError(error, table, key),
    };
  }

  private assertOpen(): void {
    if (this.closed) throw new ServiceError(ErrorCode.INTERNAL, 'write batch used after close()');
  }

  async save(operation: SaveOperation): Promise<void> {
    this.assertOpen();
    // Evaluation reads nothing from storage, so it may run now: the before-flush hook still
    // runs between the source read and every storage access of the flush.
    this.pending.prepare(operation, this.prepareContext);
    this.dirtySinceCommit = true;
    if (this.pending.saves >= this.maxRows || this.pending.bytes >= this.maxBytes) {
      // Pipelined: this flush is written while the caller saves (and so encodes) the next rows.
      const flush = this.startFlush();
      this.inflight = flush;
      flush.catch(() => undefined);
      await this.writing;
    }
  }

  async flush(): Promise<FlushResult | null> {
    this.assertOpen();
    if (this.pending.saves === 0 && this.progress.size === 0 && this.customCheckpoints.length === 0) {
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
   * Takes the prepared saves, runs the before-flush hook, then writes them after the previous
   * flush finished (flushes of a batch apply in order).
   */
  private async startFlush(): Promise<FlushResult> {
    const prepared = this.pending;
    this.pending = new PreparedFlush();
    prepared.markDuplicates();
    const previous = this.inflight;
    const context = { mode: this.mode, pendingSaves: prepared.saves };
    let release!: () => void;
    this.writing = new Promise<void>((resolve) => (release = resolve));
    try {
      await previous;
      release();
      await this.options.hooks?.beforeFlush?.(context);
      this.options.signal?.throwIfAborted();
      const progress = [...this.progress];
      this.progress.clear();
      const custom = this.customCheckpoints;
      this.customCheckpoints = [];
      const result = await this.writeLocked(prepared, progress, custom, this.mode);
      const full: FlushResult = { ...result, rowsSkipped: result.rowsSkipped + prepared.skipped };
      await this.options.hooks?.afterFlush?.({ ...context, result: full });
      return full;
    } finally {
      release();
    }
  }

  private rowError(error: ServiceError, table: StoredTable, key: string): void {
    if (this.options.onRowError) this.options.onRowError(error, { table, key });
    // An error, not a warning: clients miss this row (or keep none of it) until it changes.
    else this.storage.ctx.logger.error('row skipped', { error, table: `${table.schema}.${table.name}`, key });
  }

  /** One flush transaction; the batch adopts the key sets it extended only once it committed. */
  private async writeLocked(
    prepared: PreparedFlush,
    progress: [number, TableSnapshotProgress][],
    custom: { userId: string; checkpoint: bigint }[],
    mode: WriteBatchMode,
  ): Promise<FlushResult> {
    const adopt: (() => void)[] = [];
    const result = await this.storage.withConfigLock(async (client, config) => {
      const written = await this.write(client, config, prepared, progress, custom, mode);
      adopt.push(written.adopt);
      return written.result;
    });
    for (const f of adopt) f();
    return result;
  }

  /**
   * Which tables of the flush this batch may trust its key set for, under the config lock:
   * the stored version must be the one it last wrote, or the table must hold no row at all.
   */
  private async trustedTables(client: pg.PoolClient, tableIds: readonly number[]): Promise<Map<number, TrackedKeys>> {
    const trusted = new Map<number, TrackedKeys>();
    if (tableIds.length === 0) return trusted;
    const s = this.storage.ctx.schema;
    const { rows } = await client.query<{ id: number; version: string; has_rows: boolean }>(
      `SELECT st.id, st.rows_version::text AS version,
              EXISTS (SELECT 1 FROM ${s}.current_data cd WHERE cd.config_id = $1 AND cd.table_id = st.id) AS has_rows
         FROM ${s}.source_tables st WHERE st.id = ANY($2::int4[])`,
      [this.storage.configId, tableIds],
    );
    for (const row of rows) {
      const known = this.tracked.get(row.id);
      if (known && known.version === row.version) {
        trusted.set(row.id, known);
      } else if (!row.has_rows) {
        const fresh: TrackedKeys = { version: row.version, hashes: new HashSet32() };
        this.tracked.set(row.id, fresh);
        trusted.set(row.id, fresh);
      } else {
        // Another writer changed the table since (or the batch never knew it): look keys up.
        this.tracked.delete(row.id);
      }
    }
    return trusted;
  }

  /** The transaction body of a flush. */
  private async write(
    client: pg.PoolClient,
    config: ConfigRow,
    prep: PreparedFlush,
    progress: [number, TableSnapshotProgress][],
    custom: { userId: string; checkpoint: bigint }[],
    mode: WriteBatchMode,
  ): Promise<{ result: FlushResult; adopt: () => void }> {
    const s = this.storage.ctx.schema;
    const configId = this.storage.configId;
    const n = prep.count;
    const tableIds = [...new Set(prep.tables.map((t) => t.id))];
    const trusted = await this.trustedTables(client, tableIds);

    // Changes that need storage's record: possible duplicates in the flush, untracked tables,
    // keys the batch may have written before (or 32-bit hash collisions with them).
    let lookedUp: Uint8Array | undefined;
    for (let i = 0; i < n; i++) {
      const known = trusted.get(prep.tables[i]!.id);
      if (prep.isDuplicate(i) || !known || known.hashes.has(prep.hashes[i]!)) {
        lookedUp ??= new Uint8Array(n);
        lookedUp[i] = 1;
      }
    }
    const states = lookedUp ? await this.loadStates(client, prep, lookedUp) : new Map<string, RowState>();

    const opIds = new OpIds(config.lastOpId);
    // While every change so far is a new row's put, the prepared bytes are sent as they are (op
    // ids filled in place); from the first other change on, lines are copied into new buffers.
    let ops = prep.ops;
    let records = prep.records;
    let copied = false;
    const copyPrefix = (change: number) => {
      if (copied) return;
      copied = true;
      ops = new CopyBuffer(prep.ops.length + 1024);
      ops.copyFrom(prep.ops, 0, prep.opLineStart(prep.opStart(change)));
      records = new CopyBuffer(prep.records.length + 1024);
      records.copyFrom(prep.records, 0, prep.recordStart(change));
    };
    const sums = new BucketSums();
    const writePuts = (i: number) => {
      for (let j = prep.opStart(i), end = prep.opEnd[i]!; j < end; j++) {
        sums.add(prep.opBucket[j]!, prep.opChecksum[j]!);
        const start = prep.opLineStart(j);
        if (!copied) {
          opIds.fillNext(prep.ops, start);
        } else {
          const at = ops.length;
          ops.copyFrom(prep.ops, start, prep.opLineEnd[j]!);
          opIds.fillNext(ops, at);
        }
      }
    };
    let params: CopyBuffer | undefined;
    const writeParams = (
      tableId: number,
      key: string,
      entries: readonly { lookup: string; outputs: readonly unknown[] }[],
    ) => {
      for (const entry of entries) {
        params ??= new CopyBuffer();
        params.int(configId).tab().text(entry.lookup).tab().int(tableId).tab().text(key).tab();
        opIds.writeNext(params);
        params
          .tab()
          .text(encodeRows(entry.outputs as never))
          .newline();
      }
    };
    let applied = 0;
    let skipped = 0;
    let tombstones = false;

    for (let i = 0; i < n; i++) {
      const table = prep.tables[i]!;
      const isDelete = prep.isDelete(i);
      const position = prep.positions[i];
      if (lookedUp?.[i] !== 1) {
        // Storage provably holds no record of this row: no replay, no insert-if-absent hit, nothing to remove.
        applied++;
        if (isDelete) {
          copyPrefix(i);
          // A delete leaves a tombstone with the op id that deleted it (invariant 5); purged at a later checkpoint.
          records.int(configId).tab().int(table.id).tab().text(prep.key(i)).raw('\t[]\t[]\t');
          if (position === undefined) records.raw('\\N');
          else records.text(position);
          records.tab().raw(opIds.current.toString()).newline();
          tombstones = true;
        } else {
          writePuts(i);
          const p = prep.params.get(i);
          if (p) writeParams(table.id, prep.key(i), p.fresh);
          if (copied) records.copyFrom(prep.records, prep.recordStart(i), prep.recordEnd[i]!);
        }
        continue;
      }
      copyPrefix(i);
      const key = prep.key(i);
      const stateKey = `${table.id}\u0000${key}`;
      let state = states.get(stateKey);
      if (
        state &&
        position !== undefined &&
        state.position !== null &&
        comparePositions(position, state.position) <= 0
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
      const next = prep.refs(i);
      if (state.buckets.length > 0) {
        const now = new Set(next.map((r) => `${r.bucket}\u0000${r.table}\u0000${r.id}`));
        const subkey = opSubkey({ schema: table.schema, name: table.name }, key);
        for (const ref of state.buckets) {
          if (now.has(`${ref.bucket}\u0000${ref.table}\u0000${ref.id}`)) continue;
          const checksum = removeChecksum({ table: ref.table, id: ref.id, subkey });
          sums.add(ref.bucket, checksum);
          opIds.writeNext(ops);
          ops.tab().int(configId).tab().text(ref.bucket).tab().int(REMOVE).tab().text(ref.table).tab().text(ref.id);
          ops.tab().text(subkey).raw('\t\\N\t').int(checksum).newline();
        }
      }
      writePuts(i);
      const paramDiff = diffParameterLookups(state.lookups, prep.params.get(i)?.lookups ?? []);
      writeParams(table.id, key, paramDiff.changes);
      state.changed = true;
      state.exists = true;
      state.position = position ?? state.position;
      if (isDelete) {
        state.buckets = [];
        state.lookups = [];
        state.deletedOp = opIds.current;
        tombstones = true;
      } else {
        state.buckets = next;
        state.lookups = paramDiff.current;
        state.deletedOp = null;
      }
    }
    const opsWritten = opIds.allocated;

    const upserts = this.stateRecords(states, records);
    for (const entry of custom) {
      const opId = opIds.allocate();
      await client.query(
        `INSERT INTO ${s}.custom_write_checkpoints (config_id, user_id, op_id, checkpoint) VALUES ($1, $2, $3, $4)`,
        [configId, entry.userId, opId.toString(), entry.checkpoint.toString()],
      );
    }
    const lastOpId = opIds.current;
    if (lastOpId !== config.lastOpId) {
      await client.query(`UPDATE ${s}.sync_configs SET last_op_id = $2 WHERE id = $1`, [configId, lastOpId.toString()]);
    }
    // Puts of rows skipped above were never filled in: `ops` holds exactly the applied ops.
    await copyBuffers(client, `${s}.ops ${OP_COLUMNS}`, [ops]);
    await copyBuffers(client, `${s}.parameter_index (config_id, lookup, table_id, row_key, op_id, outputs)`, [params]);
    await copyBuffers(client, `${s}.current_data ${RECORD_COLUMNS}`, [records]);
    await upserts(client);
    if (sums.size > 0) {
      // The running checksum of every bucket the flush wrote, as of its last op id (read side:
      // getChecksums). Unsigned 32-bit sums, added modulo 2^32.
      const { buckets, checksums, counts } = sums.columns();
      await client.query(
        `INSERT INTO ${s}.bucket_checksums (config_id, bucket, op_id, checksum, count)
         SELECT $1, b, $2, c, n FROM unnest($3::text[], $4::int8[], $5::int8[]) AS u(b, c, n)
         ON CONFLICT (config_id, bucket) DO UPDATE SET op_id = excluded.op_id,
           checksum = (bucket_checksums.checksum + excluded.checksum) % 4294967296,
           count = bucket_checksums.count + excluded.count`,
        [configId, lastOpId.toString(), buckets, checksums, counts],
      );
    }
    for (const [tableId, p] of progress) {
      await client.query(`UPDATE ${s}.source_tables SET snapshot_progress = $2 WHERE id = $1`, [
        tableId,
        JSON.stringify(p),
      ]);
    }
    // Every write of current rows bumps the table's rows_version (the key tracker's proof).
    let versions: { id: number; version: string }[] = [];
    if (tableIds.length > 0) {
      versions = (
        await client.query<{ id: number; version: string }>(
          `UPDATE ${s}.source_tables SET rows_version = rows_version + 1 WHERE id = ANY($1::int4[])
           RETURNING id, rows_version::text AS version`,
          [tableIds],
        )
      ).rows;
    }
    if (tombstones) this.storage.tombstonesWritten = true;
    const adopt = () => {
      for (const { id, version } of versions) {
        const known = trusted.get(id);
        if (!known || this.tracked.get(id) !== known) continue;
        for (let i = 0; i < n; i++) if (prep.tables[i]!.id === id) known.hashes.add(prep.hashes[i]!);
        if (known.hashes.size > MAX_TRACKED_KEYS) this.tracked.delete(id);
        else known.version = version;
      }
    };
    return { result: { rowsApplied: applied, rowsSkipped: skipped, opsWritten, lastOpId }, adopt };
  }

  /** Loads the stored records of the rows in `which`, one query per table. */
  private async loadStates(
    client: pg.PoolClient,
    prep: PreparedFlush,
    which: Uint8Array,
  ): Promise<Map<string, RowState>> {
    const byTable = new Map<number, Set<string>>();
    for (let i = 0; i < prep.count; i++) {
      if (which[i] !== 1) continue;
      const id = prep.tables[i]!.id;
      let keys = byTable.get(id);
      if (!keys) byTable.set(id, (keys = new Set()));
      keys.add(prep.key(i));
    }
    const states = new Map<string, RowState>();
    for (const [tableId, keys] of byTable) {
      // Replica keys never contain a raw newline (strings are JSON-escaped), so one joined text
      // parameter carries them without array quoting.
      const { rows } = await client.query<{
        row_key: string;
        buckets: string;
        lookups: string;
        position: string | null;
        deleted_op: string | null;
      }>(
        `SELECT row_key, buckets, lookups, position, deleted_op FROM ${this.storage.ctx.schema}.current_data
          WHERE config_id = $1 AND table_id = $2 AND row_key = ANY(string_to_array($3, E'\n') COLLATE "C")`,
        [this.storage.configId, tableId, [...keys].join('\n')],
      );
      for (const row of rows) {
        states.set(`${tableId}\u0000${row.row_key}`, {
          buckets: decodeBucketRefs(row.buckets),
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
   * Encodes the changed records of looked-up rows: rows storage did not hold go to `fresh`
   * (COPY; no conflict is possible under the config lock), rows it held into a returned
   * upsert, one array-bound statement per 10,000.
   */
  private stateRecords(states: Map<string, RowState>, fresh: CopyBuffer): (client: pg.PoolClient) => Promise<void> {
    const configId = this.storage.configId;
    const batches: {
      tableIds: number[];
      keys: string[];
      buckets: string[];
      lookups: string[];
      positions: (string | null)[];
      deleted: (string | null)[];
    }[] = [];
    let current: (typeof batches)[number] | undefined;
    for (const [stateKey, state] of states) {
      if (!state.changed) continue;
      const sep = stateKey.indexOf('\u0000');
      const tableId = Number(stateKey.slice(0, sep));
      const key = stateKey.slice(sep + 1);
      const bucketsJson = encodeBucketRefs(state.buckets);
      const lookupsJson = state.lookups.length === 0 ? '[]' : JSON.stringify(state.lookups);
      const deletedOp = state.deletedOp === null ? null : state.deletedOp.toString();
      if (!state.existed) {
        fresh.int(configId).tab().int(tableId).tab().text(key).tab().text(bucketsJson).tab().text(lookupsJson).tab();
        if (state.position === null) fresh.raw('\\N');
        else fresh.text(state.position);
        fresh
          .tab()
          .raw(deletedOp ?? '\\N')
          .newline();
        continue;
      }
      if (!current || current.keys.length >= 10_000) {
        current = { tableIds: [], keys: [], buckets: [], lookups: [], positions: [], deleted: [] };
        batches.push(current);
      }
      current.tableIds.push(tableId);
      current.keys.push(key);
      current.buckets.push(bucketsJson);
      current.lookups.push(lookupsJson);
      current.positions.push(state.position);
      current.deleted.push(deletedOp);
    }
    return async (client) => {
      for (const b of batches) {
        await client.query(
          `INSERT INTO ${this.storage.ctx.schema}.current_data (config_id, table_id, row_key, buckets, lookups, position, deleted_op)
           SELECT $1, * FROM unnest($2::int4[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[])
           ON CONFLICT (config_id, table_id, row_key) DO UPDATE SET buckets = excluded.buckets, lookups = excluded.lookups,
             position = excluded.position, deleted_op = excluded.deleted_op`,
          [configId, b.tableIds, b.keys, b.buckets, b.lookups, b.positions, b.deleted],
        );
      }
    };
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
    const adopt: (() => void)[] = [];
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
          const changes = new PreparedFlush();
          for (const r of rows) changes.addDelete(table, r.row_key, undefined);
          const written = await this.write(client, config, changes, [], [], 'streaming');
          adopt.push(written.adopt);
          return rows.length === 5000;
        });
        for (const f of adopt.splice(0)) f();
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
    if (this.dirtySinceCommit || this.pending.saves > 0) {
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
    this.pending = new PreparedFlush();
    this.progress.clear();
    this.customCheckpoints = [];
  }
}

/** Per-bucket unsigned 32-bit checksum sums and op counts of one flush's ops. */
class BucketSums {
  private readonly sums = new Map<string, { checksum: number; count: number }>();
  private lastBucket: string | undefined;
  private last: { checksum: number; count: number } | undefined;

  get size(): number {
    return this.sums.size;
  }

  add(bucket: string, checksum: number): void {
    let entry = this.last;
    if (bucket !== this.lastBucket || !entry) {
      entry = this.sums.get(bucket);
      if (!entry) this.sums.set(bucket, (entry = { checksum: 0, count: 0 }));
      this.lastBucket = bucket;
      this.last = entry;
    }
    entry.checksum = (entry.checksum + checksum) >>> 0;
    entry.count++;
  }

  columns(): { buckets: string[]; checksums: string[]; counts: string[] } {
    const buckets: string[] = [];
    const checksums: string[] = [];
    const counts: string[] = [];
    for (const [bucket, { checksum, count }] of this.sums) {
      buckets.push(bucket);
      checksums.push(String(checksum));
      counts.push(String(count));
    }
    return { buckets, checksums, counts };
  }
}
