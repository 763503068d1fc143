/**
 * What routes need from a Postgres source: the head position for write checkpoints (a
 * logical message, so the stream observes it even when idle), status, lag and the schema.
 * All of it goes through one small pool, so clients cannot make the service open connections
 * to the user's database beyond `SOURCE_API_POOL_SIZE`, and concurrent head-position reads are
 * coalesced (service-core `CoalescedRead`): a burst of write checkpoints costs one or two reads.
 */
import { createPostgresPool } from '@bucketsync/lib-postgres';
import { CoalescedRead, type SourceApi, type SourceContext } from '@bucketsync/service-core';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import type pg from 'pg';
import type { PostgresSourceConfig } from './postgres-config.js';
import { classifyPostgresSourceError } from './postgres-errors.js';
import { parseLsn } from './postgres-position.js';
import { emitPositionMarker } from './postgres-snapshotter.js';

/**
 * Most connections the source API holds to the source database. Head-position reads use at
 * most one at a time (they are coalesced); the other leaves room for status, lag and schema.
 */
export const SOURCE_API_POOL_SIZE = 2;
/** An idle source API connection is closed after this long. */
export const SOURCE_API_IDLE_TIMEOUT_MS = 30_000;
/** Shown in pg_stat_activity for the source API's connections. */
export const SOURCE_API_APPLICATION_NAME = 'bucketsync-api';

export class PostgresSourceApi implements SourceApi {
  private readonly pool: pg.Pool;
  private readonly head: CoalescedRead<string>;
  private closing: Promise<void> | undefined;

  constructor(context: SourceContext<PostgresSourceConfig>) {
    this.pool = createPostgresPool({
      uri: context.config.uri,
      applicationName: SOURCE_API_APPLICATION_NAME,
      max: SOURCE_API_POOL_SIZE,
      idleTimeoutMs: SOURCE_API_IDLE_TIMEOUT_MS,
    });
    // The message is written after the read starts, and each caller shares only a read that
    // started after it called: the position covers every write committed before the request.
    this.head = new CoalescedRead(() =>
      this.withClient('reading the head position', (client) => emitPositionMarker(client, 'head')),
    );
  }

  private async withClient<T>(doing: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.closing) {
      throw new ServiceError(ErrorCode.SOURCE_UNREACHABLE, `${doing}: the source API was closed (shutting down)`);
    }
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw classifyPostgresSourceError(e, doing);
    }
    let failed = false;
    try {
      return await fn(client);
    } catch (e) {
      failed = true;
      throw classifyPostgresSourceError(e, doing);
    } finally {
      // After a failure the connection may be broken: the pool drops it and opens a new one when needed.
      client.release(failed);
    }
  }

  /** Coalesced: concurrent callers share one read that started after each of them called. */
  headPosition(): Promise<string> {
    return this.head.get();
  }

  async status(): Promise<{ connected: boolean; error?: string }> {
    try {
      await this.withClient('checking the connection', (client) => client.query('SELECT 1'));
      return { connected: true };
    } catch (e) {
      return { connected: false, error: (e as Error).message };
    }
  }

  lag(replicatedPosition: string | undefined): Promise<{ bytes?: number; seconds?: number }> {
    return this.withClient('measuring replication lag', async (client) => {
      const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      if (!replicatedPosition) return {};
      const bytes = parseLsn(rows[0]!.lsn) - parseLsn(replicatedPosition.split(':')[0]!);
      return { bytes: Number(bytes > 0n ? bytes : 0n) };
    });
  }

  schema(): Promise<{ schema: string; name: string; columns: { name: string; type: string }[] }[]> {
    return this.withClient('listing the schema', async (client) => {
      const { rows } = await client.query<{ schema: string; name: string; columns: { name: string; type: string }[] }>(`
        SELECT n.nspname AS schema, c.relname AS name,
               json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum) AS columns
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
         GROUP BY n.nspname, c.relname ORDER BY 1, 2`);
      return rows;
    });
  }

  /** Ends the pool once running queries finish; later calls fail. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.pool.end().catch(() => undefined);
    return this.closing;
  }
}
