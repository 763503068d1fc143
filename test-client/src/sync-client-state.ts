/**
 * Client-side state of one sync stream, fed the parsed line objects of the wire protocol
 * (shared/design/sync-protocol.md): it tracks the target checkpoint, each bucket's ops and
 * running checksum, the rows they materialise, and verifies checksums at (partial) completion.
 * Pure: no I/O, no clock. Op ids are unsigned 64-bit, so they are compared as bigint.
 */

/** One bucket as a `checkpoint` / `checkpoint_diff` line describes it. */
export interface BucketChecksum {
  bucket: string;
  /** Signed 32-bit: the wrapping sum of the bucket's op checksums. */
  checksum: number;
  /** Informational op count; the progress total. */
  count: number;
  /** 0 is the highest; 3 when the line leaves it out. */
  priority: number;
}

/** A sync stream as the checkpoint's `streams` list describes it. */
export interface StreamDescription {
  name: string;
  isDefault: boolean;
  errors: { subscription: string | number; message: string }[];
}

/** One stream error, flattened for reporting. */
export interface StreamError {
  stream: string;
  subscription: string | number;
  message: string;
}

/** A bucket whose received ops do not sum to the checksum the checkpoint announced. */
export interface ChecksumMismatch {
  bucket: string;
  /** From the checkpoint, signed 32-bit. */
  expected: number;
  /** Wrapping sum of the ops received, signed 32-bit. */
  actual: number;
  opsReceived: number;
}

/** What applying one line did; the caller decides what to print and when to stop. */
export type SyncLineEvent =
  | { kind: 'checkpoint'; lastOpId: string; abandoned: boolean }
  | { kind: 'checkpoint_diff'; lastOpId: string; removedBuckets: string[] }
  | { kind: 'data'; bucket: string; ops: number; ignored: boolean }
  | { kind: 'partial_checkpoint_complete'; priority: number; mismatches: ChecksumMismatch[] }
  | { kind: 'checkpoint_complete'; lastOpId: string; mismatches: ChecksumMismatch[] }
  | { kind: 'token_expires_in'; seconds: number }
  | { kind: 'unknown'; keys: string[] };

/** Per-bucket view in a snapshot. */
export interface BucketSnapshot extends BucketChecksum {
  /** Wrapping sum of the ops received, signed 32-bit. */
  computedChecksum: number;
  opsReceived: number;
  /** Highest op id received for the bucket, or null before any data. */
  lastOpId: string | null;
  verified: boolean;
}

/** Everything the client holds, for `--json`. */
export interface SyncStateSnapshot {
  lastOpId: string | null;
  writeCheckpoint: string | null;
  complete: boolean;
  buckets: BucketSnapshot[];
  /** table -> row id -> row (the op with the highest op id across buckets wins). */
  tables: Record<string, Record<string, unknown>>;
  rowCounts: Record<string, number>;
  streams: StreamDescription[];
  streamErrors: StreamError[];
  partialCompletions: number[];
  tokenExpiresIn: number | null;
  checkpointsReceived: number;
  abandonedCheckpoints: number;
  warnings: string[];
}

/** The server sent something the protocol does not allow; the message names the line and field. */
export class SyncProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SyncProtocolError';
  }
}

interface RowOp {
  objectType: string;
  objectId: string;
  opId: bigint;
  data: unknown;
}

interface BucketState extends BucketChecksum {
  computedChecksum: number;
  opsReceived: number;
  lastOpId: bigint | null;
  /** key: object_type, object_id, subkey joined by NUL. */
  rows: Map<string, RowOp>;
}

interface TargetCheckpoint {
  lastOpId: string;
  writeCheckpoint: string | null;
  streams: StreamDescription[];
}

const DEFAULT_PRIORITY = 3;

/** Adds op checksums the way the server does: modulo 2^32, kept as a signed 32-bit integer. */
export function addChecksum(sum: number, checksum: number): number {
  return (sum + checksum) | 0;
}

/** Tracks one connection's sync state; call `apply` with each parsed line, in order. */
export class SyncClientState {
  private target: TargetCheckpoint | null = null;
  private readonly buckets = new Map<string, BucketState>();
  private complete = false;
  private readonly partialCompletions: number[] = [];
  private tokenExpiresIn: number | null = null;
  private checkpointsReceived = 0;
  private abandonedCheckpoints = 0;
  private readonly warnings: string[] = [];

