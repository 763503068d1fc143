/**
 * The source contract suite (Debezium-style): every source module runs the same scenarios
 * with one line, `defineSourceContract(harnessFactory)`. The suite wires the module's
 * snapshotter and streamer into the real coordinator and real storage, drives the source
 * through the harness, and ends each scenario by comparing every bucket with the rows
 * computed from the source (the oracle). Races use the flush hooks, never sleeps.
 */
import { setMaxListeners } from 'node:events';
import {
  comparePositions,
  ReplicationCoordinator,
  type Checkpoint,
  type SyncConfigStorage,
  type WriteBatchHooks,
} from '@bucketsync/service-core';
import { parseSyncConfig } from '@bucketsync/sync-rules';
import { afterEach, describe, expect, it } from 'vitest';
import {
  atOrPast,
  diffBucketsWithSource,
  formatCheckpoint,
  KEY_COLUMNS,
  liveBucketRows,
  ownerSyncConfig,
  recordingLogger,
  rowOf,
  rowsOf,
  SpySnapshotter,
  SpyStreamer,
  waitFor,
  type ContractTable,
  type LogRecord,
} from './source-contract-fixtures.js';
import type { SourceContractFeature, SourceHarness, SourceHarnessFactory, SourceKeyType } from './source-harness.js';

/** Options of one replication run (one "process"). */
interface RunOptions {
  chunkSize?: number;
  tableConcurrency?: number;
  /** Snapshot flush hooks; get the run so they can look at its spies. */
  hooks?: (run: Run) => WriteBatchHooks;
}

