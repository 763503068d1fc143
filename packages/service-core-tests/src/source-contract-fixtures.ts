/**
 * Fixtures of the source contract suite: row and key generators per key type, the sync
 * config the scenarios deploy, the oracle (buckets computed from the source's rows), spies
 * around the module's snapshotter and streamer, and waits with deadlines.
 */
import { createHash } from 'node:crypto';
import {
  comparePositions,
  type ChangeEvent,
  type Checkpoint,
  type ReplicationCoordinatorOptions,
  type SnapshotChunk,
  type Snapshotter,
  type StoredTable,
  type Streamer,
  type SyncConfigStorage,
} from '@bucketsync/service-core';
import { readBucket } from './storage-contract-fixtures.js';
import type { SourceKeyType, SourceRow } from './source-harness.js';

/** Owners rows are spread over; each is one bucket `by_owner["uN"]`. */
export const OWNERS = ['u0', 'u1', 'u2', 'u3', 'u4'] as const;

/** Key columns of each key type. */
export const KEY_COLUMNS: Record<SourceKeyType, readonly string[]> = {
  integer: ['id'],
  text: ['id'],
  uuid: ['id'],
  composite: ['region', 'seq'],
};

// Mixed case, accents and spaces: the source's own ordering must drive the chunking.
const TEXT_PREFIXES = ['Key', 'key', 'kéy', 'KEY-', 'k y'];

/** The key of the `i`-th row of a table with `type` keys. Deterministic; not in insertion order for text and uuid. */
export function keyOf(type: SourceKeyType, i: number): SourceRow {
  switch (type) {
    case 'integer':
      return { id: i };
    case 'text':
      return { id: `${TEXT_PREFIXES[Math.abs(i) % TEXT_PREFIXES.length]}${i}` };
    case 'uuid': {
      const h = createHash('md5').update(String(i)).digest('hex');
      return { id: `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}` };
    }
    case 'composite':
      return { region: `r${Math.abs(i) % 3}`, seq: i };
  }
}

/** The `i`-th row: its key, an owner (bucket), a title and a number. */
export function rowOf(type: SourceKeyType, i: number, fields: SourceRow = {}): SourceRow {
  return { ...keyOf(type, i), owner: OWNERS[Math.abs(i) % OWNERS.length]!, title: `row ${i}`, n: i, ...fields };
}

/** Rows `from..to` (inclusive). */
export function rowsOf(type: SourceKeyType, from: number, to: number): SourceRow[] {
  const rows: SourceRow[] = [];
  for (let i = from; i <= to; i++) rows.push(rowOf(type, i));
  return rows;
}

/** The synced row id of a source row (composite keys are joined as `region/seq`). */
export function outputId(type: SourceKeyType, row: SourceRow): string {
  return type === 'composite' ? `${row.region}/${row.seq}` : String(row.id);
}

/** A table of a scenario: its name and key type. */
export interface ContractTable {
  readonly name: string;
  readonly key: SourceKeyType;
}

/** One bucket per owner with every column of every table (`*`), composite keys joined into `id`. */
export function ownerSyncConfig(tables: readonly ContractTable[], ref: (table: string) => string): string {
  const queries = tables.map((t) =>
    t.key === 'composite'
      ? `      - SELECT *, region || '/' || seq AS id FROM ${ref(t.name)} WHERE owner = bucket.owner`
      : `      - SELECT * FROM ${ref(t.name)} WHERE owner = bucket.owner`,
  );
  return `
bucket_definitions:
  by_owner:
    parameters: SELECT request.user_id() AS owner
    data:
${queries.join('\n')}
`;
}

type JsonRow = Record<string, unknown>;

/** Drops null values: a column added later is absent from rows synced before it, and null after. */
function withoutNulls(row: JsonRow): JsonRow {
  return Object.fromEntries(Object.entries(row).filter(([, v]) => v !== null && v !== undefined));
}