  /** Applies one line object; throws SyncProtocolError when it breaks the protocol. */
  apply(line: unknown): SyncLineEvent {
    if (!isRecord(line)) throw new SyncProtocolError(`a line is not an object: ${preview(line)}`);
    if ('checkpoint' in line) return this.applyCheckpoint(line.checkpoint);
    if ('checkpoint_diff' in line) return this.applyCheckpointDiff(line.checkpoint_diff);
    if ('data' in line) return this.applyData(line.data);
    if ('partial_checkpoint_complete' in line) return this.applyPartialComplete(line.partial_checkpoint_complete);
    if ('checkpoint_complete' in line) return this.applyComplete(line.checkpoint_complete);
    if ('token_expires_in' in line) {
      const seconds = line.token_expires_in;
      if (typeof seconds !== 'number' && typeof seconds !== 'bigint') {
        throw new SyncProtocolError(`token_expires_in must be a number, got ${preview(seconds)}`);
      }
      this.tokenExpiresIn = Number(seconds);
      return { kind: 'token_expires_in', seconds: this.tokenExpiresIn };
    }
    const keys = Object.keys(line);
    this.warnings.push(`ignored a line with unknown keys: ${keys.join(', ')}`);
    return { kind: 'unknown', keys };
  }

  /** Ops received and the total announced by the current checkpoint's counts, for progress. */
  progress(): { received: number; total: number } {
    let received = 0;
    let total = 0;
    for (const b of this.buckets.values()) {
      total += b.count;
      received += Math.min(b.opsReceived, b.count);
    }
    return { received, total };
  }

  /** Buckets (of priority <= maxPriority, or all) whose received ops do not match the checkpoint. */
  verify(maxPriority = Number.POSITIVE_INFINITY): ChecksumMismatch[] {
    const mismatches: ChecksumMismatch[] = [];
    for (const b of this.buckets.values()) {
      if (b.priority > maxPriority) continue;
      if (b.computedChecksum !== b.checksum) {
        mismatches.push({
          bucket: b.bucket,
          expected: b.checksum,
          actual: b.computedChecksum,
          opsReceived: b.opsReceived,
        });
      }
    }
    return mismatches;
  }

  /** A copy of the whole state, rows materialised per table. */
  snapshot(): SyncStateSnapshot {
    const latest = new Map<string, RowOp>();
    for (const b of this.buckets.values()) {
      for (const row of b.rows.values()) {
        const key = `${row.objectType}\u0000${row.objectId}`;
        const seen = latest.get(key);
        if (!seen || row.opId > seen.opId) latest.set(key, row);
      }
    }
    const tables: Record<string, Record<string, unknown>> = {};
    const rowCounts: Record<string, number> = {};
    const sorted = [...latest.values()].sort(
      (a, b) => compareText(a.objectType, b.objectType) || compareText(a.objectId, b.objectId),
    );
    for (const row of sorted) {
      (tables[row.objectType] ??= {})[row.objectId] = row.data;
      rowCounts[row.objectType] = (rowCounts[row.objectType] ?? 0) + 1;
    }
    const streams = this.target?.streams ?? [];
    return {
      lastOpId: this.target?.lastOpId ?? null,
      writeCheckpoint: this.target?.writeCheckpoint ?? null,
      complete: this.complete,
      buckets: [...this.buckets.values()]
        .sort((a, b) => a.priority - b.priority || compareText(a.bucket, b.bucket))
        .map((b) => ({
          bucket: b.bucket,
          checksum: b.checksum,
          count: b.count,
          priority: b.priority,
          computedChecksum: b.computedChecksum,
          opsReceived: b.opsReceived,
          lastOpId: b.lastOpId === null ? null : b.lastOpId.toString(),
          verified: b.computedChecksum === b.checksum,
        })),
      tables,
      rowCounts,
      streams: streams.map((s) => ({ ...s, errors: [...s.errors] })),
      streamErrors: streams.flatMap((s) => s.errors.map((e) => ({ stream: s.name, ...e }))),
      partialCompletions: [...this.partialCompletions],
      tokenExpiresIn: this.tokenExpiresIn,
      checkpointsReceived: this.checkpointsReceived,
      abandonedCheckpoints: this.abandonedCheckpoints,
      warnings: [...this.warnings],
    };
  }

  private applyCheckpoint(raw: unknown): SyncLineEvent {
    const line = record(raw, 'checkpoint');
    const lastOpId = opId(line.last_op_id, 'checkpoint.last_op_id').toString();
    const announced = list(line.buckets, 'checkpoint.buckets').map((b, i) =>
      bucketChecksum(b, `checkpoint.buckets[${i}]`),
    );
    // A new full checkpoint before the previous one completed abandons it (the server found
    // newer data). Data already received for buckets still listed stays: the server continues
    // them from where it left off. Buckets no longer listed are dropped.
    const abandoned = this.target !== null && !this.complete;
    if (abandoned) this.abandonedCheckpoints++;
    const keep = new Set(announced.map((b) => b.bucket));
    for (const name of [...this.buckets.keys()]) if (!keep.has(name)) this.buckets.delete(name);
    for (const b of announced) this.upsertBucket(b);
    this.target = {
      lastOpId,
      writeCheckpoint: optionalOpId(line.write_checkpoint, 'checkpoint.write_checkpoint'),
      streams: line.streams === undefined ? [] : list(line.streams, 'checkpoint.streams').map(streamDescription),
    };
    this.complete = false;
    this.partialCompletions.length = 0;
    this.checkpointsReceived++;
    return { kind: 'checkpoint', lastOpId, abandoned };
  }

