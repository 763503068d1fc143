import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startPostgres } from '@bucketsync/dev-databases';
import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { createLogger } from '@bucketsync/lib-services';
import { ReplicationCoordinator } from '@bucketsync/service-core';
import { ServiceError } from '@bucketsync/service-errors';
import { afterEach, expect, it } from 'vitest';
import { decodePostgresConfig } from '../src/postgres-config.js';
import { listPostgresTables } from '../src/postgres-table-catalog.js';
import { PostgresSnapshotter } from '../src/postgres-snapshotter.js';
import { PostgresStreamer } from '../src/postgres-streamer.js';
import { createReplicationHarness, type ReplicationHarness } from './replication-harness.js';

const context = (uri: string) => ({
  config: decodePostgresConfig({ type: 'postgresql', uri }),
  replicationId: `errors_${process.pid}`,
  edition: 1,
});

describeIntegration('postgres', 'Postgres source errors say what is wrong and how to fix it', (sourceUrl) => {
  const storageUrl = process.env.PG_STORAGE_TEST_URL!;
  let h: ReplicationHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('wal_level is not logical', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bucketsync-walrep-'));
    chmodSync(dir, 0o755); // the server runs as the postgres user when tests run as root
    const server = await startPostgres({
      dataDir: path.join(dir, 'postgres'),
      port: await freePort(),
      databases: ['app'],
      settings: { wal_level: 'replica' },
    });
    try {
      const streamer = new PostgresStreamer(context(server.databaseUrl('app')));
      const error = await streamer.createStartPosition().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ServiceError);
      expect((error as ServiceError).code).toBe('BS3003');
      expect((error as ServiceError).message).toContain(
        'wal_level is "replica", but logical replication needs wal_level = logical. Run ALTER SYSTEM SET wal_level = logical;',
      );
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('the user lacks the REPLICATION attribute', async () => {
    const admin = await import('pg').then((m) => new m.default.Client({ connectionString: sourceUrl }));
    await admin.connect();
    const role = `norepl_${process.pid}`;
    await admin.query(`DROP ROLE IF EXISTS ${role}; CREATE ROLE ${role} LOGIN`);
    try {
      const url = new URL(sourceUrl);
      url.username = role;
      const error = await new PostgresStreamer(context(url.toString())).createStartPosition().catch((e: unknown) => e);
      expect((error as ServiceError).message).toContain(
        `the user "${role}" may not start logical replication. Run ALTER ROLE "${role}" WITH REPLICATION;`,
      );
    } finally {
      await admin.query(`DROP ROLE ${role}`);
      await admin.end();
    }
  });

  it('a table has no primary key or replica identity', async () => {
    h = await createReplicationHarness({
      sourceUrl,
      storageUrl,
      setupSql: 'CREATE TABLE nokey (a int, b text);',
      syncConfig: 'bucket_definitions:\n  all:\n    data:\n      - SELECT a AS id, b FROM $schema.nokey\n',
    });
    const error = await listPostgresTables(
      h.source,
      [{ schema: h.schema, name: 'nokey', isWildcard: false }],
      'default',
    ).catch((e: unknown) => e);
    expect((error as ServiceError).message).toContain(
      `table ${h.schema}.nokey has no primary key or replica identity, so its updates and deletes cannot be replicated. ` +
        `Add a primary key, or run: ALTER TABLE "${h.schema}"."nokey" REPLICA IDENTITY FULL;`,
    );
  });

  it('a published table the sync config does not use may lack a key (an insert-only log)', async () => {
    h = await createReplicationHarness({
      sourceUrl,
      storageUrl,
      setupSql: 'CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE audit (at timestamptz, what text);',
      syncConfig: 'bucket_definitions:\n  all:\n    data: [SELECT * FROM $schema.t]\n',
    });
    const { done, stop } = h.start({ retry: { initialDelayMs: 50, maxDelayMs: 50 } });
    await h.waitForHead();
    // Rows of the key-less table reach the stream (the publication covers the schema).
    await h.source.query(`INSERT INTO ${h.schema}.audit VALUES (now(), 'a'); INSERT INTO ${h.schema}.t VALUES (2);`);
    await h.source.query(`INSERT INTO ${h.schema}.audit VALUES (now(), 'b'); INSERT INTO ${h.schema}.t VALUES (3);`);
    await h.waitForHead();
    expect([...(await h.bucket('all[]')).keys()].sort()).toEqual(['2', '3']);
    let failed = false;
    void done.catch(() => (failed = true));
    await new Promise((r) => setImmediate(r));
    expect(failed).toBe(false);
    await stop();
  });

  it('the slot disappears while replicating: history loss, naming the cause and max_slot_wal_keep_size', async () => {
    h = await createReplicationHarness({
      sourceUrl,
      storageUrl,
      setupSql: 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);',
      syncConfig: 'bucket_definitions:\n  all:\n    data: [SELECT * FROM $schema.t]\n',
    });
    const { done } = h.start({ retry: { initialDelayMs: 50, maxDelayMs: 50 } });
    await h.waitForHead();
    const slot = (
      await h.source.query<{ slot_name: string }>(
        "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'bucketsync_t%' AND active",
      )
    ).rows[0]!.slot_name;
    // Kill the walsender, then drop the slot before the coordinator reconnects.
    for (let i = 0; i < 100; i++) {
      await h.source.query(
        'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active',
        [slot],
      );
      const dropped = await h.source
        .query('SELECT pg_drop_replication_slot($1)', [slot])
        .then(() => true)
        .catch(() => false);
      if (dropped) break;
    }
    const error = await done.catch((e: unknown) => e);
    expect((error as ServiceError).message).toContain('is gone');
    expect((error as ServiceError).code).toBe('BS3002');
    expect((error as ServiceError).message).toContain(`replication slot "${slot}" is gone or was invalidated`);
    expect((error as ServiceError).message).toContain('max_slot_wal_keep_size');
  }, 30_000);

  it('an unreachable source is retried with backoff, logged once per attempt, not spammed', async () => {
    const lines: string[] = [];
    const unreachable = `postgres://postgres@127.0.0.1:${await freePort()}/nothing`;
    h = await createReplicationHarness({
      sourceUrl,
      storageUrl,
      setupSql: 'CREATE TABLE t (id int PRIMARY KEY);',
      syncConfig: 'bucket_definitions:\n  all:\n    data: [SELECT * FROM $schema.t]\n',
    });
    const abort = new AbortController();
    const coordinator = new ReplicationCoordinator({
      storage: h.config,
      snapshotter: new PostgresSnapshotter(context(unreachable)),
      streamer: new PostgresStreamer(context(unreachable)),
      patterns: [{ schema: h.schema, name: 't', isWildcard: false }],
      logger: createLogger({ format: 'json', write: (l) => lines.push(l) }),
      retry: { initialDelayMs: 100, maxDelayMs: 400 },
    });
    const run = coordinator.run(abort.signal);
    await new Promise((r) => setTimeout(r, 1500));
    abort.abort();
    await run;
    const retries = lines.map((l) => JSON.parse(l)).filter((l) => l.message === 'replication failed, retrying');
    // 100 + 200 + 400 + 400 ms of backoff fit in 1.5 s: a handful of attempts, each logged once.
    expect(retries.length).toBeGreaterThanOrEqual(2);
    expect(retries.length).toBeLessThanOrEqual(6);
    expect(retries[0].error.code).toBe('BS3001');
    expect(retries.map((r) => r.retryInMs)).toEqual([100, 200, 400, 400, 400, 400].slice(0, retries.length));
  });
});