/**
 * Live rows of a bucket at a checkpoint, by `table/id`, replaying PUT / REMOVE / CLEAR like a
 * client. `duplicates` lists rows held live by more than one source row (subkey): stale copies
 * a client would keep showing after the real row goes.
 */
export async function liveBucketRows(
  config: SyncConfigStorage,
  bucket: string,
  checkpoint: bigint,
): Promise<{ rows: Map<string, JsonRow>; duplicates: string[] }> {
  const live = new Map<string, { row: string; data: string }>();
  const { ops } = await readBucket(config, bucket, checkpoint);
  for (const op of ops) {
    const key = `${op.objectType}/${op.objectId}/${op.subkey}`;
    if (op.op === 'PUT') live.set(key, { row: `${op.objectType}/${op.objectId}`, data: op.data ?? '{}' });
    else if (op.op === 'REMOVE') live.delete(key);
    else if (op.op === 'CLEAR') live.clear();
  }
  const rows = new Map<string, JsonRow>();
  const duplicates: string[] = [];
  for (const { row, data } of live.values()) {
    if (rows.has(row)) duplicates.push(row);
    rows.set(row, withoutNulls(JSON.parse(data) as JsonRow));
  }
  return { rows, duplicates };
}

/** What differs between the buckets and the oracle; every list empty when they agree. */
export interface OracleDiff {
  checkpoint: string;
  missing: string[];
  unexpected: string[];
  /** `bucket row: <bucket data> != <source row>` */
  different: string[];
  duplicates: string[];
}

/**
 * Compares every owner bucket at the current checkpoint with the rows computed from the
 * source (the oracle). Returns the differences (at most 10 of each) for a readable failure.
 */
export async function diffBucketsWithSource(
  config: SyncConfigStorage,
  tables: readonly ContractTable[],
  sourceRows: (table: string) => Promise<SourceRow[]>,
): Promise<OracleDiff> {
  const checkpoint = await config.getCheckpoint();
  const expected = new Map<string, Map<string, JsonRow>>();
  for (const owner of OWNERS) expected.set(owner, new Map());
  for (const table of tables) {
    for (const row of await sourceRows(table.name)) {
      const owner = String(row.owner);
      if (!expected.has(owner)) expected.set(owner, new Map());
      const id = outputId(table.key, row);
      // A single-column key is synced as the column's own value (`SELECT *`); a composite one as text.
      const synced = table.key === 'composite' ? { ...row, id } : row;
      expected.get(owner)!.set(`${table.name}/${id}`, withoutNulls(synced));
    }
  }
  const diff: OracleDiff = {
    checkpoint: `${checkpoint.opId}@${checkpoint.position}`,
    missing: [],
    unexpected: [],
    different: [],
    duplicates: [],
  };
  for (const [owner, rows] of expected) {
    const bucket = `by_owner["${owner}"]`;
    const actual = await liveBucketRows(config, bucket, checkpoint.opId);
    diff.duplicates.push(...actual.duplicates.map((r) => `${bucket} ${r}`));
    for (const [key, row] of rows) {
      const got = actual.rows.get(key);
      if (!got) diff.missing.push(`${bucket} ${key}`);
      else if (JSON.stringify(sortKeys(got)) !== JSON.stringify(sortKeys(row)))
        diff.different.push(`${bucket} ${key}: ${JSON.stringify(sortKeys(got))} != ${JSON.stringify(sortKeys(row))}`);
    }
    for (const key of actual.rows.keys()) if (!rows.has(key)) diff.unexpected.push(`${bucket} ${key}`);
  }
  diff.missing = diff.missing.slice(0, 10);
  diff.unexpected = diff.unexpected.slice(0, 10);
  diff.different = diff.different.slice(0, 10);
  diff.duplicates = diff.duplicates.slice(0, 10);
  return diff;
}

