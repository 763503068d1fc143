import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import pg from 'pg';
import { expect, it } from 'vitest';
import { migratePostgresStorage, STORAGE_VERSION } from '../src/index.js';
import { quoteIdentifier } from '../src/migrations/index.js';
import { freshSchemaName } from './postgres-test-storage.js';

describeIntegration('postgresStorage', 'Postgres storage migrations', (url) => {
  async function withClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  }

  it('creates the schema on an empty database, and running it twice is harmless', async () => {
    const schema = freshSchemaName('m');
    const first = await migratePostgresStorage({ uri: url, schema });
    expect(first).toMatchObject({ from: 0, to: STORAGE_VERSION });
    expect(first.applied).toHaveLength(STORAGE_VERSION);
    const second = await migratePostgresStorage({ uri: url, schema });
    expect(second).toEqual({ from: STORAGE_VERSION, to: STORAGE_VERSION, applied: [] });
    const tables = await withClient(async (c) =>
      (
        await c.query<{ table_name: string }>(
          'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1',
          [schema],
        )
      ).rows.map((r) => r.table_name),
    );
    expect(tables).toEqual([
      'bucket_checksums',
      'current_data',
      'custom_write_checkpoints',
      'migrations',
      'ops',
      'parameter_index',
      'source_tables',
      'sync_configs',
      'write_checkpoints',
    ]);
    await withClient((c) => c.query(`DROP SCHEMA ${quoteIdentifier(schema)} CASCADE`));
  });

  it('migrates concurrently started services once', async () => {
    const schema = freshSchemaName('m');
    const results = await Promise.all([1, 2, 3].map(() => migratePostgresStorage({ uri: url, schema })));
    expect(results.filter((r) => r.applied.length > 0)).toHaveLength(1);
    await withClient((c) => c.query(`DROP SCHEMA ${quoteIdentifier(schema)} CASCADE`));
  });

  it('refuses a schema written by a newer version of the service', async () => {
    const schema = freshSchemaName('m');
    await migratePostgresStorage({ uri: url, schema });
    await withClient((c) =>
      c.query(`INSERT INTO ${quoteIdentifier(schema)}.migrations (version, name) VALUES ($1, 'future')`, [
        STORAGE_VERSION + 1,
      ]),
    );
    const error = (await migratePostgresStorage({ uri: url, schema }).catch((e: unknown) => e)) as ServiceError;
    expect(error).toBeInstanceOf(ServiceError);
    expect(error.message).toMatch(/newer than this service/);
    await withClient((c) => c.query(`DROP SCHEMA ${quoteIdentifier(schema)} CASCADE`));
  });

  it('names an unreachable or wrong storage URI in a one-line error, with the password hidden', async () => {
    const unreachable = (await migratePostgresStorage({ uri: 'postgres://app:secret@127.0.0.1:1/nowhere' }).catch(
      (e: unknown) => e,
    )) as ServiceError;
    expect(unreachable.code).toBe(ErrorCode.STORAGE_UNREACHABLE);
    expect(unreachable.message).toContain('postgres://app:***@127.0.0.1:1/nowhere');
    expect(unreachable.message).not.toContain('secret');
    expect(unreachable.message.split('\n')).toHaveLength(1);

    const missingDb = (await migratePostgresStorage({ uri: url.replace(/\/[^/]*$/, '/no_such_database') }).catch(
      (e: unknown) => e,
    )) as ServiceError;
    expect(missingDb.code).toBe(ErrorCode.STORAGE_UNREACHABLE);
    expect(missingDb.retryable).toBe(false);
    expect(missingDb.message).toContain('no_such_database');

    const notAUri = (await migratePostgresStorage({ uri: 'mysql://x' }).catch((e: unknown) => e)) as ServiceError;
    expect(notAUri.code).toBe(ErrorCode.CONFIG_INVALID);
    expect(notAUri.message).toContain('storage.uri');
  });
});
