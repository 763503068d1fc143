/**
 * Shared value types of the storage contracts: ops, checksums, checkpoints, tables and the
 * slice of a compiled sync config that storage evaluates rows with. Persisted and wire names
 * (snake_case) are mapped at each backend's edge; these are the in-process shapes.
 */

/** A SQLite value: `number` is REAL, `bigint` is INTEGER (exact), `Uint8Array` is BLOB. */
export type SqliteValue = null | string | number | bigint | Uint8Array;

/** A row as the sync config sees it: column name to SQLite value. */
export type SqliteRow = Record<string, SqliteValue>;

/**
 * An op id: unsigned 64-bit, strictly increasing per deployed sync config (architecture.md
 * section 3, invariant 7). `0n` means "before every op".
 */
export type OpId = bigint;

/** The four op kinds of a bucket's log (docs/glossary.md "op"). */
export type OpKind = 'PUT' | 'REMOVE' | 'MOVE' | 'CLEAR';

/** One entry of a bucket's op log, as read back for a client. */
export interface OplogEntry {
  /** Op id; sent on the wire as a base-10 string. */
  readonly opId: OpId;
  readonly op: OpKind;
  /** Output table (`object_type`); absent for MOVE and CLEAR. */
  readonly objectType?: string;
  /** Output row id (`object_id`); absent for MOVE and CLEAR. */
  readonly objectId?: string;
  /** Identifies the source row that produced the output row; absent for MOVE and CLEAR. */
  readonly subkey?: string;
  /** Signed 32-bit checksum of this op (section 6 of architecture.md). */
  readonly checksum: number;
  /** Row data as compact JSON text, PUT only. */
  readonly data?: string;
}

/** A bucket's checksum at a checkpoint: the wrapping 32-bit sum of its ops' checksums. */
export interface BucketChecksum {
  readonly bucket: string;
  /** Signed 32-bit, as sent on the wire. */
  readonly checksum: number;
  /** Number of ops (informational; compaction lowers it). */
  readonly count: number;
}

/**
 * A consistent point of bucket storage: every op up to `opId` plus the source position it
 * reflects. `opId` is `0n` and `position` undefined before the first checkpoint.
 */
export interface Checkpoint {
  readonly opId: OpId;
  readonly position: string | undefined;
}

/** What a source module knows about a table when it asks storage for the table's identity. */
export interface SourceTableDescriptor {
  /** Which source connection the table comes from. Default `'default'`. */
  readonly connectionTag?: string;
  readonly schema: string;
  readonly name: string;
  /**
   * The source's own id for this version of the table (Postgres relation oid, ...). A change
   * of it, or of `replicaIdColumns`, gives the table a new identity in storage.
   */
  readonly objectId?: string | number;
  /** Columns that identify a row (primary key or replica identity), in key order. */
  readonly replicaIdColumns: readonly string[];
  /**
   * The table's columns, when the source can tell. Some schema changes alter existing rows
   * without any change event (a dropped or retyped column, a column added with a default);
   * such a change gives the table a new identity and a fresh copy (see `columnsChangeNeedsCopy`).
   */
  readonly columns?: readonly SourceColumn[];
  /**
   * Why the table has no replica key and how to fix it, when `replicaIdColumns` is empty. Such
   * a table fails replication with this message only if the sync config uses it.
   */
  readonly keyProblem?: string;
}

/** A source column as far as replication cares: its name, type and whether it has a default. */
export interface SourceColumn {
  readonly name: string;
  /** The source's name or id of the type (compared for equality only). */
  readonly type: string;
  /** Existing rows got a value when the column was added (a default, or a table rewrite). */
  readonly hasDefault: boolean;
}

/** Snapshot progress of one table, saved after each flushed chunk so a restart resumes. */
export interface TableSnapshotProgress {
  /** Replica key of the last row copied (JSON text as chosen by the snapshotter). */
  readonly lastKey?: string;
  /** Rows copied so far. */
  readonly copiedRows: number;
  /** Estimated total, when the source can tell. */
  readonly totalRows?: number;
}

/** A table as storage knows it: one identity per (source table, schema version). */
export interface StoredTable extends SourceTableDescriptor {
  /** Storage-assigned identity; rows are keyed by (id, replica key). */
  readonly id: number;
  /** Rows of this table feed buckets (the sync config has data queries on it). */
  readonly syncData: boolean;
  /** Rows of this table feed the parameter index. */
  readonly syncParameters: boolean;
  /** The table's copy is complete. */
  readonly snapshotDone: boolean;
  /** Source position at which the copy completed (its boundary); undefined while pending. */
  readonly snapshotBoundary: string | undefined;
  readonly snapshotProgress: TableSnapshotProgress | undefined;
}

/** One evaluated output row of a data query: which bucket, output table, id and data. */
export interface EvaluatedRow {
  readonly bucket: string;
  readonly table: string;
  readonly id: string;
  readonly data: SqliteRow;
}

/** A parameter-index key as produced by the sync config. */
export interface StorageParameterLookup {
  readonly definition: string;
  readonly queryId: string;
  readonly values: readonly SqliteValue[];
}

/** One evaluated parameter-index entry: lookup key -> output rows. */
export interface EvaluatedParameters {
  readonly lookup: StorageParameterLookup;
  readonly outputs: readonly SqliteRow[];
}

/** A reference to a source table by name, as the sync config matches tables. */
export interface SourceTableRef {
  readonly schema: string;
  readonly name: string;
}

/**
 * The slice of a compiled sync config (`@bucketsync/sync-rules` `SyncConfig`) that storage
 * needs. Declared structurally so core does not depend on the sync config engine.
 */
export interface StorageSyncConfig {
  tableIsRelevant(table: SourceTableRef): boolean;
  tableHasParameterQueries(table: SourceTableRef): boolean;
  evaluateRow(table: SourceTableRef, row: SqliteRow): ReadonlyArray<EvaluatedRow | { error: string }>;
  evaluateParameterRow(table: SourceTableRef, row: SqliteRow): ReadonlyArray<EvaluatedParameters | { error: string }>;
}

/**
 * The sync config engine functions storage uses, bundled so a backend can be given them
 * (the real engine in production, a stub in unit tests).
 */
export interface StorageSyncConfigEngine {
  /** Compiles sync config text; throws ServiceError SYNC_CONFIG_INVALID on fatal diagnostics. */
  parse(content: string, options: { configId: string }): StorageSyncConfig;
  /** Stable key of a parameter lookup (must be the one the sync engine reads with). */
  serializeParameterLookup(lookup: StorageParameterLookup): string;
  /** Compact JSON of a row for op data; bigint exact. */
  rowToJson(row: SqliteRow): string;
}
