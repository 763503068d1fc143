import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import {
  column,
  PowerSyncDatabase,
  Schema,
  SyncStreamConnectionMethod,
  Table,
  type AbstractPowerSyncDatabase,
  type PowerSyncBackendConnector,
} from '@powersync/node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitUntil } from './fault-harness.js';
import { startService, type ServiceHarness } from './service-harness.js';

const SETUP = `
  CREATE TABLE lists (id text PRIMARY KEY, owner text NOT NULL, name text);
  CREATE TABLE todos (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), list_id text NOT NULL, owner text NOT NULL,
                      description text, done bool NOT NULL DEFAULT false, server_note text DEFAULT 'from server');
  INSERT INTO lists VALUES ('l1', 'alice', 'Groceries'), ('l2', 'alice', 'Work'), ('l3', 'bob', 'Garden');
  INSERT INTO todos (list_id, owner, description)
    SELECT 'l' || (1 + n % 3), CASE WHEN n % 3 = 2 THEN 'bob' ELSE 'alice' END, 'todo ' || n FROM generate_series(1, 300) n;
`;
const SYNC_CONFIG = `
bucket_definitions:
  user_lists:
    priority: 0
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT * FROM $schema.lists WHERE owner = bucket.owner
  user_todos:
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT id, list_id, owner, description, done, server_note FROM $schema.todos WHERE owner = bucket.owner
streams:
  list_todos:
    query: SELECT id, list_id, description FROM $schema.todos WHERE list_id = subscription.parameter('list')
`;
const schema = new Schema({
  lists: new Table({ owner: column.text, name: column.text }),
  todos: new Table({
    list_id: column.text,
    owner: column.text,
    description: column.text,
    done: column.integer,
    server_note: column.text,
  }),
});

let dbCounter = 0;
function openDatabase(): PowerSyncDatabase {
  const dir = mkdtempSync(path.join(tmpdir(), 'powersync-client-'));
  // A distinct file name per database: the client locks by file name.
  return new PowerSyncDatabase({
    schema,
    database: { dbFilename: `client-${process.pid}-${++dbCounter}.db`, dbLocation: dir },
  });
}

async function sourceRows(h: ServiceHarness, owner: string): Promise<string[]> {
  const { rows } = await h.source.query<{ id: string; description: string }>(
    `SELECT id::text, description FROM ${h.schema}.todos WHERE owner = $1 ORDER BY id`,
    [owner],
  );
  return rows.map((r) => `${r.id}:${r.description}`);
}

async function clientRows(db: AbstractPowerSyncDatabase, owner: string): Promise<string[]> {
  const rows = await db.getAll<{ id: string; description: string }>(
    'SELECT id, description FROM todos WHERE owner = ? ORDER BY id',
    [owner],
  );
  return rows.map((r) => `${r.id}:${r.description}`);
}

