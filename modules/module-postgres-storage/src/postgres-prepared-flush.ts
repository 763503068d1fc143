/**
 * The storage-independent half of a flush: each save is evaluated once against the sync
 * config, when it is saved, and encoded straight into COPY bytes. Nothing per row stays on
 * the JS heap but a few numbers in flat arrays (and the key of a delete), so the caller's row
 * objects die young and a flush's rows cost almost no garbage collection; the evaluation of
 * the next flush overlaps the previous flush's COPY.
 *
 * `ops` holds one line per PUT: `<op id>\t<config>\t<bucket>\t1\t<table>\t<id>\t<subkey>\t<data>\t<checksum>\n`,
 * the op id a fixed-width zero-padded placeholder that the flush fills in place under the
 * config lock (Postgres reads leading zeros in int8 input). `records` holds the current-row
 * record line each put writes when storage does not hold the row yet:
 * `<config>\t<table id>\t<key>\t<buckets>\t<lookups>\t<position>\t\N\n`. The rare changes
 * that need storage's record decode their key and bucket references back from those bytes.
 */
import {
  diffParameterLookups,
  diffRowBuckets,
  opSubkey,
  putChecksum,
  replicaKey,
  type BucketRowRef,
  type EvaluatedRow,
  type ParameterEntryChange,
  type SaveOperation,
  type SqliteRow,
  type StorageSyncConfig,
  type StorageSyncConfigEngine,
  type StoredTable,
} from '@bucketsync/service-core';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { CopyBuffer, copyField, unescapeCopyText } from './postgres-copy-writer.js';
import { HashSet32, keyHash } from './postgres-key-tracker.js';

export const PUT = 1;
export const REMOVE = 2;
/** Width of the op id placeholder: every int8 fits in 19 digits. */
export const OP_ID_WIDTH = 19;
const OP_ID_ZEROS = '0'.repeat(OP_ID_WIDTH);
/** COPY column list matching the op lines. */
export const OP_COLUMNS = '(op_id, config_id, bucket, op, row_table, row_id, subkey, data, checksum)';
/** COPY column list matching the record lines. */
export const RECORD_COLUMNS = '(config_id, table_id, row_key, buckets, lookups, position, deleted_op)';

/** Parameter lookups a saved row produced. */
export type RowLookups = { lookup: string; outputs: readonly SqliteRow[] }[];

/** What evaluation needs from the storage. */
export interface PrepareContext {
  readonly configId: number;
  readonly syncConfig: StorageSyncConfig;
  readonly engine: StorageSyncConfigEngine;
  readonly maxRowBytes: number;
  readonly onRowError: (error: ServiceError, table: StoredTable, key: string) => void;
}

/** Compact JSON of a row's bucket references: `[["bucket","table","id"],...]`. */
export function encodeBucketRefs(refs: readonly BucketRowRef[]): string {
  if (refs.length === 0) return '[]';
  let out = '[';
  for (let i = 0; i < refs.length; i++) {
    const r = refs[i]!;
    out += `${i > 0 ? ',' : ''}[${JSON.stringify(r.bucket)},${JSON.stringify(r.table)},${JSON.stringify(r.id)}]`;
  }
  return out + ']';
}

/** Decodes `encodeBucketRefs`. */
export function decodeBucketRefs(json: string): BucketRowRef[] {
  return (JSON.parse(json) as [string, string, string][]).map(([bucket, table, id]) => ({ bucket, table, id }));
}

const DELETE = 1;
const DUPLICATE = 2;

/** JSON text of strings that repeat across rows (bucket and output table names). */
class JsonCache {
  private lastKey = '';
  private lastValue = '""';
  get(value: string): string {
    if (value !== this.lastKey) {
      this.lastKey = value;
      this.lastValue = JSON.stringify(value);
    }
    return this.lastValue;
  }
}

/** The evaluated, encoded changes of one flush. Change `i` owns ops `[opStart(i), opEnd[i])`. */
export class PreparedFlush {
  /** Saves taken (for the flush hooks). */
  saves = 0;
  /** Changes (an update that changes the key counts twice: delete of the old key, then put). */
  count = 0;
  readonly tables: StoredTable[] = [];
  readonly positions: (string | undefined)[] = [];
  /** DELETE | DUPLICATE bits. */
  readonly flags: number[] = [];
  /** Per change: `keyHash(key)`. */
  readonly hashes: number[] = [];
  /** Per change: end of its ops (op index). */
  readonly opEnd: number[] = [];
  /** Per change: start of its key in `records` (puts), or -1 (deletes: see `deleteKeys`). */
  readonly keyStart: number[] = [];
  /** Per change: end of its record line in `records` (deletes have none). */
  readonly recordEnd: number[] = [];
  /** Keys of deletes, by change. */
  readonly deleteKeys = new Map<number, string>();
  /** Lookups of changes of parameter tables, and the entries such a row writes when it is new. */
  readonly params = new Map<number, { lookups: RowLookups; fresh: ParameterEntryChange[] }>();

