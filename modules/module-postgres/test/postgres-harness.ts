/**
 * The Postgres harness for the shared source contract suite: a fresh source schema covered by
 * a `FOR TABLES IN SCHEMA` publication (plus a staging schema for tables not replicated yet),
 * fresh Postgres bucket storage, and the module's own snapshotter and streamer.
 */
import { randomBytes } from 'node:crypto';
import { connectPostgres } from '@bucketsync/lib-postgres';
import { PostgresStorage } from '@bucketsync/module-postgres-storage';
import type {
  SourceHarness,
  SourceHarnessFactory,
  SourceKeyType,
  SourceRow,
  SourceValue,
} from '@bucketsync/service-core-tests';
import type pg from 'pg';
import { decodePostgresConfig, slotNameFor } from '../src/postgres-config.js';
import { postgresModule } from '../src/postgres-module.js';
import { quoteIdent } from '../src/postgres-replication-connection.js';

const KEY_DEFINITIONS: Record<SourceKeyType, string> = {
  integer: 'id int8 PRIMARY KEY',
  text: 'id text PRIMARY KEY',
  uuid: 'id uuid PRIMARY KEY',
  composite: 'region text, seq int8, PRIMARY KEY (region, seq)',
};

/** The contract suite's harness factory for a source server at `sourceUrl` and storage at `storageUrl`. */
export function postgresSourceHarness(options: { sourceUrl: string; storageUrl: string }): SourceHarnessFactory {
  return { name: 'postgres', create: () => createPostgresHarness(options) };
}

async function createPostgresHarness(options: { sourceUrl: string; storageUrl: string }): Promise<SourceHarness> {
  const id = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const schema = `sc_${id}`;
  const staging = `sc_${id}_staging`;
  const publication = `pub_${id}`;
  const source = await connectPostgres({ uri: options.sourceUrl });
  await source.query(`CREATE SCHEMA ${schema}; CREATE SCHEMA ${staging};`);
  await source.query(`CREATE PUBLICATION ${publication} FOR TABLES IN SCHEMA ${schema}`);
  const storage = await PostgresStorage.open({ uri: options.storageUrl, schema: `st_${id}` });
  const config = decodePostgresConfig({ type: 'postgresql', uri: options.sourceUrl, publication_name: publication });
  const context = (edition: number) => ({ config, replicationId: `c${id}`, edition });
  const sourceApi = postgresModule.createSourceApi(context(1));
  /** Where each table lives now: the replicated schema or staging. */
  const location = new Map<string, string>();
  const qualified = (table: string) => `${quoteIdent(location.get(table) ?? schema)}.${quoteIdent(table)}`;
  let closed = false;

  async function transaction(run: (client: pg.Client) => Promise<void>): Promise<void> {
    await source.query('BEGIN');
    try {
      await run(source);
      await source.query('COMMIT');
    } catch (e) {
      await source.query('ROLLBACK');
      throw e;
    }
  }

  const assignments = (row: SourceRow, offset: number) =>
    Object.keys(row).map((c, i) => `${quoteIdent(c)} = $${offset + i + 1}`);
  const values = (row: SourceRow): SourceValue[] => Object.values(row);

  return {
    storage,
    tableRef: (table) => `${schema}.${table}`,
    createSnapshotter: ({ edition }) => postgresModule.createSnapshotter(context(edition)),
    createStreamer: ({ edition }) => postgresModule.createStreamer(context(edition)),
    headPosition: () => sourceApi.headPosition(),

    async createTable(table, { key, replicated = true }) {
      location.set(table, replicated ? schema : staging);
      await source.query(
        `CREATE TABLE ${qualified(table)} (${KEY_DEFINITIONS[key]}, owner text NOT NULL, title text, n int8)`,
      );
    },

    async addToReplication(table) {
      await source.query(`ALTER TABLE ${qualified(table)} SET SCHEMA ${quoteIdent(schema)}`);
      location.set(table, schema);
    },

    async insert(table, rows) {
      if (rows.length === 0) return;
      await source.query(
        `INSERT INTO ${qualified(table)} SELECT * FROM json_populate_recordset(NULL::${qualified(table)}, $1)`,
        [JSON.stringify(rows)],
      );
    },

    async update(table, changes) {
      await transaction(async (client) => {
        for (const { key, set } of changes) {
          const sets = assignments(set, 0);
          const where = assignments(key, sets.length);
          await client.query(`UPDATE ${qualified(table)} SET ${sets.join(', ')} WHERE ${where.join(' AND ')}`, [
            ...values(set),
            ...values(key),
          ]);
        }
      });
    },

    async delete(table, keys) {
      await transaction(async (client) => {
        for (const key of keys) {
          await client.query(`DELETE FROM ${qualified(table)} WHERE ${assignments(key, 0).join(' AND ')}`, values(key));
        }
      });
    },

    async truncate(table) {
      await source.query(`TRUNCATE ${qualified(table)}`);
    },

    async addColumn(table, column) {
      const type = column.type === 'integer' ? 'int8' : 'text';
      const value = column.defaultValue;
      const defaultClause =
        value === undefined ? '' : ` DEFAULT ${typeof value === 'number' ? value : `'${value.replace(/'/g, "''")}'`}`;
      await source.query(
        `ALTER TABLE ${qualified(table)} ADD COLUMN ${quoteIdent(column.name)} ${type}${defaultClause}`,
      );
    },

    async dropColumn(table, column) {
      await source.query(`ALTER TABLE ${qualified(table)} DROP COLUMN ${quoteIdent(column)}`);
    },

    async setKey(table, columns) {
      const { rows } = await source.query<{ name: string }>(
        `SELECT conname AS name FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'`,
        [qualified(table)],
      );
      const drop = rows[0] ? `DROP CONSTRAINT ${quoteIdent(rows[0].name)}, ` : '';
      await source.query(
        `ALTER TABLE ${qualified(table)} ${drop}ADD PRIMARY KEY (${columns.map(quoteIdent).join(', ')})`,
      );
    },

    async rows(table) {
      const { rows } = await source.query<{ row: SourceRow }>(
        `SELECT row_to_json(t) AS row FROM ${qualified(table)} t`,
      );
      return rows.map((r) => r.row);
    },

    async close() {
      if (closed) return;
      closed = true;
      // A walsender may hold the slot for a moment after its connection closed: end it, then drop the slot.
      const slot = slotNameFor(`c${id}`);
      await source.query(
        'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active',
        [slot],
      );
      const streamer = postgresModule.createStreamer(context(1));
      for (let attempt = 0; ; attempt++) {
        try {
          await streamer.destroy();
          break;
        } catch (e) {
          if (attempt >= 20) throw e;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      await sourceApi.close();
      await source.query(
        `DROP SCHEMA ${schema} CASCADE; DROP SCHEMA ${staging} CASCADE; DROP PUBLICATION ${publication}`,
      );
      await source.end();
      await storage.teardown().catch(() => undefined);
      await storage.close();
    },
  };
}
