/**
 * Source contracts (architecture.md section 2): a source module declares its type key, config
 * codec and capabilities, and creates the three parts the coordinator and routes use:
 * snapshotter, streamer and source API. Contracts only; modules implement them.
 */
import type { SourceTableDescriptor, SqliteRow, StoredTable } from '../storage/storage-types.js';
import type { ChangeEvent } from './change-event.js';

/** A table pattern from the sync config: exact name or a `%` wildcard prefix. */
export interface SourceTablePattern {
  readonly schema: string;
  readonly name: string;
  readonly isWildcard: boolean;
}

/** One chunk of a table copy, in key order. */
export interface SnapshotChunk {
  readonly rows: readonly SqliteRow[];
  /** The last row's key, serialised by the module; passed back as `afterKey` to resume. */
  readonly lastKey: string;
  /** Estimated rows in the table, when the source can tell (for progress). */
  readonly estimatedTotalRows?: number;
}

/**
 * Reads tables for the initial copy and for re-snapshots. Created per replication job;
 * the coordinator may read several tables concurrently through one snapshotter.
 */
export interface Snapshotter {
  /**
   * The source tables matching the sync config's patterns, with their replica key columns.
   * Called by the coordinator at start. A table without a usable key is reported by throwing
   * a permanent ServiceError naming it and the fix (add a primary key / replica identity).
   */
  listTables(patterns: readonly SourceTablePattern[], signal: AbortSignal): Promise<SourceTableDescriptor[]>;

  /**
   * Reads `table` in key order, `chunkSize` rows per chunk, starting after `afterKey`
   * (from the beginning when undefined). Resumable: `afterKey` is a previous chunk's
   * `lastKey`. Called by the snapshot queue; stops when aborted.
   */
  readChunks(
    table: StoredTable,
    options: { afterKey?: string; chunkSize: number; signal: AbortSignal },
  ): AsyncIterable<SnapshotChunk>;

  /**
   * Re-reads rows by key (rows that arrived as partial updates storage could not complete).
   * Keys are rows holding at least the replica key columns. Missing rows are left out.
   */
  readRowsByKey(table: StoredTable, keys: readonly SqliteRow[], signal: AbortSignal): Promise<SqliteRow[]>;

  /**
   * The source's current position; taken after a table's last chunk it is that table's
   * snapshot boundary. Must be at or after every change visible to the reads before it.
   */
  currentPosition(signal: AbortSignal): Promise<string>;

  /** Releases connections. Idempotent. */
  close(): Promise<void>;
}

/** Streams changes from a position. One streamer per replication job. */
export interface Streamer {
  /**
   * Fixes the stream's start position for a fresh replication (Postgres: creates the slot,
   * whose consistent point is returned). Called once, before any snapshot read, so no
   * change between the copy and the stream can be missed.
   */
  createStartPosition(signal: AbortSignal): Promise<string>;

  /**
   * Streams changes after `from` in batches (each array in source order). Runs until the
   * signal aborts; throws a ServiceError (retryable or not) when the stream fails, and
   * SOURCE_HISTORY_LOST when the source no longer has the history after `from`.
   */
  stream(from: string, signal: AbortSignal): AsyncIterable<ChangeEvent[]>;

  /**
   * Tells the source that everything up to `position` is durably stored, so it may release
   * history (Postgres: WAL). Called by the coordinator after a successful commit only;
   * acknowledging earlier loses changes on a crash.
   */
  acknowledge(position: string): void;

  /** Releases the stream's resources when replication for this config ends for good (drop the slot). */
  destroy(): Promise<void>;

  /** Closes connections. Idempotent. */
  close(): Promise<void>;
}

/** What routes need from the source. */
export interface SourceApi {
  /**
   * The source's current head position, made observable by the stream (Postgres: a logical
   * message after reading the LSN). Used for write checkpoints.
   */
  headPosition(): Promise<string>;
  /** Connection status for diagnostics. */
  status(): Promise<{ connected: boolean; error?: string }>;
  /** Replication lag: bytes (when the source can tell) and seconds behind. */
  lag(replicatedPosition: string | undefined): Promise<{ bytes?: number; seconds?: number }>;
  /** Tables and columns, for the admin API and the dashboard. */
  schema(): Promise<{ schema: string; name: string; columns: { name: string; type: string }[] }[]>;
  close(): Promise<void>;
}

/** Optional behaviours; the coordinator reads them with their defaults. */
export interface SourceCapabilities {
  /** Tables can be copied while the stream runs. Default true. */
  readonly concurrentSnapshot?: boolean;
  /** The streamer sends partial updates that may need `readRowsByKey`. Default false. */
  readonly partialUpdates?: boolean;
}

export const DEFAULT_SOURCE_CAPABILITIES: Required<SourceCapabilities> = {
  concurrentSnapshot: true,
  partialUpdates: false,
};

/** What a module's factories get: its decoded connection config and the replication job's identity. */
export interface SourceContext<Config> {
  readonly config: Config;
  /** Identifies the deployed sync config; modules derive slot names and the like from it. */
  readonly replicationId: string;
  /** Sync config edition (value formatting). */
  readonly edition: number;
}

/** A source module: registered once in service/, looked up by `type`. */
export interface SourceModule<Config = unknown> {
  /** Key in the service config: `replication.connections[].type`. */
  readonly type: string;
  /** Decodes and validates the raw connection config; throws ServiceError CONFIG_INVALID naming fields. */
  decodeConfig(raw: unknown): Config;
  readonly capabilities: SourceCapabilities;
  createSnapshotter(context: SourceContext<Config>): Snapshotter;
  createStreamer(context: SourceContext<Config>): Streamer;
  createSourceApi(context: SourceContext<Config>): SourceApi;
}
