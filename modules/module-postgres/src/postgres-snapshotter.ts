/**
 * The Postgres snapshotter: lists the sync config's tables (checking the publication covers
 * them), copies a table in key-ordered chunks resumable from the last key, re-reads rows by
 * key, and reports the current position as a table's boundary. The boundary is a
 * non-transactional logical message, so the stream observes it at once even when idle.
 */
import { createPostgresPool, loadPostgresTypes, PostgresTypeDecoder } from '@bucketsync/lib-postgres';
import type {
  SnapshotChunk,
  Snapshotter,
  SourceContext,
  SourceTableDescriptor,
  SourceTablePattern,
  StoredTable,
} from '@bucketsync/service-core';
import type { SqliteRow } from '@bucketsync/sync-rules';
import type pg from 'pg';
import type { PostgresSourceConfig } from './postgres-config.js';
import { classifyPostgresSourceError } from './postgres-errors.js';
import { positionFromLsnText } from './postgres-position.js';
import { quoteIdent } from './postgres-replication-connection.js';
import {
  checkPublication,
  checkTablePrivileges,
  describePostgresTable,
  listPostgresTables,
  type PostgresTable,
} from './postgres-table-catalog.js';
import { PostgresTableReader } from './postgres-table-reader.js';

/** Prefix of the logical messages BucketSync writes (boundaries, write checkpoints). */
export const MESSAGE_PREFIX = 'bucketsync';

/** Emits a non-transactional logical message; its LSN is a position the stream will reach promptly. */
export async function emitPositionMarker(client: pg.ClientBase, content: string): Promise<string> {
  const { rows } = await client.query<{ lsn: string }>('SELECT pg_logical_emit_message(false, $1, $2)::text AS lsn', [
    MESSAGE_PREFIX,
    content,
  ]);
  return positionFromLsnText(rows[0]!.lsn);
}

export class PostgresSnapshotter implements Snapshotter {
  private readonly pool: pg.Pool;
  private readonly types: PostgresTypeDecoder;

  constructor(private readonly context: SourceContext<PostgresSourceConfig>) {
    this.pool = createPostgresPool({ uri: context.config.uri, applicationName: 'bucketsync-snapshot', max: 4 });
    this.pool.on('error', () => undefined); // idle client errors surface on the next query
    this.types = new PostgresTypeDecoder({ edition: context.edition });
  }

  async listTables(patterns: readonly SourceTablePattern[]): Promise<SourceTableDescriptor[]> {
    const client = await this.connect('listing tables');
    try {
      const tables = await listPostgresTables(client, patterns, this.context.config.tag);
      await checkPublication(client, this.context.config.publicationName, tables);
      await checkTablePrivileges(client, tables);
      return tables.map((t) => t.descriptor);
    } catch (e) {
      throw classifyPostgresSourceError(e, 'listing tables');
    } finally {
      client.release();
    }
  }

  async *readChunks(
    table: StoredTable,
    options: { afterKey?: string; chunkSize: number; signal: AbortSignal },
  ): AsyncIterable<SnapshotChunk> {
    const client = await this.connect(`copying ${table.schema}.${table.name}`);
    try {
      const shape = await this.shape(client, table);
      const reader = new PostgresTableReader(shape, this.types);
      const estimate = await client.query<{ n: number }>(
        'SELECT greatest(reltuples, 0)::float8 AS n FROM pg_class WHERE oid = $1',
        [shape.oid],
      );
      const estimatedTotalRows = Math.round(estimate.rows[0]?.n ?? 0) || undefined;
      let afterKey = options.afterKey === undefined ? undefined : (JSON.parse(options.afterKey) as (string | null)[]);
      while (!options.signal.aborted) {
        const chunk = await reader.readChunk(client, afterKey, options.chunkSize);
        if (!chunk.lastKey) return;
        afterKey = chunk.lastKey;
        yield {
          rows: chunk.rows,
          lastKey: JSON.stringify(chunk.lastKey),
          ...(estimatedTotalRows !== undefined ? { estimatedTotalRows } : {}),
        };
        if (chunk.rows.length < options.chunkSize) return;
      }
    } catch (e) {
      throw classifyPostgresSourceError(e, `copying ${table.schema}.${table.name}`);
    } finally {
      client.release();
    }
  }

  async readRowsByKey(table: StoredTable, keys: readonly SqliteRow[]): Promise<SqliteRow[]> {
    if (keys.length === 0) return [];
    const client = await this.connect(`re-reading rows of ${table.schema}.${table.name}`);
    try {
      const shape = await this.shape(client, table);
      const reader = new PostgresTableReader(shape, this.types);
      const out: SqliteRow[] = [];
      for (const key of keys) {
        const values = shape.keyColumns.map((k) => {
          const v = key[k];
          return v === null || v === undefined ? null : v instanceof Uint8Array ? Buffer.from(v) : String(v);
        });
        out.push(...(await reader.readByKey(client, values)));
      }
      return out;
    } catch (e) {
      throw classifyPostgresSourceError(e, `re-reading rows of ${table.schema}.${table.name}`);
    } finally {
      client.release();
    }
  }

  async currentPosition(): Promise<string> {
    const client = await this.connect('reading the current position');
    try {
      return await emitPositionMarker(client, 'boundary');
    } catch (e) {
      throw classifyPostgresSourceError(e, 'reading the current position');
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }

  private async connect(doing: string): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (e) {
      throw classifyPostgresSourceError(e, doing);
    }
  }

  private async shape(client: pg.ClientBase, table: StoredTable): Promise<PostgresTable> {
    const oid = Number(table.objectId);
    const described = await describePostgresTable(client, oid, this.context.config.tag);
    if (!described) throw new Error(`table ${table.schema}.${table.name} (oid ${oid}) no longer exists`);
    await loadPostgresTypes(
      client,
      this.types,
      described.columns.map((c) => c.typeOid),
    );
    // Copy with the key storage knows the table by, even if the catalog changed meanwhile
    // (the stream then reports the new identity and the table is copied again).
    return { ...described, keyColumns: [...table.replicaIdColumns] };
  }
}

export { quoteIdent };