  /** PUT ops. */
  opCount = 0;
  /** Per op: end of its line in `ops`. */
  readonly opLineEnd: number[] = [];
  /** Per op: its bucket and checksum (for the per-bucket running checksums). */
  readonly opBucket: string[] = [];
  readonly opChecksum: number[] = [];
  readonly ops = new CopyBuffer(16 * 1024);
  readonly records = new CopyBuffer(8 * 1024);
  /** Saves skipped during evaluation (bad rows). */
  skipped = 0;

  private readonly bucketJson = new JsonCache();
  private readonly tableJson = new JsonCache();

  /** Approximate bytes buffered. */
  get bytes(): number {
    return this.ops.length + this.records.length;
  }

  opStart(change: number): number {
    return change === 0 ? 0 : this.opEnd[change - 1]!;
  }

  opLineStart(op: number): number {
    return op === 0 ? 0 : this.opLineEnd[op - 1]!;
  }

  recordStart(change: number): number {
    return change === 0 ? 0 : this.recordEnd[change - 1]!;
  }

  isDelete(change: number): boolean {
    return (this.flags[change]! & DELETE) !== 0;
  }

  isDuplicate(change: number): boolean {
    return (this.flags[change]! & DUPLICATE) !== 0;
  }

  /** The replica key of a change. */
  key(change: number): string {
    const start = this.keyStart[change]!;
    if (start < 0) return this.deleteKeys.get(change)!;
    return unescapeCopyText(this.records.field(start));
  }

  /** The bucket references a put now produces (decoded from its record line). */
  refs(change: number): BucketRowRef[] {
    const start = this.keyStart[change]!;
    if (start < 0) return [];
    const keyEnd = this.records.indexOfTab(start);
    return decodeBucketRefs(unescapeCopyText(this.records.field(keyEnd + 1)));
  }

  /** Adds a delete of `key` (also used by truncate / drop for rows storage holds). */
  addDelete(table: StoredTable, key: string, position: string | undefined): void {
    this.deleteKeys.set(this.count, key);
    this.pushChange(table, key, position, DELETE, -1);
  }

  private pushChange(
    table: StoredTable,
    key: string,
    position: string | undefined,
    flags: number,
    keyStart: number,
  ): void {
    this.tables.push(table);
    this.positions.push(position);
    this.flags.push(flags);
    this.hashes.push(keyHash(key));
    this.opEnd.push(this.opCount);
    this.keyStart.push(keyStart);
    this.recordEnd.push(this.records.length);
    this.count++;
  }

  /**
   * Marks changes whose (table, key hash) occurs more than once in this flush: they are applied
   * through the looked-up path, which keeps the state of earlier changes of the same row.
   */
  markDuplicates(): void {
    if (this.count < 2) return;
    const seen = new HashSet32(this.count);
    const twice = new HashSet32(16);
    const combined = (i: number) => (this.hashes[i]! ^ Math.imul(this.tables[i]!.id, 0x9e3779b1)) >>> 0 || 1;
    for (let i = 0; i < this.count; i++) {
      const h = combined(i);
      if (seen.has(h)) twice.add(h);
      else seen.add(h);
    }
    if (twice.size === 0) return;
    for (let i = 0; i < this.count; i++) if (twice.has(combined(i))) this.flags[i]! |= DUPLICATE;
  }

