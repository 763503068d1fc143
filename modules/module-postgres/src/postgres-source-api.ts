/**
 * What routes need from a Postgres source: the head position for write checkpoints (a
 * logical message, so the stream observes it even when idle), status, lag and the schema.
 */
import { connectPostgres } from '@bucketsync/lib-postgres';
import type { SourceApi, SourceContext } from '@bucketsync/service-core';
import type pg from 'pg';
import type { PostgresSourceConfig } from './postgres-config.js';
import { classifyPostgresSourceError } from './postgres-errors.js';
import { parseLsn } from './postgres-position.js';
import { emitPositionMarker } from './postgres-snapshotter.js';

export class PostgresSourceApi implements SourceApi {
  constructor(private readonly context: SourceContext<PostgresSourceConfig>) {}

  private async withClient<T>(doing: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    let client: pg.Client | undefined;
    try {
      client = await connectPostgres({ uri: this.context.config.uri, applicationName: 'bucketsync-api' });
      return await fn(client);
    } catch (e) {
      throw classifyPostgresSourceError(e, doing);
    } finally {
      await client?.end().catch(() => undefined);
    }
  }

  headPosition(): Promise<string> {
    return this.withClient('reading the head position', (client) => emitPositionMarker(client, 'head'));
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

  async close(): Promise<void> {}
}