/** One replication run: the coordinator with spied module parts, until stopped or failed. */
interface Run {
  readonly snapshotter: SpySnapshotter;
  readonly streamer: SpyStreamer;
  /** Settles when the coordinator returns (stopped) or throws. */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/** A scenario's world: harness, deployed config, runs and the oracle. */
interface Scenario {
  readonly h: SourceHarness;
  readonly config: SyncConfigStorage;
  readonly tables: readonly ContractTable[];
  readonly logs: LogRecord[];
  start(options?: RunOptions): Run;
  /** Waits until a checkpoint is at or past the source head (or `head`). */
  waitForCheckpoint(head?: string): Promise<Checkpoint>;
  /** Waits until the stream has committed (applied and flushed) up to the source head, checkpoint or not. */
  waitForStream(head?: string): Promise<void>;
  /** Asserts every owner bucket equals the oracle computed from the source's rows. */
  expectBucketsMatchSource(): Promise<void>;
}

const KEY_NAMES: Record<SourceKeyType, string> = {
  integer: 'an integer',
  text: 'a text',
  uuid: 'a uuid',
  composite: 'a composite (text, integer)',
};

const KEY_FEATURE: Record<SourceKeyType, SourceContractFeature> = {
  integer: 'integerKey',
  text: 'textKey',
  uuid: 'uuidKey',
  composite: 'compositeKey',
};

/** Defines the source contract scenarios for one source module. */
export function defineSourceContract(factory: SourceHarnessFactory): void {
  describe(`source contract: ${factory.name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    /**
     * A test that needs `features`; skipped (with the harness's reason printed) only when the
     * harness declared one of them unsupported.
     */
    function scenario(
      name: string,
      features: readonly SourceContractFeature[],
      body: () => Promise<void>,
      timeoutMs = 60_000,
    ): void {
      const reasons = features.flatMap((f) => (factory.unsupported?.[f] ? [`${f}: ${factory.unsupported[f]}`] : []));
      if (reasons.length > 0) {
        console.log(`[skipped] ${factory.name}: ${name} (${reasons.join('; ')})`);
        it.skip(`${name} (skipped: ${reasons.join('; ')})`, body);
        return;
      }
      it(name, body, timeoutMs);
    }

    /** Creates the harness and tables (with `initialRows` each), and deploys the owner sync config. */
    async function setup(
      tables: readonly (ContractTable & { initialRows?: number; replicated?: boolean })[],
    ): Promise<Scenario> {
      const h = await factory.create();
      cleanups.push(() => h.close());
      for (const t of tables) {
        await h.createTable(t.name, { key: t.key, replicated: t.replicated ?? true });
        if (t.initialRows) await h.insert(t.name, rowsOf(t.key, 1, t.initialRows));
      }
      const content = ownerSyncConfig(tables, (t) => h.tableRef(t));
      const parsed = parseSyncConfig(content);
      if (!parsed.config) throw new Error(`bad contract sync config: ${JSON.stringify(parsed.diagnostics)}`);
      const { sourceTables: patterns, edition } = parsed.config;
      const { config } = await h.storage.deploySyncConfig(content);
      const logs: LogRecord[] = [];
      // Failures of the latest run only: an earlier run may have been killed on purpose.
      let latest: { failure?: unknown } = {};
      const lastLogs = () =>
        logs
          .slice(-12)
          .map(
            (l) =>
              `${l.level} ${l.message} ${JSON.stringify(l.fields, (_, v) => (typeof v === 'bigint' ? `${v}` : v))}`,
          )
          .join('\n');
      const assertRunning = () => {
        if (latest.failure) throw new Error(`replication failed: ${String(latest.failure)}\n${lastLogs()}`);
      };

      const s: Scenario = {
        h,
        config,
        tables,
        logs,
        start(options = {}) {
          const abort = new AbortController();
          setMaxListeners(100, abort.signal);
          const snapshotter = new SpySnapshotter(h.createSnapshotter({ edition }));
          const streamer = new SpyStreamer(h.createStreamer({ edition }));
          const run: Run = {
            snapshotter,
            streamer,
            done: undefined as unknown as Promise<void>,
            async stop() {
              abort.abort();
              await run.done.catch(() => undefined);
            },
          };
          const hooks = options.hooks?.(run);
          const coordinator = new ReplicationCoordinator({
            storage: config,
            snapshotter,
            streamer,
            patterns,
            logger: recordingLogger(logs),
            retry: { initialDelayMs: 50, maxDelayMs: 200 },
            ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
            ...(options.tableConcurrency !== undefined ? { tableConcurrency: options.tableConcurrency } : {}),
            ...(hooks ? { snapshotHooks: hooks } : {}),
          });
          const done = coordinator.run(abort.signal).finally(async () => {
            await streamer.close();
            await snapshotter.close();
          });
          const state: { failure?: unknown } = {};
          latest = state;
          done.catch((e: unknown) => {
            if (!abort.signal.aborted) state.failure = e;
          });
          (run as { done: Promise<void> }).done = done;
          cleanups.push(() => run.stop());
          return run;
        },
        async waitForCheckpoint(head) {
          const target = head ?? (await h.headPosition());
          return waitFor(
            async () => {
              assertRunning();
              const checkpoint = await config.getCheckpoint();
              return atOrPast(checkpoint.position, target) ? checkpoint : undefined;
            },
            () => `no checkpoint at or past the source head ${target}; log:\n${lastLogs()}`,
          );
        },
        async waitForStream(head) {
          const target = head ?? (await h.headPosition());
          await waitFor(
            async () => {
              assertRunning();
              const status = await config.getStatus();
              return atOrPast(status.lastCommitPosition, target) ? true : undefined;
            },
            () => `the stream did not commit up to ${target}; log:\n${lastLogs()}`,
          );
        },
        async expectBucketsMatchSource() {
          const diff = await diffBucketsWithSource(config, tables, (t) => h.rows(t));
          expect(diff).toEqual({
            checkpoint: diff.checkpoint,
            missing: [],
            unexpected: [],
            different: [],
            duplicates: [],
          });
        },
      };
      return s;
    }

    /** Rows of `table` in one owner bucket at the current checkpoint, by synced id. */
    async function bucketOf(s: Scenario, owner: string, table: string): Promise<Map<string, Record<string, unknown>>> {
      const checkpoint = await s.config.getCheckpoint();
      const { rows } = await liveBucketRows(s.config, `by_owner["${owner}"]`, checkpoint.opId);
      return new Map(
        [...rows].filter(([k]) => k.startsWith(`${table}/`)).map(([k, v]) => [k.slice(table.length + 1), v]),
      );
    }

    describe('initial copy', () => {
      for (const key of ['integer', 'text', 'uuid', 'composite'] as const) {
        scenario(`copies every row of a table keyed by ${KEY_NAMES[key]}`, [KEY_FEATURE[key]], async () => {
          const s = await setup([{ name: 'items', key, initialRows: 1000 }]);
          const run = s.start({ chunkSize: 150 });
          await s.waitForCheckpoint();
          await s.expectBucketsMatchSource();
          // Chunked in key order, each row read once.
          const reads = run.snapshotter.reads.filter((r) => r.table === 'items');
          expect(reads.map((r) => [r.afterKey, r.rows])).toEqual([[undefined, 1000]]);
          expect(reads[0]!.chunks).toBeGreaterThanOrEqual(7);
          const status = await s.config.getStatus();
          expect(status.snapshotDone).toBe(true);
          expect(status.tables.map((t) => [t.name, [...t.replicaIdColumns], t.snapshotDone])).toEqual([
            ['items', [...KEY_COLUMNS[key]], true],
          ]);
        });
      }
    });

    describe('snapshot while streaming', () => {
      scenario('inserts, updates and deletes made during a snapshot converge to the source', [], async () => {
        const s = await setup([{ name: 'items', key: 'integer', initialRows: 2000 }]);
        const k = (i: number) => ({ id: i });
        let flushes = 0;
        s.start({
          chunkSize: 200,
          hooks: () => ({
            // Between chunks: change rows already copied, rows not copied yet, and move rows between buckets.
            async afterFlush() {
              flushes++;
              if (flushes === 3) {
                await s.h.update('items', [
                  ...[1, 2, 3, 4, 5].map((i) => ({ key: k(i), set: { owner: 'u1', title: `moved ${i}` } })),
                  ...[1500, 1501, 1502].map((i) => ({ key: k(i), set: { title: `late edit ${i}` } })),
                  { key: k(1700), set: { owner: 'u4' } },
                ]);
                await s.h.delete('items', [30, 31, 32, 1800, 1801, 1802].map(k));
                await s.h.insert('items', [rowOf('integer', 5001), rowOf('integer', -7)]);
              }
              if (flushes === 6) {
                await s.h.update('items', [
                  { key: k(5001), set: { owner: 'u3' } },
                  { key: k(-7), set: { n: 77 } },
                ]);
                await s.h.delete('items', [k(1), k(1900)]);
              }
            },
          }),
        });
        await s.waitForCheckpoint();
        expect(flushes).toBeGreaterThanOrEqual(10);
        await s.expectBucketsMatchSource();
        await s.h.update('items', [{ key: k(2), set: { owner: 'u0' } }]);
        await s.waitForCheckpoint();
        await s.expectBucketsMatchSource();
      });

      scenario(
        'a row deleted after its chunk was read and before the chunk is written never comes back',
        [],
        async () => {
          const s = await setup([{ name: 'items', key: 'integer', initialRows: 1000 }]);
          const victim = '250'; // in the third chunk of 100
          let injected = false;
          let skippedInThatFlush: number | undefined;
          s.start({
            chunkSize: 100,
            hooks: (run) => ({
              // The chunk holding the victim was read from the source and is buffered in the batch;
              // storage has not seen it. Delete the victim at the source and let the stream apply the
              // delete (a tombstone) before this flush writes the stale copy.
              async beforeFlush() {
                const chunk = run.snapshotter.lastChunk?.chunk;
                if (injected || !chunk?.rows.some((r) => String(r.id) === victim)) return;
                injected = true;
                await s.h.delete('items', [{ id: Number(victim) }]);
                await s.waitForStream();
              },
              afterFlush({ result }) {
                if (injected && skippedInThatFlush === undefined) skippedInThatFlush = result.rowsSkipped;
              },
            }),
          });
          await s.waitForCheckpoint();
          expect(injected).toBe(true);
          // The stale copy was read and then skipped because of the tombstone: the race did happen.
          expect(skippedInThatFlush).toBe(1);
          expect((await bucketOf(s, 'u0', 'items')).has(victim)).toBe(false);
          await s.expectBucketsMatchSource();
          // Later checkpoints (tombstones may be purged by then) do not bring it back either.
          await s.h.insert('items', [rowOf('integer', 2000)]);
          await s.waitForCheckpoint();
          await s.h.update('items', [{ key: { id: 2000 }, set: { title: 'again' } }]);
          await s.waitForCheckpoint();
          expect((await bucketOf(s, 'u0', 'items')).has(victim)).toBe(false);
          await s.expectBucketsMatchSource();
        },
      );

      scenario('resumes from the last copied key after the process is killed mid-snapshot', [], async () => {
        const s = await setup([{ name: 'items', key: 'integer', initialRows: 1500 }]);
        let flushes = 0;
        // The third chunk is durable, then the process "dies": nothing after it runs.
        const first = s.start({
          chunkSize: 200,
          hooks: () => ({
            afterFlush() {
              if (++flushes === 3) throw new Error('simulated kill');
            },
          }),
        });
        await expect(first.done).rejects.toThrow('simulated kill');
        const status = await s.config.getStatus();
        const progress = status.tables.find((t) => t.name === 'items')?.snapshotProgress;
        expect(status.snapshotDone).toBe(false);
        expect(progress?.copiedRows).toBe(600);
        expect(progress?.lastKey).toBeDefined();

        // While the process is down the source keeps changing, before and after the last copied key.
        await s.h.delete('items', [{ id: 100 }, { id: 1000 }]);
        await s.h.update('items', [
          { key: { id: 50 }, set: { owner: 'u2' } },
          { key: { id: 1200 }, set: { title: 'changed while down' } },
        ]);
        await s.h.insert('items', [rowOf('integer', 3000)]);

        const logsBefore = s.logs.length;
        const second = s.start({ chunkSize: 200 });
        await s.waitForCheckpoint();
        // The second process read on from the saved key, not from the start.
        const reads = second.snapshotter.reads.filter((r) => r.table === 'items');
        expect(reads.map((r) => r.afterKey)).toEqual([progress!.lastKey]);
        expect(reads[0]!.rows).toBe(1500 - 600 - 1 + 1); // rows 601..1500 without 1000, plus 3000
        const resumed = s.logs.slice(logsBefore).find((l) => l.message === 'resuming table copy');
        expect(resumed?.fields).toMatchObject({ copiedRows: 600 });
        await s.expectBucketsMatchSource();
      });

      scenario(
        'a table added to the replicated set while streaming is copied without pausing the stream',
        ['addTableWhileStreaming'],
        async () => {
          const s = await setup([
            { name: 'early', key: 'integer', initialRows: 200 },
            // Rows written before the table joins replication reach storage only through a snapshot.
            { name: 'late', key: 'composite', initialRows: 900, replicated: false },
          ]);
          const run = s.start({ chunkSize: 200 });
          const first = await s.waitForCheckpoint();

          // Hold the late table's copy after its first chunk, until the stream proved it keeps going.
          let reached!: () => void;
          let release!: () => void;
          const atGate = new Promise<void>((resolve) => (reached = resolve));
          const gate = new Promise<void>((resolve) => (release = resolve));
          run.snapshotter.beforeChunk = async (table, index) => {
            if (table !== 'late' || index !== 1) return;
            reached();
            await gate;
          };
          await s.h.addToReplication('late');
          await s.h.insert('late', [rowOf('composite', 5000)]); // the stream now sees the table
          await atGate;

          await s.h.insert('early', [rowOf('integer', 5000)]);
          const meanwhile = await s.waitForCheckpoint();
          expect(meanwhile.opId).toBeGreaterThan(first.opId);
          expect((await bucketOf(s, 'u0', 'early')).has('5000')).toBe(true);
          const late = (await s.config.getStatus()).tables.find((t) => t.name === 'late');
          expect(late?.snapshotDone).toBe(false);

          release();
          await waitFor(
            async () =>
              (await s.config.getStatus()).tables.find((t) => t.name === 'late')?.snapshotDone ? true : undefined,
            () => 'the late table was never marked copied',
          );
          await s.waitForCheckpoint();
          expect(run.snapshotter.reads.filter((r) => r.table === 'late').map((r) => r.afterKey)).toEqual([undefined]);
          await s.expectBucketsMatchSource();
        },
      );
    });

    describe('truncate', () => {
      scenario('a truncate removes every row of the table, and rows written after it stay', ['truncate'], async () => {
        const s = await setup([{ name: 'items', key: 'text', initialRows: 600 }]);
        s.start({ chunkSize: 200 });
        await s.waitForCheckpoint();
        expect((await bucketOf(s, 'u2', 'items')).size).toBe(120);
        await s.h.truncate('items');
        await s.h.insert('items', [rowOf('text', 1), rowOf('text', 7000)]);
        await s.waitForCheckpoint();
        await s.expectBucketsMatchSource();
        expect((await bucketOf(s, 'u2', 'items')).size).toBe(0);
      });

      scenario(
        'a truncate between two chunks of a snapshot leaves only the rows written after it',
        ['truncate'],
        async () => {
          const s = await setup([{ name: 'items', key: 'integer', initialRows: 1000 }]);
          let flushes = 0;
          s.start({
            chunkSize: 100,
            hooks: () => ({
              async afterFlush() {
                if (++flushes !== 3) return;
                await s.h.truncate('items');
                await s.h.insert('items', [rowOf('integer', 5), rowOf('integer', 950)]);
                await s.waitForStream();
              },
            }),
          });
          await s.waitForCheckpoint();
          await s.expectBucketsMatchSource();
        },
      );

      scenario(
        'a truncate applied after a chunk was read and before it is written leaves none of that chunk',
        ['truncate'],
        async () => {
          const s = await setup([{ name: 'items', key: 'integer', initialRows: 1000 }]);
          let injected = false;
          s.start({
            chunkSize: 100,
            hooks: (run) => ({
              // The third chunk is read (buffered, not written); the source truncates and the stream
              // applies it before the chunk reaches storage.
              async beforeFlush() {
                const chunk = run.snapshotter.lastChunk?.chunk;
                if (injected || !chunk?.rows.some((r) => String(r.id) === '250')) return;
                injected = true;
                await s.h.truncate('items');
                await s.h.insert('items', [rowOf('integer', 260)]);
                await s.waitForStream();
              },
            }),
          });
          await s.waitForCheckpoint();
          expect(injected).toBe(true);
          await s.expectBucketsMatchSource();
        },
      );
    });

    describe('schema changes while streaming', () => {
      scenario('a column added while streaming is carried by rows written after it', ['addColumn'], async () => {
        const s = await setup([{ name: 'items', key: 'integer', initialRows: 300 }]);
        s.start({ chunkSize: 100 });
        await s.waitForCheckpoint();
        await s.h.addColumn('items', { name: 'note', type: 'text' });
        await s.h.insert('items', [rowOf('integer', 400, { note: 'new row' })]);
        await s.h.update('items', [{ key: { id: 5 }, set: { note: 'old row, new column' } }]);
        await s.waitForCheckpoint();
        const u0 = await bucketOf(s, 'u0', 'items');
        expect(u0.get('400')).toMatchObject({ note: 'new row' });
        expect(u0.get('5')).toMatchObject({ note: 'old row, new column' });
        await s.expectBucketsMatchSource();
      });

      scenario(
        'a dropped column leaves every stored row, even when the table is not written again',
        ['addColumn', 'columnRewrite'],
        async () => {
          const s = await setup([
            { name: 'items', key: 'integer', initialRows: 300 },
            { name: 'others', key: 'integer', initialRows: 10 },
          ]);
          s.start({ chunkSize: 100 });
          await s.waitForCheckpoint();
          await s.h.addColumn('items', { name: 'note', type: 'text' });
          await s.h.update('items', [{ key: { id: 5 }, set: { note: 'soon gone' } }]);
          await s.waitForCheckpoint();
          expect((await bucketOf(s, 'u0', 'items')).get('5')).toMatchObject({ note: 'soon gone' });

          await s.h.dropColumn('items', 'note');
          // Writes to another table only: no change event mentions items again.
          let next = 100;
          await waitFor(
            async () => {
              await s.h.insert('others', [rowOf('integer', next++)]);
              await s.waitForCheckpoint();
              const row = (await bucketOf(s, 'u0', 'items')).get('5');
              return row && !('note' in row) ? true : undefined;
            },
            () => 'the dropped column is still on stored rows',
          );
          await s.expectBucketsMatchSource();
        },
      );

      scenario(
        'a column dropped and added again before the stream gets there still copies the table again',
        ['addColumn', 'columnRewrite'],
        async () => {
          const s = await setup([{ name: 'items', key: 'integer', initialRows: 300 }]);
          const first = s.start({ chunkSize: 100 });
          await s.waitForCheckpoint();
          await s.h.addColumn('items', { name: 'note', type: 'text' });
          await s.h.update('items', [{ key: { id: 5 }, set: { note: 'gone with the column' } }]);
          await s.waitForCheckpoint();
          await first.stop();

          // While replication is down the column goes and comes back: the catalog then looks as
          // before, only the stream's description of the table between the two tells.
          await s.h.dropColumn('items', 'note');
          await s.h.update('items', [{ key: { id: 6 }, set: { title: 'after the drop' } }]);
          await s.h.addColumn('items', { name: 'note', type: 'text' });
          await s.h.update('items', [{ key: { id: 7 }, set: { title: 'after the new column' } }]);
          s.start({ chunkSize: 100 });
          await waitFor(
            async () => {
              await s.waitForCheckpoint();
              const row = (await bucketOf(s, 'u0', 'items')).get('5');
              return row && row.note == null ? true : undefined;
            },
            () => 'a value of the dropped column is still stored',
          );
          await s.expectBucketsMatchSource();
        },
      );

      scenario('a copy of a replaced identity stops before its rows are dropped', ['keyChange'], async () => {
        const s = await setup([{ name: 'items', key: 'integer', initialRows: 1000 }]);
        const run = s.start({ chunkSize: 200 });
        // Hold the first copy before its second chunk while the key changes.
        let reached!: () => void;
        let release!: () => void;
        const atGate = new Promise<void>((resolve) => (reached = resolve));
        const gate = new Promise<void>((resolve) => (release = resolve));
        let copies = 0;
        run.snapshotter.beforeChunk = async (table, index) => {
          if (table !== 'items' || index !== 1 || ++copies > 1) return;
          reached();
          await gate;
        };
        await atGate;
        await s.h.setKey('items', ['id', 'owner']);
        await s.h.update('items', [{ key: { id: 7, owner: 'u2' }, set: { title: 'after the key change' } }]);
        await waitFor(
          async () => (s.logs.some((l) => l.message.startsWith('table identity changed')) ? true : undefined),
          () => 'the stream never replaced the table identity',
        );
        // The old copy goes on only now: none of what it read may land after the drop.
        release();
        await s.waitForCheckpoint();
        expect(s.logs.some((l) => l.message === 'table copy stopped: a schema change replaced the table')).toBe(true);
        const tables = (await s.config.getStatus()).tables.filter((t) => t.name === 'items');
        expect(tables.map((t) => [...t.replicaIdColumns])).toEqual([['id', 'owner']]);
        await s.expectBucketsMatchSource();
      });

      scenario('a column added with a default reaches the rows already there', ['columnRewrite'], async () => {
        const s = await setup([{ name: 'items', key: 'integer', initialRows: 300 }]);
        s.start({ chunkSize: 100 });
        await s.waitForCheckpoint();
        await s.h.addColumn('items', { name: 'score', type: 'integer', defaultValue: 7 });
        await s.h.insert('items', [rowOf('integer', 400)]);
        await waitFor(
          async () => {
            await s.waitForCheckpoint();
            return (await bucketOf(s, 'u0', 'items')).get('5')?.score === 7 ? true : undefined;
          },
          () => 'rows copied before the column was added never got its default',
        );
        await s.expectBucketsMatchSource();
      });

      scenario('a primary key change gives the table a new identity that is copied again', ['keyChange'], async () => {
        const s = await setup([{ name: 'items', key: 'integer', initialRows: 500 }]);
        const run = s.start({ chunkSize: 100 });
        await s.waitForCheckpoint();
        const before = (await s.config.getStatus()).tables.find((t) => t.name === 'items')!;
        expect([...before.replicaIdColumns]).toEqual(['id']);

        await s.h.setKey('items', ['id', 'owner']);
        // A change after the key change: the stream describes the table again.
        await s.h.update('items', [{ key: { id: 7, owner: 'u2' }, set: { owner: 'u3' } }]);
        await s.h.insert('items', [rowOf('integer', 600)]);
        await waitFor(
          async () => {
            const t = (await s.config.getStatus()).tables.find((x) => x.name === 'items');
            return t && t.id !== before.id && t.snapshotDone ? t : undefined;
          },
          () => 'the table never got a new, copied identity',
        );
        await s.waitForCheckpoint();
        const tables = (await s.config.getStatus()).tables.filter((t) => t.name === 'items');
        expect(tables.map((t) => [...t.replicaIdColumns])).toEqual([['id', 'owner']]);
        // Copied again from the start under the new identity.
        expect(run.snapshotter.reads.filter((r) => r.table === 'items').map((r) => r.afterKey)).toEqual([
          undefined,
          undefined,
        ]);
        await s.expectBucketsMatchSource();
      });
    });

    describe('positions and checkpoints', () => {
      scenario(
        'positions increase monotonically, in the stream and in the checkpoints storage exposes',
        [],
        async () => {
          const s = await setup([{ name: 'items', key: 'integer', initialRows: 600 }]);
          const watched: Checkpoint[] = [];
          const polled: Checkpoint[] = [];
          const watching = new AbortController();
          setMaxListeners(100, watching.signal);
          const watcher = (async () => {
            for await (const event of s.config.watchCheckpoints(watching.signal)) watched.push(event.checkpoint);
          })().catch(() => undefined);
          const poller = (async () => {
            while (!watching.signal.aborted) {
              polled.push(await s.config.getCheckpoint());
              await new Promise((resolve) => setTimeout(resolve, 10));
            }
          })();
          cleanups.push(async () => {
            watching.abort();
            await watcher;
            await poller;
          });
          let flushes = 0;
          const run = s.start({
            chunkSize: 100,
            hooks: () => ({
              async afterFlush() {
                flushes++;
                await s.h.update('items', [{ key: { id: flushes }, set: { title: `during copy ${flushes}` } }]);
              },
            }),
          });
          await s.waitForCheckpoint();
          for (let i = 0; i < 15; i++) {
            await s.h.update('items', [{ key: { id: 100 + i }, set: { title: `streamed ${i}` } }]);
            if (i % 3 === 0) await s.h.headPosition();
          }
          await s.waitForCheckpoint();
          watching.abort();
          await watcher;
          await poller;

          const start = run.streamer.startPosition!;
          expect(start).toBeDefined();
          for (const boundary of run.snapshotter.boundaries)
            expect(comparePositions(boundary, start)).toBeGreaterThanOrEqual(0);

          // The stream: commits and keepalives never go back; a row change sorts after every earlier change.
          let lastBoundary = start;
          let lastRow: string | undefined;
          const violations: string[] = [];
          for (const event of run.streamer.events) {
            if (event.type === 'commit' || event.type === 'keepalive') {
              if (comparePositions(event.position, lastBoundary) < 0)
                violations.push(`${event.type} ${event.position} after ${lastBoundary}`);
              else lastBoundary = event.position;
            } else if ('position' in event && event.position !== undefined) {
              if (comparePositions(event.position, lastBoundary) <= 0)
                violations.push(`${event.type} ${event.position} not after ${lastBoundary}`);
              if (lastRow !== undefined && comparePositions(event.position, lastRow) <= 0)
                violations.push(`${event.type} ${event.position} not after row ${lastRow}`);
              lastRow = event.position;
            }
          }
          expect(violations).toEqual([]);
          expect(run.streamer.events.filter((e) => e.type === 'commit').length).toBeGreaterThanOrEqual(15);

          // Storage: op ids and positions never go back, whether watched or polled.
          for (const [name, seen] of [
            ['watched', watched],
            ['polled', polled],
          ] as const) {
            const backwards = seen.flatMap((c, i) => {
              const p = seen[i - 1];
              if (!p) return [];
              const positionBack =
                p.position !== undefined && (c.position === undefined || comparePositions(c.position, p.position) < 0);
              return c.opId < p.opId || positionBack
                ? [`${name}: ${formatCheckpoint(p)} -> ${formatCheckpoint(c)}`]
                : [];
            });
            expect(backwards).toEqual([]);
          }
          expect(new Set(watched.map((c) => c.position)).size).toBeGreaterThanOrEqual(3);
          await s.expectBucketsMatchSource();
        },
      );

      scenario('a checkpoint never appears before every table has passed its snapshot boundary', [], async () => {
        const s = await setup([
          { name: 'small', key: 'integer', initialRows: 50 },
          { name: 'large', key: 'text', initialRows: 600 },
        ]);
        const watched: Checkpoint[] = [];
        const watching = new AbortController();
        setMaxListeners(100, watching.signal);
        const watcher = (async () => {
          for await (const event of s.config.watchCheckpoints(watching.signal)) watched.push(event.checkpoint);
        })().catch(() => undefined);
        cleanups.push(async () => {
          watching.abort();
          await watcher;
        });

        let reached!: () => void;
        let release!: () => void;
        const atGate = new Promise<void>((resolve) => (reached = resolve));
        const gate = new Promise<void>((resolve) => (release = resolve));
        const run = s.start({ chunkSize: 100, tableConcurrency: 2 });
        run.snapshotter.beforeChunk = async (table, index) => {
          if (table !== 'large' || index !== 3) return;
          reached();
          await gate;
        };
        await atGate;
        await waitFor(
          async () =>
            (await s.config.getStatus()).tables.find((t) => t.name === 'small')?.snapshotDone ? true : undefined,
          () => 'the small table was never marked copied',
        );
        // The stream keeps committing, but no checkpoint may appear while "large" is still copying.
        await s.h.update('small', [{ key: { id: 1 }, set: { title: 'while large copies' } }]);
        await s.h.insert('large', [rowOf('text', 9000)]);
        await s.waitForStream();
        expect(await s.config.getCheckpoint()).toEqual({ opId: 0n, position: undefined });
        expect(watched.filter((c) => c.opId > 0n || c.position !== undefined)).toEqual([]);

        release();
        const checkpoint = await s.waitForCheckpoint();
        const status = await s.config.getStatus();
        expect(status.snapshotDone).toBe(true);
        for (const table of status.tables) {
          expect(table.snapshotBoundary).toBeDefined();
          expect(comparePositions(checkpoint.position!, table.snapshotBoundary!)).toBeGreaterThanOrEqual(0);
        }
        // The first checkpoint any watcher saw was already past every boundary the copy reported.
        await waitFor(
          async () => (watched.some((c) => c.opId > 0n) ? true : undefined),
          () => 'the watcher saw no checkpoint',
        );
        const firstSeen = watched.find((c) => c.opId > 0n)!;
        for (const boundary of run.snapshotter.boundaries) {
          expect(comparePositions(firstSeen.position!, boundary)).toBeGreaterThanOrEqual(0);
        }
        await s.expectBucketsMatchSource();
      });
    });
  });
}
