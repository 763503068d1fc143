/**
 * Test harness for replication against real servers: a fresh source schema with its own
 * publication, a fresh storage schema, and a coordinator wired like the service wires it.
 */
import { randomBytes } from 'node:crypto';
import { connectPostgres } from '@bucketsync/lib-postgres';
import { createLogger } from '@bucketsync/lib-services';
import {
  comparePositions,
  ReplicationCoordinator,
  type ReplicationCoordinatorOptions,
  type SyncConfigStorage,
  type Snapshotter,
} from '@bucketsync/service-core';
import { bucketRows } from '@bucketsync/service-core-tests';
import { PostgresStorage } from '@bucketsync/module-postgres-storage';
import { parseSyncConfig } from '@bucketsync/sync-rules';
import type pg from 'pg';
import { decodePostgresConfig } from '../src/postgres-config.js';
import { PostgresSnapshotter } from '../src/postgres-snapshotter.js';
import { PostgresSourceApi } from '../src/postgres-source-api.js';
import { PostgresStreamer } from '../src/postgres-streamer.js';

export interface ReplicationHarness {
  schema: string;
  publication: string;
  source: pg.Client;
  storage: PostgresStorage;
  config: SyncConfigStorage;
  logLines: string[];
  /** Starts a coordinator in the background; `stop()` aborts it and waits. `wrapSnapshotter` can stand between it and the source. */
  start(
    options?: Partial<ReplicationCoordinatorOptions>,
    wrapSnapshotter?: (snapshotter: Snapshotter) => Snapshotter,
  ): { stop(): Promise<void>; done: Promise<void> };
  /** Waits until storage has a checkpoint at or past the source's current head. */
  waitForHead(timeoutMs?: number): Promise<void>;
  /** The rows of a bucket at the current checkpoint, by row id, as parsed JSON. */
  bucket(bucket: string): Promise<Map<string, Record<string, unknown>>>;
  close(): Promise<void>;
}

export async function createReplicationHarness(options: {
  sourceUrl: string;
  storageUrl: string;
  /** SQL creating the source tables; `$schema` is replaced by the test's schema. */
  setupSql: string;
  /** The sync config; `$schema` is replaced by the test's schema. */
  syncConfig: string;
  /** Leave out the publication (to test the error). */
  withoutPublication?: boolean;
}): Promise<ReplicationHarness> {
  const id = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const schema = `repl_${id}`;
  const publication = `pub_${id}`;
  const source = await connectPostgres({ uri: options.sourceUrl });
  await source.query(`CREATE SCHEMA ${schema}; SET search_path = ${schema};`);
  await source.query(options.setupSql.replaceAll('$schema', schema));
  if (!options.withoutPublication)
    await source.query(`CREATE PUBLICATION ${publication} FOR TABLES IN SCHEMA ${schema}`);

  const syncConfigText = options.syncConfig.replaceAll('$schema', schema);
  const parsed = parseSyncConfig(syncConfigText);
  if (!parsed.config) throw new Error(`bad test sync config: ${JSON.stringify(parsed.diagnostics)}`);
  const storage = await PostgresStorage.open({ uri: options.storageUrl, schema: `st_${id}` });
  const { config } = await storage.deploySyncConfig(syncConfigText);
  const sourceConfig = decodePostgresConfig({
    type: 'postgresql',
    uri: options.sourceUrl,
    publication_name: publication,
  });
  const context = { config: sourceConfig, replicationId: `t${id}`, edition: parsed.config.edition };
  const sourceApi = new PostgresSourceApi(context);
  const logLines: string[] = [];
  const logger = createLogger({ level: 'debug', format: 'json', write: (l) => logLines.push(l) });
  const running: (() => Promise<void>)[] = [];
  const streamers: PostgresStreamer[] = [];

  const harness: ReplicationHarness = {
    schema,
    publication,
    source,
    storage,
    config,
    logLines,
    start(overrides = {}, wrapSnapshotter) {
      const abort = new AbortController();
      const real = new PostgresSnapshotter(context);
      const snapshotter = wrapSnapshotter ? wrapSnapshotter(real) : real;
      const streamer = new PostgresStreamer(context);
      streamers.push(streamer);
      const coordinator = new ReplicationCoordinator({
        storage: config,
        snapshotter,
        streamer,
        patterns: parsed.config!.sourceTables,
        logger,
        retry: { initialDelayMs: 50, maxDelayMs: 200 },
        ...overrides,
      });
      const done = coordinator.run(abort.signal).finally(async () => {
        await streamer.close();
        await real.close();
      });
      const stop = async () => {
        abort.abort();
        await done.catch(() => undefined);
      };
      running.push(stop);
      return { stop, done };
    },
    async waitForHead(timeoutMs = 20_000) {
      const head = await sourceApi.headPosition();
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const checkpoint = await config.getCheckpoint();
        if (checkpoint.position && comparePositions(checkpoint.position, head) >= 0) return;
        if (Date.now() > deadline) {
          throw new Error(
            `no checkpoint at or past ${head} after ${timeoutMs} ms (at ${checkpoint.position}); log:\n${logLines.slice(-15).join('\n')}`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async bucket(name) {
      const checkpoint = await config.getCheckpoint();
      const rows = await bucketRows(config, name, checkpoint.opId);
      return new Map([...rows].map(([k, v]) => [k, JSON.parse(v) as Record<string, unknown>]));
    },
    async close() {
      for (const stop of running) await stop();
      for (const streamer of streamers) await streamer.destroy().catch(() => undefined);
      await sourceApi.close();
      await source.query(`DROP SCHEMA ${schema} CASCADE`);
      if (!options.withoutPublication) await source.query(`DROP PUBLICATION IF EXISTS ${publication}`);
      await source.end();
      await storage.teardown().catch(() => undefined);
      await storage.close();
    },
  };
  return harness;
}
