/**
 * What a source module supplies to run the source contract suite: a harness that owns a
 * throwaway source (tables it can create, write and alter), fresh bucket storage, and the
 * module's snapshotter and streamer. The suite owns the coordinator and every assertion.
 */
import type { BucketStorage, Snapshotter, Streamer } from '@bucketsync/service-core';

/**
 * Key shapes the suite copies tables with. Each maps to the source's natural type:
 * `integer` a 64-bit integer `id`, `text` a text `id`, `uuid` a UUID `id` (or the source's
 * closest type), `composite` a two-column key `(region text, seq integer)`.
 */
export type SourceKeyType = 'integer' | 'text' | 'uuid' | 'composite';

/** A column value as the suite writes and reads it: strings, integers (safe range) and null. */
export type SourceValue = string | number | null;

/** A source row (or a row key) by column name. */
export type SourceRow = Record<string, SourceValue>;

/**
 * Scenarios a source may not support. A harness lists the ones it cannot run with the reason;
 * the suite skips exactly those tests and prints the reason. Nothing else is ever skipped.
 */
export type SourceContractFeature =
  | 'integerKey'
  | 'textKey'
  | 'uuidKey'
  | 'compositeKey'
  /** A table joins the replicated set while the stream runs (`addToReplication`). */
  | 'addTableWhileStreaming'
  | 'truncate'
  | 'addColumn'
  /** A column is dropped, or added with a default (`dropColumn`, `addColumn` with `defaultValue`). */
  | 'columnRewrite'
  /** The key columns of a replicated table change (`setKey`). */
  | 'keyChange';

/** Options of `SourceHarness.createTable`. */
export interface CreateTableOptions {
  readonly key: SourceKeyType;
  /**
   * Whether the table is in the replicated set from the start. Default true. When false the
   * table is created (and can be written) outside what the source replicates, so rows written
   * before `addToReplication` reach storage only through a snapshot.
   */
  readonly replicated?: boolean;
}

/** One test's source, storage and module parts. Created per test; `close` removes everything. */
export interface SourceHarness {
  /** Fresh, empty bucket storage (its own database or schema). The suite deploys one sync config into it. */
  readonly storage: BucketStorage;

  /** How the sync config names `table` (schema- or database-qualified as the source needs). */
  tableRef(table: string): string;

  /**
   * A new snapshotter, like a fresh process would create it. Same replication identity on
   * every call, so a second one resumes what the first left (slot, progress).
   */
  createSnapshotter(options: { edition: number }): Snapshotter;

  /** A new streamer for the same replication identity (Postgres: the same slot). */
  createStreamer(options: { edition: number }): Streamer;

  /** The source's head position, made observable by the stream (the source API's `headPosition`). */
  headPosition(): Promise<string>;

  /**
   * Creates `table` with the key columns of `options.key` plus `owner text not null`,
   * `title text` and `n integer`, and (unless `replicated: false`) includes it in what the
   * source replicates.
   */
  createTable(table: string, options: CreateTableOptions): Promise<void>;

  /** Includes a table created with `replicated: false` in the replicated set, keeping its rows. */
  addToReplication(table: string): Promise<void>;

  /** Inserts rows in one source transaction. */
  insert(table: string, rows: readonly SourceRow[]): Promise<void>;

  /** Updates rows (matched by `key`, set to `set`) in one source transaction. */
  update(table: string, changes: readonly { key: SourceRow; set: SourceRow }[]): Promise<void>;

  /** Deletes rows by key in one source transaction. */
  delete(table: string, keys: readonly SourceRow[]): Promise<void>;

  /** Removes every row of the table in one source operation (SQL TRUNCATE where there is one). */
  truncate(table: string): Promise<void>;

  /** Adds a nullable column; with `defaultValue`, rows already there get that value. */
  addColumn(
    table: string,
    column: { name: string; type: 'text' | 'integer'; defaultValue?: string | number },
  ): Promise<void>;

  /** Drops a column (rows already there lose it, without a change event for them). */
  dropColumn(table: string, column: string): Promise<void>;

  /** Replaces the table's key (primary key) with `columns`. */
  setKey(table: string, columns: readonly string[]): Promise<void>;

  /** The table's current rows, every column, integers as numbers: the oracle the buckets are compared with. */
  rows(table: string): Promise<SourceRow[]>;

  /** Drops the source objects, the stream's resources (slot) and the storage. Idempotent. */
  close(): Promise<void>;
}

/** What `defineSourceContract` takes: a name, unsupported features with reasons, and a per-test factory. */
export interface SourceHarnessFactory {
  /** Shown in the suite name, e.g. `postgres`. */
  readonly name: string;
  /** Features this source cannot run, each with the reason printed when its tests are skipped. */
  readonly unsupported?: Partial<Record<SourceContractFeature, string>>;
  /** Creates a fresh harness; called once per test. */
  create(): Promise<SourceHarness>;
}
