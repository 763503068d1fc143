/**
 * The bucket storage contract suite: every storage module runs it with one line,
 * `defineStorageContract(factory)`. Each architecture.md section 3 invariant has its own
 * test; races use the write batch's flush hooks, never sleeps.
 */
import { setMaxListeners } from 'node:events';
import type { BucketStorage, SyncConfigStorage } from '@bucketsync/service-core';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { afterEach, describe, expect, it } from 'vitest';
import {
  bucketRows,
  finishSnapshot,
  GLOBAL_TODOS,
  ITEMS_BY_TAG,
  pos,
  readBucket,
  sumOfOps,
  table,
  todo,
  TODOS_BY_LIST,
} from './storage-contract-fixtures.js';

/** Options the suite passes to the factory. */
export interface StorageFactoryOptions {
  /** Row size limit to configure (bytes of one output row's JSON). Default: the module's default. */
  readonly maxRowBytes?: number;
}

/**
 * Creates a fresh, empty, migrated storage (its own database or schema). Called once per
 * test; the suite closes and tears it down afterwards.
 */
export type StorageFactory = (options?: StorageFactoryOptions) => Promise<BucketStorage>;

/** Defines the storage contract scenarios for one storage module. */
export function defineStorageContract(factory: StorageFactory, suiteName = 'bucket storage contract'): void {
  describe(suiteName, () => {
    const opened: BucketStorage[] = [];
    afterEach(async () => {
      for (const storage of opened.splice(0)) {
        await storage.teardown().catch(() => undefined);
        await storage.close();
      }
    });

    async function deploy(
      content: string,
      options?: StorageFactoryOptions,
    ): Promise<{ storage: BucketStorage; config: SyncConfigStorage }> {
      const storage = await factory(options);
      opened.push(storage);
      const { config } = await storage.deploySyncConfig(content);
      return { storage, config };
    }

    /** A deployed GLOBAL_TODOS config whose initial snapshot is done at P1 (first checkpoint at P2). */
    async function ready(content = GLOBAL_TODOS, options?: StorageFactoryOptions) {
      const deployed = await deploy(content, options);
      const todos = await table(deployed.config, 'todos');
      const batch = deployed.config.createWriteBatch();
      await finishSnapshot(batch, [todos], pos(1));
      await batch.commit(pos(2));
      return { ...deployed, todos, batch };
    }

    describe('invariants (architecture.md section 3)', () => {
      it('1. flush persists pending work but never creates a checkpoint', async () => {
        const { config, todos, batch } = await ready();
        const before = await config.getCheckpoint();
        await batch.save({ tag: 'insert', table: todos, after: todo('t1') });
        const flushed = await batch.flush();
        expect(flushed?.opsWritten).toBe(1);
        expect(await config.getCheckpoint()).toEqual(before);
        // Durable: a new batch (as after a crash) commits it without re-saving.
        await batch.close();
        const next = config.createWriteBatch();
        const { checkpoint } = await next.commit(pos(3));
        expect(checkpoint.opId).toBeGreaterThan(before.opId);
        expect([...(await bucketRows(config, 'global[]', checkpoint.opId)).keys()]).toEqual(['t1']);
      });

      it('2. commit creates a checkpoint only once the snapshot is done and the position passed the last checkpoint and every boundary', async () => {
        const { config } = await deploy(GLOBAL_TODOS);
        const todos = await table(config, 'todos');
        const batch = config.createWriteBatch();
        await batch.save({ tag: 'insert', table: todos, after: todo('t1') });
        const early = await batch.commit(pos(2));
        expect(early.checkpointCreated).toBe(false);
        expect(early.blockedBy).toMatch(/snapshot/);

        await batch.markTableSnapshotDone([todos], pos(5));
        await batch.markSnapshotDone(pos(4));
        const beforeBoundary = await batch.commit(pos(3));
        expect(beforeBoundary.checkpointCreated).toBe(false);
        expect(beforeBoundary.blockedBy).toMatch(/boundary/);

        const first = await batch.commit(pos(6));
        expect(first.checkpointCreated).toBe(true);
        expect(first.checkpoint.position).toBe(pos(6));

        await batch.save({ tag: 'insert', table: todos, after: todo('t2') });
        const backwards = await batch.commit(pos(5));
        expect(backwards.checkpointCreated).toBe(false);
        expect(await config.getCheckpoint()).toEqual(first.checkpoint);
        expect((await config.getStatus()).lastCommitPosition).toBe(pos(5));
      });

      it('3. markSnapshotDone refuses with SNAPSHOT_PENDING naming pending tables, including one queued after the snapshot started', async () => {
        const { config } = await deploy(TODOS_BY_LIST);
        const todos = await table(config, 'todos');
        const lists = await table(config, 'lists');
        const batch = config.createWriteBatch({ mode: 'snapshot' });
        await batch.markTableSnapshotDone([todos, lists], pos(1));
        // A table queued while the snapshot queue was running.
        const late = await table(config, 'late_table');
        const error = await batch.markSnapshotDone(pos(2)).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ServiceError);
        expect((error as ServiceError).code).toBe(ErrorCode.SNAPSHOT_PENDING);
        expect((error as ServiceError).message).toContain('public.late_table');

        await batch.markTableSnapshotRequired(todos);
        const again = (await batch.markSnapshotDone(pos(2)).catch((e: unknown) => e)) as ServiceError;
        expect(again.code).toBe(ErrorCode.SNAPSHOT_PENDING);
        expect(again.message).toContain('public.todos');
        expect(again.message).toContain('public.late_table');

        await batch.markTableSnapshotDone([todos, late], pos(3));
        await expect(batch.markSnapshotDone(pos(3))).resolves.toBeUndefined();
        expect((await config.getStatus()).snapshotDone).toBe(true);
      });

      it('4. snapshot writes are insert-if-absent: a live record or a tombstone wins', async () => {
        const { config } = await deploy(GLOBAL_TODOS);
        const todos = await table(config, 'todos');
        const stream = config.createWriteBatch();
        await stream.save({ tag: 'insert', table: todos, after: todo('live', { title: 'streamed' }) });
        await stream.save({ tag: 'delete', table: todos, before: { id: 'gone' } });
        await stream.flush();

        const snapshot = config.createWriteBatch({ mode: 'snapshot' });
        await snapshot.save({ tag: 'insert', table: todos, after: todo('live', { title: 'snapshot' }) });
        await snapshot.save({ tag: 'insert', table: todos, after: todo('gone') });
        await snapshot.save({ tag: 'insert', table: todos, after: todo('new') });
        const result = await snapshot.flush();
        expect(result?.rowsSkipped).toBe(2);
        await finishSnapshot(snapshot, [todos], pos(1));
        const { checkpoint } = await stream.commit(pos(2));
        const rows = await bucketRows(config, 'global[]', checkpoint.opId);
        expect([...rows.keys()].sort()).toEqual(['live', 'new']);
        expect(rows.get('live')).toContain('streamed');
      });

      it('5. a streamed delete leaves a tombstone while a snapshot can run, so a later snapshot write of the row is skipped', async () => {
        const { config } = await deploy(GLOBAL_TODOS);
        const todos = await table(config, 'todos');
        const stream = config.createWriteBatch();
        await stream.save({ tag: 'insert', table: todos, after: todo('a') });
        await stream.save({ tag: 'delete', table: todos, before: { id: 'a' } });
        await stream.commit(pos(1));
        const snapshot = config.createWriteBatch({ mode: 'snapshot' });
        await snapshot.save({ tag: 'insert', table: todos, after: todo('a') });
        expect((await snapshot.flush())?.rowsSkipped).toBe(1);
        await finishSnapshot(snapshot, [todos], pos(2));
        const { checkpoint } = await stream.commit(pos(3));
        expect((await bucketRows(config, 'global[]', checkpoint.opId)).size).toBe(0);
      });

      it('6. re-applying the same events after a simulated crash changes nothing', async () => {
        const { config, todos } = await ready();
        const events = async (batch: ReturnType<SyncConfigStorage['createWriteBatch']>) => {
          await batch.save({ tag: 'insert', table: todos, after: todo('a'), position: `${pos(3)}/1` });
          await batch.save({ tag: 'insert', table: todos, after: todo('b'), position: `${pos(3)}/2` });
          await batch.save({
            tag: 'update',
            table: todos,
            after: todo('a', { title: 'edited' }),
            position: `${pos(3)}/3`,
          });
          await batch.save({ tag: 'delete', table: todos, before: { id: 'b' }, position: `${pos(3)}/4` });
          return batch.commit(pos(4));
        };
        const first = await events(config.createWriteBatch());
        const opsBefore = await readBucket(config, 'global[]', first.checkpoint.opId);
        const checksumBefore = await config.getChecksums(first.checkpoint.opId, ['global[]']);

        const replay = config.createWriteBatch();
        const second = await events(replay);
        expect(second.checkpoint).toEqual(first.checkpoint);
        expect((await readBucket(config, 'global[]', second.checkpoint.opId)).ops).toEqual(opsBefore.ops);
        expect(await config.getChecksums(second.checkpoint.opId, ['global[]'])).toEqual(checksumBefore);
      });

      it('7. op ids strictly increase and a bucket checksum is the wrapping sum of its ops, before and after compaction', async () => {
        const { config, todos, batch } = await ready();
        for (let round = 0; round < 3; round++) {
          for (let i = 0; i < 20; i++) {
            await batch.save({
              tag: 'update',
              table: todos,
              after: todo(`t${i}`, { title: `v${round}`, n: BigInt(round * 1_000_000_007) }),
            });
          }
          await batch.save({ tag: 'delete', table: todos, before: { id: `t${round}` } });
        }
        const { checkpoint } = await batch.commit(pos(3));
        const { ops } = await readBucket(config, 'global[]', checkpoint.opId);
        for (let i = 1; i < ops.length; i++) expect(ops[i]!.opId).toBeGreaterThan(ops[i - 1]!.opId);
        const before = (await config.getChecksums(checkpoint.opId, ['global[]'])).get('global[]')!;
        expect(before.checksum).toBe(sumOfOps(ops));

        const result = await config.compact();
        expect(result.opsMoved).toBeGreaterThan(0);
        const compacted = await readBucket(config, 'global[]', checkpoint.opId);
        expect(compacted.ops.some((op) => op.op === 'MOVE' || op.op === 'CLEAR')).toBe(true);
        expect(sumOfOps(compacted.ops)).toBe(before.checksum);
        expect((await config.getChecksums(checkpoint.opId, ['global[]'])).get('global[]')!.checksum).toBe(
          before.checksum,
        );
        expect(await bucketRows(config, 'global[]', checkpoint.opId)).toEqual(await bucketRowsFromOps(ops));

        // New ops keep increasing past compacted ones.
        await batch.save({ tag: 'insert', table: todos, after: todo('late') });
        const next = await batch.commit(pos(4));
        expect(next.checkpoint.opId).toBeGreaterThan(checkpoint.opId);
      });

      it('8. a checkpoint older than a compaction is reported invalidated, so the client gets a newer checkpoint', async () => {
        const { config, todos, batch } = await ready();
        await batch.save({ tag: 'insert', table: todos, after: todo('a', { title: 'v1' }) });
        const old = await batch.commit(pos(3));
        await batch.save({ tag: 'update', table: todos, after: todo('a', { title: 'v2' }) });
        await batch.commit(pos(4));

        const controller = new AbortController();
        const watcher = config.watchCheckpoints(controller.signal)[Symbol.asyncIterator]();
        const initial = (await watcher.next()).value;
        expect(initial.compactedThrough).toBe(0n);

        await config.compact();
        const event = (await watcher.next()).value;
        expect(event.compactedThrough).toBeGreaterThan(old.checkpoint.opId);
        controller.abort();
        await watcher.return?.();

        const chunks = [];
        for await (const chunk of config.getBucketData({
          checkpoint: old.checkpoint.opId,
          buckets: [{ bucket: 'global[]', after: 0n }],
        })) {
          chunks.push(chunk);
        }
        expect(chunks.every((c) => c.checkpointInvalidated)).toBe(true);
        const current = await config.getCheckpoint();
        for await (const chunk of config.getBucketData({
          checkpoint: current.opId,
          buckets: [{ bucket: 'global[]', after: 0n }],
        })) {
          expect(chunk.checkpointInvalidated).toBe(false);
        }
      });

      it('9. flush hooks run before and after every flush, in order', async () => {
        const { config, todos } = await ready();
        const calls: string[] = [];
        const batch = config.createWriteBatch({
          maxBufferedRows: 2,
          hooks: {
            beforeFlush: (c) => void calls.push(`before:${c.pendingSaves}`),
            afterFlush: (c) => void calls.push(`after:${c.result.rowsApplied}`),
          },
        });
        for (const id of ['a', 'b', 'c']) await batch.save({ tag: 'insert', table: todos, after: todo(id) });
        await batch.flush();
        expect(calls).toEqual(['before:2', 'after:2', 'before:1', 'after:1']);
      });
    });

    describe('snapshot while streaming', () => {
      it('a row deleted by the stream while its snapshot write is held does not reappear, before or after the snapshot is marked done', async () => {
        const { config } = await deploy(GLOBAL_TODOS);
        const todos = await table(config, 'todos');
        const stream = config.createWriteBatch();
        await stream.save({ tag: 'insert', table: todos, after: todo('a'), position: `${pos(1)}/1` });
        await stream.commit(pos(1));

        let injected = false;
        const snapshot = config.createWriteBatch({
          mode: 'snapshot',
          hooks: {
            // The snapshot has read row A from the source; before it writes, the stream deletes A.
            beforeFlush: async () => {
              if (injected) return;
              injected = true;
              await stream.save({ tag: 'delete', table: todos, before: { id: 'a' }, position: `${pos(2)}/1` });
              await stream.commit(pos(2));
            },
          },
        });
        await snapshot.save({ tag: 'insert', table: todos, after: todo('a') });
        await snapshot.save({ tag: 'insert', table: todos, after: todo('b') });
        await snapshot.flush();
        expect(injected).toBe(true);

        await snapshot.markTableSnapshotDone([todos], pos(3));
        const beforeDone = await stream.commit(pos(4));
        expect(beforeDone.checkpointCreated).toBe(false);
        await snapshot.markSnapshotDone(pos(3));
        const afterDone = await stream.commit(pos(5));
        expect(afterDone.checkpointCreated).toBe(true);
        expect([...(await bucketRows(config, 'global[]', afterDone.checkpoint.opId)).keys()]).toEqual(['b']);

        // Later checkpoints (tombstones may be purged by now) still do not bring A back.
        await stream.save({ tag: 'insert', table: todos, after: todo('c'), position: `${pos(6)}/1` });
        const later = await stream.commit(pos(6));
        expect([...(await bucketRows(config, 'global[]', later.checkpoint.opId)).keys()].sort()).toEqual(['b', 'c']);
      });

      it('saves snapshot progress with the flushed data, so a restart resumes from the last chunk', async () => {
        const { config } = await deploy(GLOBAL_TODOS);
        const todos = await table(config, 'todos');
        const snapshot = config.createWriteBatch({ mode: 'snapshot' });
        await snapshot.save({ tag: 'insert', table: todos, after: todo('a') });
        await snapshot.updateTableProgress(todos, { lastKey: '["a"]', copiedRows: 1 });
        expect((await config.getStatus()).tables[0]!.snapshotProgress).toBeUndefined();
        await snapshot.flush();
        expect((await config.getStatus()).tables[0]!.snapshotProgress).toEqual({ lastKey: '["a"]', copiedRows: 1 });
      });
    });

    describe('bucket ops', () => {
      it('a row moving between buckets emits a PUT in the new bucket and a REMOVE in the old one', async () => {
        const { config } = await deploy(TODOS_BY_LIST);
        const todos = await table(config, 'todos');
        const lists = await table(config, 'lists');
        const batch = config.createWriteBatch();
        await finishSnapshot(batch, [todos, lists], pos(1));
        await batch.save({ tag: 'insert', table: todos, after: todo('t1', { list_id: 'l1' }) });
        const first = await batch.commit(pos(2));
        await batch.save({ tag: 'update', table: todos, after: todo('t1', { list_id: 'l2' }) });
        const second = await batch.commit(pos(3));

        const oldBucket = await readBucket(config, 'by_list["l1"]', second.checkpoint.opId, {
          after: first.checkpoint.opId,
        });
        const newBucket = await readBucket(config, 'by_list["l2"]', second.checkpoint.opId);
        expect(oldBucket.ops.map((o) => [o.op, o.objectId])).toEqual([['REMOVE', 't1']]);
        expect(newBucket.ops.map((o) => [o.op, o.objectId])).toEqual([['PUT', 't1']]);
        expect(JSON.parse(newBucket.ops[0]!.data!)).toMatchObject({ id: 't1', list_id: 'l2' });
      });

      it('an update that changes the row key removes the old key and puts the new one', async () => {
        const { config, todos, batch } = await ready();
        await batch.save({ tag: 'insert', table: todos, after: todo('old') });
        await batch.save({ tag: 'update', table: todos, before: { id: 'old' }, after: todo('new') });
        const { checkpoint } = await batch.commit(pos(3));
        expect([...(await bucketRows(config, 'global[]', checkpoint.opId)).keys()]).toEqual(['new']);
      });

      it('truncate removes every row of the table from its buckets and drop forgets the table', async () => {
        const { config, todos, batch } = await ready();
        for (let i = 0; i < 30; i++) await batch.save({ tag: 'insert', table: todos, after: todo(`t${i}`) });
        await batch.commit(pos(3));
        await batch.truncate([todos]);
        const { checkpoint } = await batch.commit(pos(4));
        expect((await bucketRows(config, 'global[]', checkpoint.opId)).size).toBe(0);
        const sum = (await config.getChecksums(checkpoint.opId, ['global[]'])).get('global[]')!;
        expect(sum.checksum).toBe(sumOfOps((await readBucket(config, 'global[]', checkpoint.opId)).ops));

        await batch.save({ tag: 'insert', table: todos, after: todo('again') });
        await batch.drop([todos]);
        const dropped = await batch.commit(pos(5));
        expect((await bucketRows(config, 'global[]', dropped.checkpoint.opId)).size).toBe(0);
        expect((await config.getStatus()).tables).toHaveLength(0);
      });

      it('a schema change gives the table a new identity and names the one it replaces', async () => {
        const { config, todos } = await ready();
        const same = await config.resolveTable({
          schema: 'public',
          name: 'todos',
          replicaIdColumns: ['id'],
          objectId: 'todos',
        });
        expect(same.created).toBe(false);
        expect(same.table.id).toBe(todos.id);
        const changed = await config.resolveTable({
          schema: 'public',
          name: 'todos',
          replicaIdColumns: ['id', 'list_id'],
          objectId: 'todos',
        });
        expect(changed.created).toBe(true);
        expect(changed.table.id).not.toBe(todos.id);
        expect(changed.table.snapshotDone).toBe(false);
        expect(changed.replaced.map((t) => t.id)).toEqual([todos.id]);
      });

      it('a column change that alters stored rows gives a new identity; one that does not is recorded', async () => {
        const { config, todos } = await ready();
        const col = (name: string, hasDefault = false) => ({ name, type: 'text', hasDefault });
        const describe = (columns: { name: string; type: string; hasDefault: boolean }[]) =>
          config.resolveTable({
            schema: 'public',
            name: 'todos',
            replicaIdColumns: ['id'],
            objectId: 'todos',
            columns,
          });
        const first = await describe([col('id'), col('title')]);
        expect(first.created).toBe(false);
        expect(first.table.id).toBe(todos.id);
        expect(first.table.columns).toEqual([col('id'), col('title')]);

        // A column added without a default changes no stored row: same identity, columns recorded.
        const added = await describe([col('id'), col('title'), col('note')]);
        expect(added.created).toBe(false);
        expect(added.table.id).toBe(todos.id);
        expect(added.table.columns?.map((c) => c.name)).toEqual(['id', 'title', 'note']);

        // A dropped column changed every stored row: a new identity to copy, replacing the old.
        const dropped = await describe([col('id'), col('note')]);
        expect(dropped.created).toBe(true);
        expect(dropped.table.snapshotDone).toBe(false);
        expect(dropped.replaced.map((t) => t.id)).toEqual([todos.id]);

        // A crash before the old identity was dropped: the next description replaces it again.
        const again = await describe([col('id'), col('note')]);
        expect(again.created).toBe(false);
        expect(again.table.id).toBe(dropped.table.id);
        expect(again.replaced.map((t) => t.id)).toEqual([todos.id]);

        // Clients had the table: no checkpoint shows it half copied.
        const batch = config.createWriteBatch();
        await batch.drop(dropped.replaced);
        const blocked = await batch.commit(pos(3));
        expect(blocked.checkpointCreated).toBe(false);
        expect(blocked.blockedBy).toContain('being copied again');
        await batch.markTableSnapshotDone([dropped.table], pos(4));
        expect((await batch.commit(pos(5))).checkpointCreated).toBe(true);
        await batch.close();
      });

      it('stores and serves large rows whole, and skips a row over the size limit with ROW_TOO_LARGE', async () => {
        const errors: ServiceError[] = [];
        const { config, todos } = await ready(GLOBAL_TODOS, { maxRowBytes: 2 * 1024 * 1024 });
        const batch = config.createWriteBatch({ onRowError: (e) => void errors.push(e) });
        const big = 'x'.repeat(1024 * 1024) + '\n\t\\"end';
        await batch.save({ tag: 'insert', table: todos, after: todo('big', { title: big }) });
        await batch.save({ tag: 'insert', table: todos, after: todo('huge', { title: 'y'.repeat(3 * 1024 * 1024) }) });
        await batch.save({ tag: 'insert', table: todos, after: todo('small') });
        const { checkpoint } = await batch.commit(pos(3));
        expect(errors.map((e) => e.code)).toEqual([ErrorCode.ROW_TOO_LARGE]);
        expect(errors[0]!.message).toContain('huge');
        const read = await readBucket(config, 'global[]', checkpoint.opId, { chunkBytes: 64 * 1024 });
        expect(read.ops.map((o) => o.objectId)).toEqual(['big', 'small']);
        expect(read.chunks).toBe(2);
        expect(JSON.parse(read.ops[0]!.data!).title).toBe(big);
      });

      it('puts a row into every bucket it belongs to when it belongs to many', async () => {
        const { config } = await deploy(ITEMS_BY_TAG);
        const items = await table(config, 'items');
        const batch = config.createWriteBatch();
        await finishSnapshot(batch, [items], pos(1));
        const tags = Array.from({ length: 250 }, (_, i) => `tag${i}`);
        await batch.save({ tag: 'insert', table: items, after: { id: 'i1', tags: JSON.stringify(tags) } });
        const first = await batch.commit(pos(2));
        const sums = await config.getChecksums(
          first.checkpoint.opId,
          tags.map((t) => `by_tag["${t}"]`),
        );
        expect([...sums.values()].filter((s) => s.count === 1)).toHaveLength(250);

        await batch.save({ tag: 'update', table: items, after: { id: 'i1', tags: JSON.stringify(tags.slice(0, 10)) } });
        const second = await batch.commit(pos(3));
        const last = await readBucket(config, 'by_tag["tag249"]', second.checkpoint.opId);
        expect(last.ops.map((o) => o.op)).toEqual(['PUT', 'REMOVE']);
        const kept = await readBucket(config, 'by_tag["tag0"]', second.checkpoint.opId);
        expect(kept.ops.map((o) => o.op)).toEqual(['PUT', 'PUT']);
      });

      it('reads a 100,000-op bucket in chunks with has_more on every chunk but the last', async () => {
        const { config, todos } = await ready();
        const batch = config.createWriteBatch();
        for (let i = 0; i < 100_000; i++)
          await batch.save({ tag: 'insert', table: todos, after: { id: `t${i}`, n: BigInt(i) } });
        const { checkpoint } = await batch.commit(pos(3));
        const read = await readBucket(config, 'global[]', checkpoint.opId, { chunkOps: 10_000 });
        expect(read.ops).toHaveLength(100_000);
        expect(read.chunks).toBe(10);
        expect(read.hasMoreFlags).toEqual([...Array(9).fill(true), false]);
        const sum = (await config.getChecksums(checkpoint.opId, ['global[]'])).get('global[]')!;
        expect(sum).toEqual({ bucket: 'global[]', checksum: sumOfOps(read.ops), count: 100_000 });
        const tail = await readBucket(config, 'global[]', checkpoint.opId, { after: read.ops[99_994]!.opId });
        expect(tail.ops.map((o) => o.objectId)).toEqual(['t99995', 't99996', 't99997', 't99998', 't99999']);
      }, 60_000);

      it('computes checksums incrementally as the bucket grows, equal to a full recount', async () => {
        const { config, todos, batch } = await ready();
        let last = 0n;
        for (let round = 0; round < 3; round++) {
          for (let i = 0; i < 5; i++) await batch.save({ tag: 'insert', table: todos, after: todo(`r${round}-${i}`) });
          const { checkpoint } = await batch.commit(pos(3 + round));
          const cached = (await config.getChecksums(checkpoint.opId, ['global[]'])).get('global[]')!;
          expect(cached.checksum).toBe(sumOfOps((await readBucket(config, 'global[]', checkpoint.opId)).ops));
          expect(cached.count).toBe(5 * (round + 1));
          last = checkpoint.opId;
        }
        // An older checkpoint after a newer one was cached is still exact.
        const older = await config.getChecksums(last - 5n, ['global[]', 'empty[]']);
        expect(older.get('global[]')!.count).toBe(10);
        expect(older.get('empty[]')).toEqual({ bucket: 'empty[]', checksum: 0, count: 0 });
      });
    });

    describe('parameter lookups', () => {
      async function listsReady() {
        const { config, storage } = await deploy(TODOS_BY_LIST);
        const todos = await table(config, 'todos');
        const lists = await table(config, 'lists');
        const batch = config.createWriteBatch();
        await finishSnapshot(batch, [todos, lists], pos(1));
        const lookup = (user: string) => JSON.stringify(['by_list', '0', user]);
        return { storage, config, lists, batch, lookup };
      }

      it('reads the newest entry at or before the checkpoint', async () => {
        const { config, lists, batch, lookup } = await listsReady();
        await batch.save({ tag: 'insert', table: lists, after: { id: 'l1', owner_id: 'u1' } });
        const first = await batch.commit(pos(2));
        await batch.save({ tag: 'update', table: lists, after: { id: 'l1', owner_id: 'u2' } });
        await batch.save({ tag: 'insert', table: lists, after: { id: 'l2', owner_id: 'u1' } });
        const second = await batch.commit(pos(3));

        const atFirst = await config.getParameterSets(first.checkpoint.opId, [lookup('u1'), lookup('u2')]);
        expect(atFirst.get(lookup('u1'))).toEqual([{ list_id: 'l1' }]);
        expect(atFirst.get(lookup('u2'))).toEqual([]);
        const atSecond = await config.getParameterSets(second.checkpoint.opId, [lookup('u1'), lookup('u2')]);
        expect(atSecond.get(lookup('u1'))).toEqual([{ list_id: 'l2' }]);
        expect(atSecond.get(lookup('u2'))).toEqual([{ list_id: 'l1' }]);
      });

      it('a deleted parameter row stops granting its bucket', async () => {
        const { config, lists, batch, lookup } = await listsReady();
        await batch.save({ tag: 'insert', table: lists, after: { id: 'l1', owner_id: 'u1' } });
        const granted = await batch.commit(pos(2));
        await batch.save({ tag: 'delete', table: lists, before: { id: 'l1' } });
        const revoked = await batch.commit(pos(3));
        expect((await config.getParameterSets(granted.checkpoint.opId, [lookup('u1')])).get(lookup('u1'))).toEqual([
          { list_id: 'l1' },
        ]);
        expect((await config.getParameterSets(revoked.checkpoint.opId, [lookup('u1')])).get(lookup('u1'))).toEqual([]);
      });
    });

    describe('checkpoints and configs', () => {
      it('every watcher sees each new checkpoint', async () => {
        const { config, todos, batch } = await ready();
        const controller = new AbortController();
        setMaxListeners(50, controller.signal);
        const watchers = Array.from({ length: 20 }, () =>
          config.watchCheckpoints(controller.signal)[Symbol.asyncIterator](),
        );
        const initial = await Promise.all(watchers.map((w) => w.next()));
        expect(new Set(initial.map((r) => r.value.checkpoint.position))).toEqual(new Set([pos(2)]));
        await batch.save({ tag: 'insert', table: todos, after: todo('a') });
        const { checkpoint } = await batch.commit(pos(3));
        const next = await Promise.all(watchers.map((w) => w.next()));
        expect(next.every((r) => r.value.checkpoint.opId === checkpoint.opId)).toBe(true);
        controller.abort();
        await Promise.all(watchers.map((w) => w.return?.()));
      });

      it('names the buckets, parameter lookups and write checkpoint users that changed between two checkpoints', async () => {
        const { config } = await deploy(TODOS_BY_LIST);
        const todos = await table(config, 'todos');
        const lists = await table(config, 'lists');
        const batch = config.createWriteBatch();
        await finishSnapshot(batch, [todos, lists], pos(1));
        await batch.save({ tag: 'insert', table: todos, after: todo('a', { list_id: 'l1' }) });
        await batch.save({ tag: 'insert', table: lists, after: { id: 'l1', owner_id: 'u1' } });
        const first = (await batch.commit(pos(2))).checkpoint.opId;
        await batch.save({ tag: 'insert', table: todos, after: todo('b', { list_id: 'l2' }) });
        await batch.addCustomWriteCheckpoint({ userId: 'u9', checkpoint: 7n });
        const second = (await batch.commit(pos(3))).checkpoint.opId;
        await batch.save({ tag: 'update', table: lists, after: { id: 'l1', owner_id: 'u2' } });
        await batch.save({ tag: 'update', table: todos, after: todo('a', { list_id: 'l1', title: 'x' }) });
        const third = (await batch.commit(pos(4))).checkpoint.opId;
        // Flushed after the last checkpoint: not a change up to it.
        await batch.save({ tag: 'insert', table: todos, after: todo('c', { list_id: 'l3' }) });
        await batch.save({ tag: 'update', table: todos, after: todo('b', { list_id: 'l2', title: 'y' }) });
        await batch.flush();
        const lookup = (user: string) => JSON.stringify(['by_list', '0', user]);

        const firstToSecond = await config.getCheckpointChanges(first, second);
        expect(firstToSecond).toMatchObject({ from: first, to: second });
        expect([...firstToSecond.buckets!]).toEqual(['by_list["l2"]']);
        expect([...firstToSecond.parameterLookups!]).toEqual([]);
        expect([...firstToSecond.customWriteCheckpointUsers!]).toEqual(['u9']);

        const secondToThird = await config.getCheckpointChanges(second, third);
        expect([...secondToThird.buckets!]).toEqual(['by_list["l1"]']);
        expect(new Set(secondToThird.parameterLookups)).toEqual(new Set([lookup('u1'), lookup('u2')]));
        expect([...secondToThird.customWriteCheckpointUsers!]).toEqual([]);

        const whole = await config.getCheckpointChanges(0n, third);
        expect(new Set(whole.buckets)).toEqual(new Set(['by_list["l1"]', 'by_list["l2"]']));
        const none = await config.getCheckpointChanges(third, third);
        expect([...none.buckets!, ...none.parameterLookups!, ...none.customWriteCheckpointUsers!]).toEqual([]);

        // The checksums it may have cached on the way are the checksums at that checkpoint.
        for (const [from, to] of [
          [first, second],
          [second, third],
        ] as const) {
          await config.getCheckpointChanges(from, to);
          for (const bucket of ['by_list["l1"]', 'by_list["l2"]']) {
            const ops = (await readBucket(config, bucket, to)).ops;
            expect((await config.getChecksums(to, [bucket])).get(bucket)).toEqual({
              bucket,
              checksum: sumOfOps(ops),
              count: ops.length,
            });
          }
        }
      });

      it('keepalive advances the checkpoint position between transactions but not inside one', async () => {
        const { todos, batch } = await ready();
        const idle = await batch.keepalive(pos(3));
        expect(idle.checkpointCreated).toBe(true);
        expect(idle.checkpoint.position).toBe(pos(3));
        await batch.save({ tag: 'insert', table: todos, after: todo('a') });
        const busy = await batch.keepalive(pos(4));
        expect(busy.checkpointCreated).toBe(false);
        expect(busy.checkpoint.position).toBe(pos(3));
      });

      it('deploying the same sync config twice changes nothing, and an invalid one is refused with SYNC_CONFIG_INVALID', async () => {
        const { storage, config } = await deploy(GLOBAL_TODOS);
        const again = await storage.deploySyncConfig(GLOBAL_TODOS);
        expect(again.changed).toBe(false);
        expect(again.config.configId).toBe(config.configId);
        const error = (await storage
          .deploySyncConfig('bucket_definitions: [not a map')
          .catch((e: unknown) => e)) as ServiceError;
        expect(error).toBeInstanceOf(ServiceError);
        expect(error.code).toBe(ErrorCode.SYNC_CONFIG_INVALID);
      });

      it('a processing config becomes active at its first checkpoint, and the previous one stops and can be cleaned up', async () => {
        const { storage, config: first, todos } = await ready();
        expect((await storage.getActiveSyncConfig())?.configId).toBe(first.configId);
        const { config: second, changed } = await storage.deploySyncConfig(TODOS_BY_LIST);
        expect(changed).toBe(true);
        expect((await storage.getProcessingSyncConfig())?.configId).toBe(second.configId);
        expect((await storage.getActiveSyncConfig())?.configId).toBe(first.configId);

        const secondTodos = await table(second, 'todos');
        const lists = await table(second, 'lists');
        const batch = second.createWriteBatch();
        await finishSnapshot(batch, [secondTodos, lists], pos(3));
        await batch.commit(pos(4));
        expect((await storage.getActiveSyncConfig())?.configId).toBe(second.configId);
        expect((await first.getStatus()).state).toBe('stopped');
        expect(await storage.cleanupStoppedConfigs()).toBe(1);
        expect((await first.getStatus()).state).toBe('terminated');
        expect(todos.id).toBeGreaterThan(0);
      });

      it('restarting replication after history loss creates a fresh processing copy while the active one keeps serving', async () => {
        const { storage, config } = await ready();
        const fresh = await storage.restartReplication(config.configId);
        expect(fresh.configId).not.toBe(config.configId);
        expect(fresh.content).toBe(config.content);
        expect((await storage.getActiveSyncConfig())?.configId).toBe(config.configId);
        expect((await fresh.getStatus()).snapshotDone).toBe(false);
      });

      it('only one replicator holds the replication lock of a config at a time', async () => {
        const { storage, config } = await deploy(GLOBAL_TODOS);
        const first = await storage.acquireReplicationLock(config.configId, { holder: 'a' });
        expect(first).toBeDefined();
        expect(await storage.acquireReplicationLock(config.configId, { holder: 'b' })).toBeUndefined();
        await first!.refresh();
        await first!.release();
        const second = await storage.acquireReplicationLock(config.configId, { holder: 'b' });
        expect(second?.holder).toBe('b');
        await expect(first!.refresh()).rejects.toBeInstanceOf(ServiceError);
      });

      it('a held lock is taken over at once when the caller judges its holder gone', async () => {
        const { storage, config } = await deploy(GLOBAL_TODOS);
        const crashed = await storage.acquireReplicationLock(config.configId, { holder: 'crashed' });
        expect(crashed).toBeDefined();
        const asked: string[] = [];
        const refused = await storage.acquireReplicationLock(config.configId, {
          holder: 'next',
          takeOver: (current) => (asked.push(current), false),
        });
        expect(refused).toBeUndefined();
        expect(asked).toEqual(['crashed']);
        const next = await storage.acquireReplicationLock(config.configId, { holder: 'next', takeOver: () => true });
        expect(next?.holder).toBe('next');
        await expect(crashed!.refresh()).rejects.toBeInstanceOf(ServiceError);
        await next!.release();
      });

      it('reports the last replication error in status until the next checkpoint', async () => {
        const { config, batch } = await ready();
        await config.reportError(new Error('source went away'));
        expect((await config.getStatus()).lastError).toBe('source went away');
        await batch.keepalive(pos(3));
        expect((await config.getStatus()).lastError).toBeUndefined();
      });
    });

    describe('write checkpoints', () => {
      it('managed write checkpoint ids increase per user and client and resolve once a checkpoint reaches the head', async () => {
        const { storage } = await deploy(GLOBAL_TODOS);
        const a1 = await storage.createManagedWriteCheckpoint({ userId: 'u1', clientId: 'c1', headPosition: pos(5) });
        const a2 = await storage.createManagedWriteCheckpoint({ userId: 'u1', clientId: 'c1', headPosition: pos(6) });
        const b1 = await storage.createManagedWriteCheckpoint({ userId: 'u1', clientId: 'c2', headPosition: pos(6) });
        expect(a2).toBeGreaterThan(a1);
        expect(b1).toBe(1n);
        expect(
          await storage.getManagedWriteCheckpoint({ userId: 'u1', clientId: 'c1', position: pos(5) }),
        ).toBeUndefined();
        expect(await storage.getManagedWriteCheckpoint({ userId: 'u1', clientId: 'c1', position: pos(6) })).toBe(a2);
        expect(
          await storage.getManagedWriteCheckpoint({ userId: 'u2', clientId: 'c1', position: pos(9) }),
        ).toBeUndefined();
      });

      it('a custom write checkpoint becomes visible with the checkpoint that includes it', async () => {
        const { config, batch } = await ready();
        const before = await config.getCheckpoint();
        await batch.addCustomWriteCheckpoint({ userId: 'u1', checkpoint: 42n });
        const { checkpoint } = await batch.commit(pos(3));
        expect(await config.getCustomWriteCheckpoint('u1', before.opId)).toBeUndefined();
        expect(await config.getCustomWriteCheckpoint('u1', checkpoint.opId)).toBe(42n);
      });
    });
  });
}

async function bucketRowsFromOps(
  ops: readonly { op: string; objectId?: string; data?: string }[],
): Promise<Map<string, string>> {
  const rows = new Map<string, string>();
  for (const op of ops) {
    if (op.op === 'PUT') rows.set(op.objectId!, op.data ?? '');
    else if (op.op === 'REMOVE') rows.delete(op.objectId!);
  }
  return rows;
}