  private applyCheckpointDiff(raw: unknown): SyncLineEvent {
    const line = record(raw, 'checkpoint_diff');
    if (!this.target) throw new SyncProtocolError('checkpoint_diff arrived before any checkpoint');
    const lastOpId = opId(line.last_op_id, 'checkpoint_diff.last_op_id').toString();
    const updated = list(line.updated_buckets ?? [], 'checkpoint_diff.updated_buckets').map((b, i) =>
      bucketChecksum(b, `checkpoint_diff.updated_buckets[${i}]`),
    );
    const removed = list(line.removed_buckets ?? [], 'checkpoint_diff.removed_buckets').map((b, i) => {
      if (typeof b !== 'string') {
        throw new SyncProtocolError(`checkpoint_diff.removed_buckets[${i}] must be a bucket name, got ${preview(b)}`);
      }
      return b;
    });
    if (!this.complete) this.abandonedCheckpoints++;
    for (const name of removed) this.buckets.delete(name);
    for (const b of updated) this.upsertBucket(b);
    // Like the reference client: the diff's write_checkpoint replaces the previous one.
    this.target = {
      lastOpId,
      writeCheckpoint: optionalOpId(line.write_checkpoint, 'checkpoint_diff.write_checkpoint'),
      streams: this.target.streams,
    };
    this.complete = false;
    this.partialCompletions.length = 0;
    this.checkpointsReceived++;
    return { kind: 'checkpoint_diff', lastOpId, removedBuckets: removed };
  }

  private applyData(raw: unknown): SyncLineEvent {
    const line = record(raw, 'data');
    if (typeof line.bucket !== 'string') throw new SyncProtocolError(`data.bucket must be a string`);
    const name = line.bucket;
    const ops = list(line.data, `data.data (bucket "${name}")`);
    const bucket = this.buckets.get(name);
    if (!this.target) throw new SyncProtocolError(`data for bucket "${name}" arrived before any checkpoint`);
    if (!bucket) {
      this.warnings.push(`ignored ${ops.length} ops for bucket "${name}", which the checkpoint does not list`);
      return { kind: 'data', bucket: name, ops: ops.length, ignored: true };
    }
    ops.forEach((op, i) => this.applyOp(bucket, op, `data.data[${i}] (bucket "${name}")`));
    if (line.next_after !== undefined) {
      const nextAfter = opId(line.next_after, `data.next_after (bucket "${name}")`);
      if (bucket.lastOpId === null || nextAfter > bucket.lastOpId) bucket.lastOpId = nextAfter;
    }
    return { kind: 'data', bucket: name, ops: ops.length, ignored: false };
  }

  private applyOp(bucket: BucketState, raw: unknown, where: string): void {
    const op = record(raw, where);
    const id = opId(op.op_id, `${where}.op_id`);
    const checksum = int32(op.checksum, `${where}.checksum`);
    bucket.opsReceived++;
    if (bucket.lastOpId === null || id > bucket.lastOpId) bucket.lastOpId = id;
    switch (op.op) {
      case 'PUT': {
        const row = rowKey(op, where);
        bucket.rows.set(row.key, {
          objectType: row.objectType,
          objectId: row.objectId,
          opId: id,
          data: rowData(op.data),
        });
        bucket.computedChecksum = addChecksum(bucket.computedChecksum, checksum);
        return;
      }
      case 'REMOVE': {
        bucket.rows.delete(rowKey(op, where).key);
        bucket.computedChecksum = addChecksum(bucket.computedChecksum, checksum);
        return;
      }
      case 'MOVE':
        // A compacted op: carries only its checksum.
        bucket.computedChecksum = addChecksum(bucket.computedChecksum, checksum);
        return;
      case 'CLEAR':
        // Everything before it is gone; its checksum stands for all of that history.
        bucket.rows.clear();
        bucket.computedChecksum = checksum;
        return;
      default:
        throw new SyncProtocolError(`${where}.op must be PUT, REMOVE, MOVE or CLEAR, got ${preview(op.op)}`);
    }
  }

