/**
 * Faults with clear expectations, each against the built service and real Postgres servers:
 * the replication slot lost (dropped or invalidated), bucket storage down for 30 s, a row over
 * the size limit, and an invalid sync config deployed. See docs/self-hosting.md, "When something fails".
 */
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
  type LogRecord,
  type PowerSyncBackendConnector,
} from '@powersync/node';
import pg from 'pg';
import { expect, it, onTestFailed } from 'vitest';
import {
  logsWith,
  serviceSlots,
  startThrowawayPostgres,
  syncConfigStates,
  SyncStreamReader,
  waitUntil,
  type ThrowawayPostgres,
} from './fault-harness.js';
import { runServiceToExit, startService, type ServiceHarness } from './service-harness.js';

const SETUP = `
  CREATE TABLE items (id int8 PRIMARY KEY, owner text NOT NULL, note text);
  INSERT INTO items SELECT n, 'u' || (n % 2), 'row ' || n FROM generate_series(1, 40) n;
`;
const SYNC_CONFIG = `
bucket_definitions:
  mine:
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT * FROM $schema.items WHERE owner = bucket.owner
`;

/** The source rows of `owner` as `<id>:<note>`, in the order SyncStreamReader.rows uses. */
async function sourceRows(h: ServiceHarness, owner: string): Promise<string[]> {
  const { rows } = await h.source.query<{ row: string }>(
    `SELECT id::text || ':' || note AS row FROM ${h.schema}.items WHERE owner = $1`,
    [owner],
  );
  return rows.map((r) => r.row).sort();
}

const clientSchema = new Schema({ items: new Table({ owner: column.text, note: column.text }) });

let clientCounter = 0;
/**
 * A @powersync/node database in a fresh folder (a distinct file name each: the client locks by
 * name). What the SDK logs goes to `log`, not the test output: a fault test makes it log errors
 * with stack traces on purpose, and a green run should not look like a red one.
 */
function openClientDatabase(log: LogRecord[] = []): PowerSyncDatabase {
  const dir = mkdtempSync(path.join(tmpdir(), 'faults-client-'));
  return new PowerSyncDatabase({
    schema: clientSchema,
    database: { dbFilename: `faults-${process.pid}-${++clientCounter}.db`, dbLocation: dir },
    logger: { log: (record) => log.push(record) },
  });
}

/** The client's rows as `<id>:<note>`, sorted as sourceRows sorts. */
async function clientRows(db: PowerSyncDatabase): Promise<string[]> {
  const rows = await db.getAll<{ id: string; note: string }>(`SELECT id, note FROM items WHERE owner = 'u1'`);
  return rows.map((r) => `${r.id}:${r.note}`).sort();
}