  /** Evaluates one save into changes (an update that changes the key is a delete plus an insert). */
  prepare(save: SaveOperation, ctx: PrepareContext): void {
    this.saves++;
    const { table } = save;
    const changesBefore = this.count;
    let key: string;
    try {
      key = replicaKey(save.tag === 'delete' ? save.before : save.after, table.replicaIdColumns);
    } catch (e) {
      this.skipped++;
      ctx.onRowError(e as ServiceError, table, '?');
      return;
    }
    if (save.tag === 'update' && save.before) {
      const oldKey = replicaKey(save.before, table.replicaIdColumns);
      if (oldKey !== key) this.addDelete(table, oldKey, save.position);
    }
    if (save.tag === 'delete') {
      this.addDelete(table, key, save.position);
      return;
    }
    const ref = { schema: table.schema, name: table.name };
    let outputs: readonly EvaluatedRow[] = [];
    if (table.syncData) {
      const results = ctx.syncConfig.evaluateRow(ref, save.after);
      for (const result of results) {
        if ('error' in result) return this.rowError(ctx, table, key, result.error, changesBefore);
      }
      outputs = results as EvaluatedRow[];
      // When a row yields the same (bucket, table, id) twice, the last output wins.
      if (outputs.length > 1) outputs = diffRowBuckets([], outputs).puts;
    }
    let lookups: RowLookups | undefined;
    if (table.syncParameters) {
      lookups = [];
      for (const result of ctx.syncConfig.evaluateParameterRow(ref, save.after)) {
        if ('error' in result) return this.rowError(ctx, table, key, result.error, changesBefore);
        lookups.push({ lookup: ctx.engine.serializeParameterLookup(result.lookup), outputs: result.outputs });
      }
    }
    const ops = this.ops;
    const opsMark = ops.length;
    const subkey = outputs.length > 0 ? opSubkey(ref, key) : '';
    const subkeyText = copyField(subkey);
    for (let o = 0; o < outputs.length; o++) {
      const out = outputs[o]!;
      const json = ctx.engine.rowToJson(out.data);
      if (json.length > ctx.maxRowBytes / 4 && Buffer.byteLength(json) > ctx.maxRowBytes) {
        // Undo the outputs of this row already encoded.
        ops.truncate(opsMark);
        this.opCount -= o;
        this.opLineEnd.length = this.opCount;
        this.opBucket.length = this.opCount;
        this.opChecksum.length = this.opCount;
        if (this.count === changesBefore) this.skipped++;
        ctx.onRowError(
          new ServiceError(
            ErrorCode.ROW_TOO_LARGE,
            `row ${key} of ${table.schema}.${table.name} is ${Buffer.byteLength(json)} bytes as ${out.table} in ${out.bucket} (limit ${ctx.maxRowBytes})`,
          ),
          table,
          key,
        );
        // The row's data is skipped, but it is saved as in no bucket: a version that was small
        // enough before leaves its buckets (REMOVE) instead of staying on clients, stale.
        outputs = [];
        break;
      }
      const checksum = putChecksum({ table: out.table, id: out.id, subkey }, json);
      // One string per line: a native buffer write per field would cost more than the bytes.
      ops.raw(
        `${OP_ID_ZEROS}\t${ctx.configId}\t${copyField(out.bucket)}\t1\t${copyField(out.table)}\t${copyField(out.id)}\t${subkeyText}\t${copyField(json)}\t${checksum}\n`,
      );
      this.opLineEnd.push(ops.length);
      this.opBucket.push(out.bucket);
      this.opChecksum.push(checksum);
      this.opCount++;
    }
    let lookupsJson = '[]';
    let fresh: ParameterEntryChange[] | undefined;
    if (lookups) {
      const diff = diffParameterLookups([], lookups);
      fresh = diff.changes;
      if (diff.current.length > 0) lookupsJson = JSON.stringify(diff.current);
    }
    let buckets: string;
    if (outputs.length === 1) {
      const o = outputs[0]!;
      buckets = `[[${this.bucketJson.get(o.bucket)},${this.tableJson.get(o.table)},${JSON.stringify(o.id)}]]`;
    } else {
      buckets = encodeBucketRefs(outputs);
    }
    const r = this.records;
    const prefix = `${ctx.configId}\t${table.id}\t`;
    const keyStart = r.length + prefix.length; // the prefix is ASCII
    r.raw(
      `${prefix}${copyField(key)}\t${copyField(buckets)}\t${copyField(lookupsJson)}\t${save.position === undefined ? '\\N' : copyField(save.position)}\t\\N\n`,
    );
    this.pushChange(table, key, save.position, 0, keyStart);
    if (lookups) this.params.set(this.count - 1, { lookups, fresh: fresh! });
  }

  /** Reports a row that cannot be evaluated; it counts as skipped unless it already produced a change. */
  private rowError(ctx: PrepareContext, table: StoredTable, key: string, message: string, changesBefore: number): void {
    if (this.count === changesBefore) this.skipped++;
    ctx.onRowError(
      new ServiceError(ErrorCode.SYNC_CONFIG_INVALID, `row ${key} of ${table.schema}.${table.name}: ${message}`),
      table,
      key,
    );
  }
}