for (const encoding of ['BSON', 'NDJSON'] as const) {
  describeIntegration('postgres', `@powersync/node syncs from BucketSync over HTTP (${encoding})`, (sourceUrl) => {
    let h: ServiceHarness;
    beforeAll(async () => {
      h = await startService({
        sourceUrl,
        storageUrl: process.env.PG_STORAGE_TEST_URL!,
        setupSql: SETUP,
        syncConfig: SYNC_CONFIG,
        extraConfig: encoding === 'NDJSON' ? 'api:\n  bson: false\n' : '',
      });
    }, 60_000);
    afterAll(async () => {
      expect(await h.stop()).toBe(0);
    }, 30_000);

    it('first sync equals the source, and changes, deletes and moves between buckets arrive', async () => {
      const db = openDatabase();
      const connector: PowerSyncBackendConnector = {
        fetchCredentials: async () => ({ endpoint: h.endpoint, token: await h.token('alice') }),
        uploadData: async () => undefined,
      };
      await db.connect(connector, { connectionMethod: SyncStreamConnectionMethod.HTTP });
      try {
        await db.waitForFirstSync();
        expect(await clientRows(db, 'alice')).toEqual(await sourceRows(h, 'alice'));
        expect((await db.getAll('SELECT id FROM lists ORDER BY id')).map((r) => (r as { id: string }).id)).toEqual([
          'l1',
          'l2',
        ]);

        await h.source.query(`
          INSERT INTO ${h.schema}.todos (list_id, owner, description) VALUES ('l1', 'alice', 'brand new');
          UPDATE ${h.schema}.todos SET description = 'edited' WHERE description = 'todo 1';
          DELETE FROM ${h.schema}.todos WHERE description = 'todo 3';
          UPDATE ${h.schema}.todos SET owner = 'alice' WHERE description = 'todo 2';  -- bob's row moves to alice
          UPDATE ${h.schema}.todos SET owner = 'bob' WHERE description = 'todo 4';    -- alice's row moves to bob`);
        const expected = await sourceRows(h, 'alice');
        await waitUntil(
          'the changes to arrive',
          () => clientRows(db, 'alice'),
          (rows) => rows.join() === expected.join(),
        );
        expect(await db.getAll("SELECT * FROM todos WHERE description = 'todo 4'")).toEqual([]);
      } finally {
        await db.disconnectAndClear();
        await db.close();
      }
    }, 60_000);

    it('a write uploaded through uploadData round-trips through a write checkpoint', async () => {
      const db = openDatabase();
      let uploads = 0;
      const connector: PowerSyncBackendConnector = {
        fetchCredentials: async () => ({ endpoint: h.endpoint, token: await h.token('alice') }),
        uploadData: async (database) => {
          const transaction = await database.getNextCrudTransaction();
          if (!transaction) return;
          for (const op of transaction.crud) {
            if (op.table !== 'todos' || op.op !== 'PUT') continue;
            await h.source.query(
              `INSERT INTO ${h.schema}.todos (id, list_id, owner, description) VALUES ($1, $2, $3, $4)`,
              [op.id, op.opData?.list_id, op.opData?.owner, op.opData?.description],
            );
          }
          uploads++;
          await transaction.complete();
        },
      };
      await db.connect(connector, { connectionMethod: SyncStreamConnectionMethod.HTTP });
      try {
        await db.waitForFirstSync();
        const id = '00000000-0000-4000-8000-000000000042';
        await db.execute('INSERT INTO todos (id, list_id, owner, description) VALUES (?, ?, ?, ?)', [
          id,
          'l1',
          'alice',
          'from the client',
        ]);
        // The server fills server_note (a column default): seeing it locally proves the row came back
        // through the stream, applied once the write checkpoint was reached.
        const row = await waitUntil(
          'the uploaded row to come back from the server',
          () => db.getOptional<{ server_note: string | null }>('SELECT server_note FROM todos WHERE id = ?', [id]),
          (r) => r?.server_note === 'from server',
        );
        expect(row?.server_note).toBe('from server');
        expect(uploads).toBe(1);
        expect(await db.getNextCrudTransaction()).toBeNull();
        expect(h.output()).not.toContain('"level":"error"');
      } finally {
        await db.disconnectAndClear();
        await db.close();
      }
    }, 60_000);

    if (encoding === 'BSON') {
      it('an expired token is refreshed and syncing continues', async () => {
        const db = openDatabase();
        let fetches = 0;
        const connector: PowerSyncBackendConnector = {
          fetchCredentials: async () => {
            fetches++;
            return {
              endpoint: h.endpoint,
              token: await h.token('bob', { expiresInSeconds: fetches === 1 ? 3 : 3600 }),
            };
          },
          uploadData: async () => undefined,
        };
        await db.connect(connector, { connectionMethod: SyncStreamConnectionMethod.HTTP, retryDelayMs: 200 });
        try {
          await db.waitForFirstSync();
          await waitUntil(
            'a second token fetch',
            async () => fetches,
            (n) => n >= 2,
            30_000,
          );
          await h.source.query(
            `INSERT INTO ${h.schema}.todos (list_id, owner, description) VALUES ('l3', 'bob', 'after refresh')`,
          );
          await waitUntil(
            'a change after the refresh',
            () => db.getAll("SELECT id FROM todos WHERE description = 'after refresh'"),
            (rows) => rows.length === 1,
          );
        } finally {
          await db.disconnectAndClear();
          await db.close();
        }
      }, 60_000);

      it('a stream subscribed with parameters syncs its rows, and unsubscribing removes them', async () => {
        const db = openDatabase();
        const connector: PowerSyncBackendConnector = {
          fetchCredentials: async () => ({ endpoint: h.endpoint, token: await h.token('carol') }),
          uploadData: async () => undefined,
        };
        await db.connect(connector, { connectionMethod: SyncStreamConnectionMethod.HTTP });
        // Bounded waits that say where they stopped and what the SDK and the service saw.
        const within = async (what: string, wait: Promise<unknown>) => {
          let timer: NodeJS.Timeout | undefined;
          const late = new Promise((_, reject) => {
            timer = setTimeout(() => {
              const status = db.currentStatus.getMessage();
              const log = h.output().split('\n').slice(-15).join('\n');
              reject(new Error(`${what} did not happen within 20 s; SDK status ${status}; service log:\n${log}`));
            }, 20_000);
          });
          try {
            await Promise.race([wait, late]);
          } finally {
            clearTimeout(timer);
          }
        };
        try {
          await within('the first sync', db.waitForFirstSync());
          expect(await db.getAll('SELECT id FROM todos')).toEqual([]);
          // ttl 0: evicted as soon as it is unsubscribed (the default keeps the rows cached for a day).
          const subscription = await db.syncStream('list_todos', { list: 'l3' }).subscribe({ ttl: 0 });
          await within("the stream subscription's first sync", subscription.waitForFirstSync());
          const { rows } = await h.source.query(
            `SELECT count(*)::int AS n FROM ${h.schema}.todos WHERE list_id = 'l3'`,
          );
          expect((await db.getAll('SELECT id FROM todos')).length).toBe(rows[0].n);
          subscription.unsubscribe();
          await waitUntil(
            'the stream rows to go',
            () => db.getAll('SELECT id FROM todos'),
            (r) => r.length === 0,
            30_000,
          );
        } finally {
          await db.disconnectAndClear();
          await db.close();
        }
      }, 60_000);

      it('completes priority 0 before the rest', async () => {
        const db = openDatabase();
        const connector: PowerSyncBackendConnector = {
          fetchCredentials: async () => ({ endpoint: h.endpoint, token: await h.token('alice') }),
          uploadData: async () => undefined,
        };
        const order: string[] = [];
        const dispose = db.registerListener({
          statusChanged: (status) => {
            // statusForPriority is typed as possibly undefined by the SDK.
            if (status.statusForPriority(0)?.hasSynced && !order.includes('p0')) order.push('p0');
            if (status.hasSynced && !order.includes('all')) order.push('all');
          },
        });
        await db.connect(connector, { connectionMethod: SyncStreamConnectionMethod.HTTP });
        try {
          await db.waitForFirstSync({ priority: 0 });
          expect((await db.getAll('SELECT id FROM lists')).length).toBe(2);
          await db.waitForFirstSync();
          expect(order).toEqual(['p0', 'all']);
        } finally {
          dispose();
          await db.disconnectAndClear();
          await db.close();
        }
      }, 60_000);
    }
  });
}