describeIntegration('postgres', 'faults with clear expectations (real service, real Postgres)', (sharedSourceUrl) => {
  const sharedStorageUrl = process.env.PG_STORAGE_TEST_URL!;

  for (const loss of ['dropped', 'invalidated'] as const) {
    it(`replication slot ${loss}: logs the cause, serves the old copy during a fresh one, then streams again`, async () => {
      // Invalidation needs a server that keeps little WAL for slots: a cluster of this test.
      let cluster: ThrowawayPostgres | undefined;
      if (loss === 'invalidated') cluster = await startThrowawayPostgres({ max_slot_wal_keep_size: '1MB' });
      const sourceUrl = cluster?.url ?? sharedSourceUrl;
      const h = await startService({
        sourceUrl,
        storageUrl: sharedStorageUrl,
        setupSql: `${SETUP} CREATE TABLE unsynced (n serial PRIMARY KEY);`,
        syncConfig: SYNC_CONFIG,
      });
      const blocker = new pg.Client({ connectionString: sourceUrl });
      await blocker.connect();
      try {
        const token = await h.token('u1');
        const before = await sourceRows(h, 'u1');
        const connected = await SyncStreamReader.open(h.endpoint, token);
        await connected.waitForComplete();
        expect(connected.rows('note')).toEqual(before);
        const [oldSlot] = await serviceSlots(h, sharedStorageUrl);
        expect(oldSlot?.active).toBe(true);
        const oldName = oldSlot!.slot_name;

        // An open transaction that wrote something: it holds the slot's WAL back (for
        // invalidation) and makes creating the fresh copy's slot wait until it ends, so the
        // checks "during the fresh copy" below run while it deterministically has not finished.
        await blocker.query(`BEGIN; INSERT INTO ${h.schema}.unsynced DEFAULT VALUES`);

        if (loss === 'dropped') {
          await waitUntil(
            `slot ${oldName} to be dropped`,
            async () => {
              await h.source.query(
                'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL',
                [oldName],
              );
              // Fails while the service still (or again) holds the slot; tried again.
              await h.source.query('SELECT pg_drop_replication_slot($1)', [oldName]);
              return true;
            },
            (dropped) => dropped,
          );
        } else {
          // WAL past the slot's restart position in a newer segment, then a checkpoint: the
          // server invalidates the slot (terminating the walsender that holds it).
          await waitUntil(
            `slot ${oldName} to be invalidated`,
            async () => {
              await h.source.query(`INSERT INTO ${h.schema}.unsynced DEFAULT VALUES`);
              await h.source.query('SELECT pg_switch_wal()');
              await h.source.query('CHECKPOINT');
              const { rows } = await h.source.query<{ wal_status: string }>(
                'SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1',
                [oldName],
              );
              return rows[0]?.wal_status;
            },
            (status) => status === 'lost',
          );
        }

        // A clear error naming the slot and the cause.
        const cause = `it was ${loss}`;
        await waitUntil(
          `an error log naming slot ${oldName} and "${cause}"`,
          () => logsWith(h.output(), 'error', oldName, cause),
          (lines) => lines.length > 0,
        );

        // A fresh copy is started as a new processing config while the old one stays active.
        const states = await waitUntil(
          'a new processing config',
          () => syncConfigStates(sharedStorageUrl, h),
          (s) => s.some((c) => c.state === 'processing'),
        );
        const oldConfig = states.find((c) => c.state === 'active')!;
        const newConfig = states.find((c) => c.state === 'processing')!;
        expect(newConfig.id).toBeGreaterThan(oldConfig.id);

        // The fresh copy's slot waits for the open transaction.
        const freshSlot = oldName.replace(/_c\d+$/, `_c${newConfig.id}`);
        await waitUntil(
          `the fresh copy to be creating slot ${freshSlot}`,
          async () =>
            (
              await h.source.query<{ n: number }>(
                "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE $1 AND state = 'active'",
                [`CREATE_REPLICATION_SLOT "${freshSlot}"%`],
              )
            ).rows[0]!.n,
          (n) => n === 1,
        );

        // A row written now is in no copy yet: the fresh one must bring it.
        await h.source.query(`INSERT INTO ${h.schema}.items VALUES (1001, 'u1', 'during the fresh copy')`);

        // Meanwhile clients are served from the old copy: the connected stream keeps its rows,
        // and a new connection gets a full checkpoint of the old data.
        const during = await SyncStreamReader.open(h.endpoint, token);
        await during.waitForComplete();
        expect(during.rows('note')).toEqual(before);
        expect(connected.ended).toBe(false);
        expect(connected.rows('note')).toEqual(before);
        // ...and all that happened before the fresh copy became active.
        expect(await syncConfigStates(sharedStorageUrl, h)).toEqual(states);
        during.close();

        await blocker.query('COMMIT');

        // The fresh copy becomes active: connected streams end so clients reconnect to it.
        await waitUntil(
          'the connected stream to end',
          () => connected.ended,
          (ended) => ended,
          30_000,
        );
        const after = await waitUntil(
          'the fresh copy to be active and the old one cleaned up',
          () => syncConfigStates(sharedStorageUrl, h),
          (s) =>
            s.find((c) => c.id === newConfig.id)?.state === 'active' &&
            s.find((c) => c.id === oldConfig.id)?.state === 'terminated',
        );
        expect(after.filter((c) => c.state === 'active')).toEqual([{ id: newConfig.id, state: 'active' }]);
        // A new slot replicates the fresh copy; the lost one is gone.
        const slots = await serviceSlots(h, sharedStorageUrl);
        expect(slots.map((s) => s.slot_name)).toEqual([freshSlot]);

        // New source writes reach clients of the fresh copy, with the row written during it.
        const reconnected = await SyncStreamReader.open(h.endpoint, token);
        await reconnected.waitForComplete();
        expect(reconnected.rows('note')).toEqual(await sourceRows(h, 'u1'));
        await h.source.query(`INSERT INTO ${h.schema}.items VALUES (1002, 'u1', 'after the fresh copy')`);
        const expected = await sourceRows(h, 'u1');
        await waitUntil(
          'the new write to reach the client',
          () => reconnected.rows('note'),
          (rows) => rows.join() === expected.join(),
        );
        expect(expected).toContain('1002:after the fresh copy');
        reconnected.close();
        expect(h.exitCode()).toBeNull();
      } finally {
        await blocker.end().catch(() => undefined);
        const output = h.output();
        const code = await h.stop();
        await cluster?.stop();
        expect(code, output.split('\n').slice(-12).join('\n')).toBe(0);
      }
    }, 60_000);
  }

  it('bucket storage down for 30 s: the service keeps running and retries, the client reconnects, nothing is lost', async () => {
    const storage = await startThrowawayPostgres();
    let h: ServiceHarness | undefined;
    // What the SDK says during the outage (failed requests, with stack traces) stays out of a
    // green run's output; a failure prints it.
    const sdkLog: LogRecord[] = [];
    onTestFailed(() => {
      for (const r of sdkLog)
        console.error(`[sdk ${r.level}] ${r.message} ${r.error === undefined ? '' : String(r.error)}`);
    });
    const db = openClientDatabase(sdkLog);
    try {
      h = await startService({
        sourceUrl: sharedSourceUrl,
        storageUrl: storage.url,
        setupSql: SETUP,
        syncConfig: SYNC_CONFIG,
      });
      const service = h;
      const connector: PowerSyncBackendConnector = {
        fetchCredentials: async () => ({ endpoint: service.endpoint, token: await service.token('u1') }),
        uploadData: async () => undefined,
      };
      await db.connect(connector, { connectionMethod: SyncStreamConnectionMethod.HTTP, retryDelayMs: 500 });
      await db.waitForFirstSync();
      expect(await clientRows(db)).toEqual(await sourceRows(h, 'u1'));

      const outage = storage.server.restart!({ downMs: 30_000 });
      await waitUntil(
        'bucket storage to be down',
        async () => {
          const probe = new pg.Client({ connectionString: storage.url });
          try {
            await probe.connect();
            return false;
          } catch {
            return true;
          } finally {
            await probe.end().catch(() => undefined);
          }
        },
        (down) => down,
      );
      // Source writes while storage is down: inserts, an update, a delete, in several transactions.
      for (let i = 0; i < 10; i++) {
        await h.source.query(`INSERT INTO ${h.schema}.items VALUES (${1001 + i}, 'u1', 'during the outage ${i}')`);
      }
      await h.source.query(`UPDATE ${h.schema}.items SET note = 'updated during the outage' WHERE id = 1`);
      await h.source.query(`DELETE FROM ${h.schema}.items WHERE id = 3`);
      await outage;

      const expected = await sourceRows(h, 'u1');
      expect(expected).toContain('1:updated during the outage');
      await waitUntil(
        'the writes made during the outage to reach the client',
        () => clientRows(db),
        (rows) => rows.join() === expected.join(),
        90_000,
      );
      // ...and later writes too: replication and the client's stream are both back.
      await h.source.query(`INSERT INTO ${h.schema}.items VALUES (2001, 'u1', 'after the outage')`);
      const final = await sourceRows(h, 'u1');
      await waitUntil(
        'a write after the outage to reach the client',
        () => clientRows(db),
        (rows) => rows.join() === final.join(),
      );
      expect(db.currentStatus.connected).toBe(true);
      expect(h.exitCode()).toBeNull();
      // It said what was wrong and that it retries.
      expect(logsWith(h.output(), 'warn', 'retrying', 'BS4001').length).toBeGreaterThan(0);
    } finally {
      await db.disconnectAndClear().catch(() => undefined);
      await db.close().catch(() => undefined);
      const output = h?.output() ?? '';
      const code = await h?.stop();
      await storage.stop();
      if (h) expect(code, output.split('\n').slice(-12).join('\n')).toBe(0);
    }
  }, 150_000);

  it('a row over max_row_bytes: skipped with an error naming the table and row, in the snapshot and the stream', async () => {
    const big = (id: number) => `(${id}, 'u1', repeat('x', 3000))`;
    const h = await startService({
      sourceUrl: sharedSourceUrl,
      storageUrl: sharedStorageUrl,
      // Row 7 is over the limit when it is copied.
      setupSql: `${SETUP} UPDATE items SET note = repeat('x', 3000) WHERE id = 7;`,
      syncConfig: SYNC_CONFIG,
      storageConfig: { max_row_bytes: 1024 },
    });
    try {
      const expectSkipped = (id: number) =>
        waitUntil(
          `an error log naming ${h.schema}.items and row ${id}`,
          () => logsWith(h.output(), 'error', `row [${id}] of ${h.schema}.items`, 'limit 1024'),
          (lines) => lines.length > 0,
        );
      const small = async () => {
        const { rows } = await h.source.query<{ row: string }>(
          `SELECT id::text || ':' || note AS row FROM ${h.schema}.items WHERE owner = 'u1' AND length(note) < 100`,
        );
        return rows.map((r) => r.row).sort();
      };
      await expectSkipped(7);
      const stream = await SyncStreamReader.open(h.endpoint, await h.token('u1'));
      await stream.waitForComplete();
      expect(stream.rows('note')).toEqual(await small());
      expect(stream.rows('note').some((r) => r.startsWith('7:'))).toBe(false);

      // Streamed: the oversized row is skipped, the normal row after it arrives.
      await h.source.query(`INSERT INTO ${h.schema}.items VALUES ${big(1001)}`);
      await h.source.query(`INSERT INTO ${h.schema}.items VALUES (1002, 'u1', 'after the big one')`);
      await expectSkipped(1001);
      const expected = await small();
      expect(expected).toContain('1002:after the big one');
      await waitUntil(
        'the normal row to arrive',
        () => stream.rows('note'),
        (rows) => rows.join() === expected.join(),
      );
      // An update making a synced row too large removes it rather than keep a stale version.
      await h.source.query(`UPDATE ${h.schema}.items SET note = repeat('y', 3000) WHERE id = 1`);
      await h.source.query(`INSERT INTO ${h.schema}.items VALUES (1003, 'u1', 'after the update')`);
      await expectSkipped(1);
      const afterUpdate = await small();
      await waitUntil(
        'the update to remove the row',
        () => stream.rows('note'),
        (rows) => rows.join() === afterUpdate.join(),
      );
      expect(afterUpdate.some((r) => r.startsWith('1:'))).toBe(false);
      stream.close();
      expect(h.exitCode()).toBeNull();
    } finally {
      const output = h.output();
      const code = await h.stop();
      expect(code, output.split('\n').slice(-12).join('\n')).toBe(0);
    }
  }, 60_000);

  it('an invalid sync config deployed: refused with file:line:col diagnostics; the active config keeps serving', async () => {
    const h = await startService({
      sourceUrl: sharedSourceUrl,
      storageUrl: sharedStorageUrl,
      setupSql: SETUP,
      syncConfig: SYNC_CONFIG,
    });
    try {
      const token = await h.token('u1');
      const connected = await SyncStreamReader.open(h.endpoint, token);
      await connected.waitForComplete();
      expect(connected.rows('note')).toEqual(await sourceRows(h, 'u1'));

      const valid = SYNC_CONFIG.trimStart().split('\n').slice(0, 5);
      const invalid = [
        // An unknown function in the second data query (line 6, column 20).
        {
          text: [
            ...valid,
            '      - SELECT id, no_such_function(note) AS x FROM $schema.items WHERE owner = bucket.owner',
          ],
          diagnostic: /sync\.yaml:6:20 Unknown function no_such_function\(\)/,
        },
        // Broken YAML (line 6, column 1).
        { text: [...valid, '     bad: ['], diagnostic: /sync\.yaml:6:1 YAML syntax error: / },
      ];
      for (const { text, diagnostic } of invalid) {
        const refused = await runServiceToExit({
          sourceUrl: sharedSourceUrl,
          storageUrl: sharedStorageUrl,
          setupSql: '',
          syncConfig: `${text.join('\n')}\n`,
          sharing: h,
        });
        expect(refused.code, refused.output).not.toBe(0);
        expect(refused.code, refused.output).not.toBeNull();
        const errors = logsWith(refused.output, 'error').map((l) => l.message);
        expect(errors).toContainEqual(expect.stringMatching(diagnostic));
        expect(errors.at(-1)).toContain('the sync config has errors');
      }
      // Nothing was deployed: the active config is still the only one.
      expect(await syncConfigStates(sharedStorageUrl, h)).toEqual([{ id: 1, state: 'active' }]);

      // The first process keeps serving: the open stream gets new writes, a new one gets everything.
      await h.source.query(`INSERT INTO ${h.schema}.items VALUES (1001, 'u1', 'after the refused deploy')`);
      const expected = await sourceRows(h, 'u1');
      expect(expected).toContain('1001:after the refused deploy');
      await waitUntil(
        'the new write on the open stream',
        () => connected.rows('note'),
        (rows) => rows.join() === expected.join(),
      );
      expect(connected.ended).toBe(false);
      const fresh = await SyncStreamReader.open(h.endpoint, token);
      await fresh.waitForComplete();
      expect(fresh.rows('note')).toEqual(expected);
      fresh.close();
      connected.close();
    } finally {
      const output = h.output();
      const code = await h.stop();
      expect(code, output.split('\n').slice(-12).join('\n')).toBe(0);
    }
  }, 60_000);
});
