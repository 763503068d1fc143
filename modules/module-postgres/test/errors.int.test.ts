import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startPostgres } from '@bucketsync/dev-databases';
import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { createLogger } from '@bucketsync/lib-services';
import { ReplicationCoordinator } from '@bucketsync/service-core';
import { ERROR_CATALOGUE, ErrorCode, ServiceError } from '@bucketsync/service-errors';
import pg from 'pg';
import { afterEach, expect, it } from 'vitest';
import { decodePostgresConfig, slotNameFor } from '../src/postgres-config.js';
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

  /** The error a fresh replication start meets with `uri`: the streamer's checks, then its slot. */
  const startError = (uri: string) =>
    new PostgresStreamer(context(uri)).createStartPosition().then(
      () => {
        throw new Error('expected the start to fail');
      },
      (e: unknown) => e as ServiceError,
    );

  it('wal_level is not logical: its own code, the setting to change, not retried', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bucketsync-walrep-'));
    chmodSync(dir, 0o755); // the server runs as the postgres user when tests run as root
    const server = await startPostgres({
      dataDir: path.join(dir, 'postgres'),
      port: await freePort(),
      databases: ['app'],
      settings: { wal_level: 'replica' },
    });
    try {
      const error = await startError(server.databaseUrl('app'));
      expect(error).toBeInstanceOf(ServiceError);
      expect(error.code).toBe(ErrorCode.SOURCE_LOGICAL_REPLICATION_OFF);
      expect(error.retryable).toBe(false);
      expect(error.message).toContain(
        'wal_level is "replica", but logical replication needs wal_level = logical. Run ALTER SYSTEM SET wal_level = logical;',
      );
      expect(error.fix).toBe(ERROR_CATALOGUE.BS3007.fix);
      expect(error.message).toContain('restart the database server, then restart the service');
      // No slot was attempted (Postgres would refuse it anyway), nothing left behind.
      const admin = new pg.Client({ connectionString: server.databaseUrl('app') });
      await admin.connect();
      const slots = await admin.query('SELECT slot_name FROM pg_replication_slots');
      await admin.end();
      expect(slots.rows).toEqual([]);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('the user lacks the REPLICATION attribute: a permission error naming the ALTER ROLE', async () => {
    const admin = new pg.Client({ connectionString: sourceUrl });
    await admin.connect();
    const role = `norepl_${process.pid}`;
    await admin.query(`DROP ROLE IF EXISTS ${role}; CREATE ROLE ${role} LOGIN`);
    try {
      const url = new URL(sourceUrl);
      url.username = role;
      const error = await startError(url.toString());
      expect(error.code).toBe(ErrorCode.SOURCE_PERMISSION_DENIED);
      expect(error.retryable).toBe(false);
      expect(error.message).toContain(
        `the user "${role}" may not start logical replication. Run ALTER ROLE "${role}" WITH REPLICATION;`,
      );
      expect(error.message).toContain(ERROR_CATALOGUE.BS3006.fix);
    } finally {
      await admin.query(`DROP ROLE ${role}`);
      await admin.end();
    }
  });

  it('a wrong password: the login was rejected, not "not set up for replication", permanent (not retryable)', async () => {
    // The shared test server trusts every local login; this one checks passwords.
    const dir = mkdtempSync(path.join(tmpdir(), 'bucketsync-auth-'));
    chmodSync(dir, 0o755); // the server runs as the postgres user when tests run as root
    const hbaFile = path.join(dir, 'pg_hba.conf');
    writeFileSync(
      hbaFile,
      'local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n',
    );
    chmodSync(hbaFile, 0o644);
    const server = await startPostgres({
      dataDir: path.join(dir, 'postgres'),
      port: await freePort(),
      databases: ['app'],
      settings: { hba_file: hbaFile },
    });
    try {
      const admin = new pg.Client({ connectionString: server.databaseUrl('app') });
      await admin.connect();
      await admin.query(
        `CREATE ROLE app LOGIN REPLICATION PASSWORD 'right'; CREATE PUBLICATION powersync FOR ALL TABLES`,
      );
      await admin.end();
      const url = new URL(server.databaseUrl('app'));
      url.username = 'app';
      url.password = 'wrong';
      const error = await startError(url.toString());
      expect(error.code).toBe(ErrorCode.SOURCE_AUTH_FAILED);
      expect(error.retryable).toBe(false);
      expect(error.message).toContain('[BS3004] The source database rejected the login');
      expect(error.message).toContain('password authentication failed for user "app"');
      expect(error.message).toContain(ERROR_CATALOGUE.BS3004.fix);
      expect(error.message).not.toContain('wrong'); // the password is redacted
      expect(error.message).not.toContain('not set up for replication');
      // The right password gets past the login (and creates the slot), so the test tells them apart.
      url.password = 'right';
      await expect(new PostgresStreamer(context(url.toString())).createStartPosition()).resolves.toMatch(/^[0-9A-F]+/);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('an unknown database: its own code naming the database', async () => {
    const url = new URL(sourceUrl);
    url.pathname = '/no_such_database_here';
    const error = await startError(url.toString());
    expect(error.code).toBe(ErrorCode.SOURCE_DATABASE_MISSING);
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('database "no_such_database_here" does not exist');
    expect(error.message).toContain(ERROR_CATALOGUE.BS3005.fix);
  });

  it('an unreachable host: retryable, naming host, port and DNS', async () => {
    const error = await startError(`postgres://postgres@127.0.0.1:${await freePort()}/app`);
    expect(error.code).toBe(ErrorCode.SOURCE_UNREACHABLE);
    expect(error.retryable).toBe(true);
    expect(error.message).toContain('ECONNREFUSED');
    expect(error.message).toContain(ERROR_CATALOGUE.BS3001.fix);
    const unknownHost = await startError('postgres://postgres@no-such-host.invalid:5432/app');
    expect(unknownHost.code).toBe(ErrorCode.SOURCE_UNREACHABLE);
    expect(unknownHost.message).toMatch(/ENOTFOUND|EAI_AGAIN/);
  }, 30_000);

  it('the user may not read a synced table: the GRANT to run, before any slot exists', async () => {
    h = await createReplicationHarness({
      sourceUrl,
      storageUrl,
      setupSql: 'CREATE TABLE secret (id int PRIMARY KEY);',
      syncConfig: 'bucket_definitions:\n  all:\n    data: [SELECT * FROM $schema.secret]\n',
    });
    const role = `nosel_${process.pid}`;
    await h.source.query(`DROP ROLE IF EXISTS ${role}; CREATE ROLE ${role} LOGIN REPLICATION`);
    await h.source.query(`GRANT USAGE ON SCHEMA ${h.schema} TO ${role}`);
    const url = new URL(sourceUrl);
    url.username = role;
    const ctx = { ...context(url.toString()), replicationId: `nosel_${process.pid}` };
    ctx.config.publicationName = h.publication;
    const snapshotter = new PostgresSnapshotter(ctx);
    try {
      const coordinator = new ReplicationCoordinator({
        storage: h.config,
        snapshotter,
        streamer: new PostgresStreamer(ctx),
        patterns: [{ schema: h.schema, name: 'secret', isWildcard: false }],
        logger: createLogger({ format: 'json', write: () => undefined }),
        retry: { initialDelayMs: 50, maxDelayMs: 50 },
      });
      const error = (await coordinator.run(new AbortController().signal).catch((e: unknown) => e)) as ServiceError;
      expect(error.code).toBe(ErrorCode.SOURCE_PERMISSION_DENIED);
      expect(error.message).toContain(
        `the user "${role}" may not read "${h.schema}"."secret". Run as the tables' owner: GRANT SELECT ON "${h.schema}"."secret" TO "${role}";`,
      );
      const slots = await h.source.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [
        slotNameFor(ctx.replicationId),
      ]);
      expect(slots.rows).toEqual([]);
    } finally {
      await snapshotter.close();
      await h.source.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });

  it('a missing publication fails the attempt before a slot is created: none is left holding WAL', async () => {
    h = await createReplicationHarness({
      sourceUrl,
      storageUrl,
      setupSql: 'CREATE TABLE t (id int PRIMARY KEY);',
      syncConfig: 'bucket_definitions:\n  all:\n    data: [SELECT * FROM $schema.t]\n',
      withoutPublication: true,
    });
    const { done } = h.start();
    const error = (await done.catch((e: unknown) => e)) as ServiceError;
    expect(error.code).toBe(ErrorCode.SOURCE_MISCONFIGURED);
    expect(error.message).toContain(`publication "${h.publication}" does not exist`);
    // Not retried: one attempt, no "retrying" line.
    expect(h.logLines.filter((l) => l.includes('retrying'))).toEqual([]);
    const slot = slotNameFor(`t${h.schema.slice('repl_'.length)}`);
    const slots = await h.source.query('SELECT slot_name FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    expect(slots.rows).toEqual([]);
    // The streamer's own check refuses too, for callers that skip the table listing.
    const streamerError = await new PostgresStreamer({
      ...context(sourceUrl),
      config: { ...context(sourceUrl).config, publicationName: h.publication },
    })
      .createStartPosition()
      .then(
        () => new Error('the streamer created a start position without the publication'),
        (e: unknown) => e as ServiceError,
      );
    expect(streamerError.message).toContain(`publication "${h.publication}" does not exist`);
    const after = await h.source.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [
      slotNameFor(context(sourceUrl).replicationId),
    ]);
    expect(after.rows).toEqual([]);
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
    const retries = lines
      .map((l) => JSON.parse(l))
      .filter((l) => (l.message as string).startsWith('replication failed; retrying in '));
    // 100 + 200 + 400 + 400 ms of backoff fit in 1.5 s: a handful of attempts, each logged once.
    expect(retries.length).toBeGreaterThanOrEqual(2);
    expect(retries.length).toBeLessThanOrEqual(6);
    expect(retries[0].error.code).toBe('BS3001');
    expect(retries.map((r) => r.retryInMs)).toEqual([100, 200, 400, 400, 400, 400].slice(0, retries.length));
    // The log says when the next attempt comes.
    expect(retries.map((r) => r.message)).toEqual(
      ['0.1 s', '0.2 s', '0.4 s', '0.4 s', '0.4 s', '0.4 s']
        .slice(0, retries.length)
        .map((d) => `replication failed; retrying in ${d}`),
    );
  });
});