  private applyPartialComplete(raw: unknown): SyncLineEvent {
    const line = record(raw, 'partial_checkpoint_complete');
    const priority = line.priority;
    if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 0) {
      throw new SyncProtocolError(
        `partial_checkpoint_complete.priority must be a non-negative integer, got ${preview(priority)}`,
      );
    }
    this.expectTargetOpId(line.last_op_id, 'partial_checkpoint_complete');
    this.partialCompletions.push(priority);
    return { kind: 'partial_checkpoint_complete', priority, mismatches: this.verify(priority) };
  }

  private applyComplete(raw: unknown): SyncLineEvent {
    const line = record(raw, 'checkpoint_complete');
    const lastOpId = this.expectTargetOpId(line.last_op_id, 'checkpoint_complete');
    this.complete = true;
    return { kind: 'checkpoint_complete', lastOpId, mismatches: this.verify() };
  }

  /** A completion names the checkpoint it completes; it must be the latest one. */
  private expectTargetOpId(value: unknown, what: string): string {
    const id = opId(value, `${what}.last_op_id`).toString();
    if (!this.target) throw new SyncProtocolError(`${what} arrived before any checkpoint`);
    if (id !== this.target.lastOpId) {
      throw new SyncProtocolError(
        `${what}.last_op_id is ${id} but the latest checkpoint's last_op_id is ${this.target.lastOpId}`,
      );
    }
    return id;
  }

  private upsertBucket(b: BucketChecksum): void {
    const existing = this.buckets.get(b.bucket);
    if (existing) {
      existing.checksum = b.checksum;
      existing.count = b.count;
      existing.priority = b.priority;
    } else {
      this.buckets.set(b.bucket, { ...b, computedChecksum: 0, opsReceived: 0, lastOpId: null, rows: new Map() });
    }
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function record(value: unknown, where: string): Record<string, unknown> {
  if (!isRecord(value)) throw new SyncProtocolError(`${where} must be an object, got ${preview(value)}`);
  return value;
}

function list(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new SyncProtocolError(`${where} must be a list, got ${preview(value)}`);
  return value;
}

/** Op ids are base-10 strings of unsigned 64-bit integers (BSON may carry them as int64). */
function opId(value: unknown, where: string): bigint {
  if (typeof value === 'bigint' && value >= 0n) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value === 'string' && /^\d{1,20}$/.test(value)) {
    const id = BigInt(value);
    if (id < 1n << 64n) return id;
  }
  throw new SyncProtocolError(`${where} must be an unsigned 64-bit op id, got ${preview(value)}`);
}

function optionalOpId(value: unknown, where: string): string | null {
  return value === undefined || value === null ? null : opId(value, where).toString();
}

/** Accepts signed or unsigned 32-bit forms (and int64 from BSON); returns the signed value. */
function int32(value: unknown, where: string): number {
  if (typeof value === 'bigint') return Number(BigInt.asIntN(32, value));
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value | 0;
  throw new SyncProtocolError(`${where} must be an integer checksum, got ${preview(value)}`);
}

function bucketChecksum(raw: unknown, where: string): BucketChecksum {
  const b = record(raw, where);
  if (typeof b.bucket !== 'string') throw new SyncProtocolError(`${where}.bucket must be a string`);
  const count = b.count === undefined ? 0 : Number(b.count);
  const priority = b.priority === undefined || b.priority === null ? DEFAULT_PRIORITY : Number(b.priority);
  if (!Number.isInteger(priority) || priority < 0) {
    throw new SyncProtocolError(`${where}.priority must be a non-negative integer, got ${preview(b.priority)}`);
  }
  return {
    bucket: b.bucket,
    checksum: int32(b.checksum, `${where}.checksum`),
    count: Number.isFinite(count) ? count : 0,
    priority,
  };
}

function streamDescription(raw: unknown, i: number): StreamDescription {
  const s = record(raw, `checkpoint.streams[${i}]`);
  const errors = s.errors === undefined ? [] : list(s.errors, `checkpoint.streams[${i}].errors`);
  return {
    name: String(s.name),
    isDefault: s.is_default === true,
    errors: errors.map((e, j) => {
      const error = record(e, `checkpoint.streams[${i}].errors[${j}]`);
      const subscription = typeof error.subscription === 'number' ? error.subscription : String(error.subscription);
      return { subscription, message: String(error.message) };
    }),
  };
}

function rowKey(op: Record<string, unknown>, where: string): { key: string; objectType: string; objectId: string } {
  if (typeof op.object_type !== 'string') throw new SyncProtocolError(`${where}.object_type must be a string`);
  if (typeof op.object_id !== 'string') throw new SyncProtocolError(`${where}.object_id must be a string`);
  const subkey = op.subkey === undefined || op.subkey === null ? '' : String(op.subkey);
  return {
    key: `${op.object_type}\u0000${op.object_id}\u0000${subkey}`,
    objectType: op.object_type,
    objectId: op.object_id,
  };
}

/** With raw_data the row is a JSON string; anything else is kept as sent. */
function rowData(data: unknown): unknown {
  if (typeof data !== 'string') return data ?? null;
  try {
    return JSON.parse(data) as unknown;
  } catch {
    return data;
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function preview(value: unknown): string {
  const text = typeof value === 'bigint' ? `${value}n` : JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