function sortKeys(row: JsonRow): JsonRow {
  return Object.fromEntries(Object.entries(row).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Every log line of a run, parsed; the suite asserts on the coordinator's progress messages. */
export interface LogRecord {
  readonly level: string;
  readonly message: string;
  readonly fields: Record<string, unknown>;
}

type Logger = ReplicationCoordinatorOptions['logger'];

/** A logger that records lines in memory (and prints nothing). */
export function recordingLogger(records: LogRecord[], base: Record<string, unknown> = {}): Logger {
  const write = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    records.push({ level, message, fields: { ...base, ...fields } });
  };
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (fields) => recordingLogger(records, { ...base, ...fields }),
  };
}

/** A read observed by the snapshotter spy. */
export interface ObservedRead {
  readonly table: string;
  readonly afterKey: string | undefined;
  readonly rows: number;
  readonly chunks: number;
}

/**
 * Wraps a snapshotter: records each table read (where it started, rows and chunks), the last
 * chunk handed to the snapshot queue, boundaries, and lets a test hold a table's copy before
 * a given chunk reaches the queue (`beforeChunk`).
 */
export class SpySnapshotter implements Snapshotter {
  readonly reads: ObservedRead[] = [];
  readonly boundaries: string[] = [];
  /** The chunk most recently handed to the snapshot queue (its rows are about to be saved). */
  lastChunk: { table: string; chunk: SnapshotChunk } | undefined;
  /** Runs before chunk `index` (0-based) of `table` is handed to the queue; may wait. */
  beforeChunk: ((table: string, index: number) => Promise<void> | void) | undefined;

  constructor(private readonly inner: Snapshotter) {}

  listTables(...args: Parameters<Snapshotter['listTables']>) {
    return this.inner.listTables(...args);
  }

  async *readChunks(
    table: StoredTable,
    options: Parameters<Snapshotter['readChunks']>[1],
  ): AsyncIterable<SnapshotChunk> {
    const read = { table: table.name, afterKey: options.afterKey, rows: 0, chunks: 0 };
    this.reads.push(read);
    for await (const chunk of this.inner.readChunks(table, options)) {
      await this.beforeChunk?.(table.name, read.chunks);
      read.chunks++;
      read.rows += chunk.rows.length;
      this.lastChunk = { table: table.name, chunk };
      yield chunk;
    }
  }

  readRowsByKey(...args: Parameters<Snapshotter['readRowsByKey']>) {
    return this.inner.readRowsByKey(...args);
  }

  async currentPosition(signal: AbortSignal): Promise<string> {
    const position = await this.inner.currentPosition(signal);
    this.boundaries.push(position);
    return position;
  }

  close() {
    return this.inner.close();
  }
}

/** Wraps a streamer and records every event it emits and the start position it fixed. */
export class SpyStreamer implements Streamer {
  readonly events: ChangeEvent[] = [];
  startPosition: string | undefined;

  constructor(private readonly inner: Streamer) {}

  async createStartPosition(signal: AbortSignal): Promise<string> {
    this.startPosition = await this.inner.createStartPosition(signal);
    return this.startPosition;
  }

  async *stream(from: string, signal: AbortSignal): AsyncIterable<ChangeEvent[]> {
    for await (const events of this.inner.stream(from, signal)) {
      this.events.push(...events);
      yield events;
    }
  }

  acknowledge(position: string): void {
    this.inner.acknowledge(position);
  }

  destroy() {
    return this.inner.destroy();
  }

  close() {
    return this.inner.close();
  }
}

/** Polls `probe` until it returns a value, failing with `describe()` after `timeoutMs`. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  describe: () => string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** True when `position` is at or past `target`. */
export function atOrPast(position: string | undefined, target: string): boolean {
  return position !== undefined && comparePositions(position, target) >= 0;
}

/** A checkpoint formatted for messages. */
export function formatCheckpoint(checkpoint: Checkpoint): string {
  return `${checkpoint.opId}@${checkpoint.position ?? '-'}`;
}
