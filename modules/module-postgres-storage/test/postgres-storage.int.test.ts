import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import {
  finishSnapshot,
  GLOBAL_TODOS,
  pos,
  readBucket,
  sumOfOps,
  table,
  todo,
  TODOS_BY_LIST,
} from '@bucketsync/service-core-tests';
import { setMaxListeners } from 'node:events';
import pg from 'pg';
import { afterEach, expect, it } from 'vitest';
import { MAX_WRITE_CHECKPOINTS_PER_USER, type PostgresStorage } from '../src/index.js';
import { freshSchemaName, openTestStorage } from './postgres-test-storage.js';

describeIntegration('postgresStorage', 'Postgres storage specifics', (url) => {
  const opened: PostgresStorage[] = [];
  afterEach(async () => {
    for (const storage of opened.splice(0).reverse()) {
      await storage.teardown().catch(() => undefined);
      await storage.close();
    }
  });
  async function open(schema = freshSchemaName()): Promise<PostgresStorage> {
    const storage = await openTestStorage(url, { schema });
    opened.push(storage);
    return storage;
  }
  async function count(sql: string, params: unknown[] = []): Promise<number> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return Number((await client.query<{ n: string }>(sql, params)).rows[0]?.n ?? 0);
    } finally {
      await client.end();
    }
  }

  it('fans checkpoint notifications out to every watcher of the process through one LISTEN connection', async () => {
    const schema = freshSchemaName();
    const writer = await open(schema);
    const readerA = await open(schema);
    const readerB = await open(schema);
    const { config } = await writer.deploySyncConfig(GLOBAL_TODOS);
    const todos = await table(config, 'todos');
    const batch = config.createWriteBatch();
    await finishSnapshot(batch, [todos], pos(1));

    const controller = new AbortController();
    setMaxListeners(100, controller.signal);
    const configs = [await readerA.getSyncConfig(config.configId), await readerB.getSyncConfig(config.configId)];
    const watchers = Array.from({ length: 40 }, (_, i) =>
      configs[i % 2]!.watchCheckpoints(controller.signal)[Symbol.asyncIterator](),
    );
    await Promise.all(watchers.map((w) => w.next()));
    const listeners = await count(`SELECT count(*) AS n FROM pg_stat_activity WHERE query = $1`, [
      `LISTEN "${schema}_checkpoints"`,
    ]);
    expect(listeners).toBe(1);

    await batch.save({ tag: 'insert', table: todos, after: todo('a') });
    const { checkpoint } = await batch.commit(pos(2));
    const events = await Promise.all(watchers.map((w) => w.next()));
    expect(events.every((e) => e.value.checkpoint.opId === checkpoint.opId)).toBe(true);
    controller.abort();
    await Promise.all(watchers.map((w) => w.return?.()));
  });

  it('cleanup removes every op, row and parameter entry of stopped configs and leaves the active one alone', async () => {
    const storage = await open();
    const { config: old } = await storage.deploySyncConfig(GLOBAL_TODOS);
    const oldTodos = await table(old, 'todos');
    const oldBatch = old.createWriteBatch();
    await finishSnapshot(oldBatch, [oldTodos], pos(1));
    for (let i = 0; i < 50; i++) await oldBatch.save({ tag: 'insert', table: oldTodos, after: todo(`t${i}`) });
    await oldBatch.commit(pos(2));

    const { config: next } = await storage.deploySyncConfig(`${GLOBAL_TODOS}\n# v2\n`);
    const nextTodos = await table(next, 'todos');
    const nextBatch = next.createWriteBatch();
    await finishSnapshot(nextBatch, [nextTodos], pos(3));
    await nextBatch.save({ tag: 'insert', table: nextTodos, after: todo('x') });
    await nextBatch.commit(pos(4));

    const schema = storage.ctx.schema;
    expect(await count(`SELECT count(*) AS n FROM ${schema}.ops WHERE config_id = $1`, [old.configId])).toBe(50);
    expect(await storage.cleanupStoppedConfigs()).toBe(1);
    for (const t of ['ops', 'bucket_checksums', 'current_data', 'parameter_index', 'source_tables']) {
      expect(await count(`SELECT count(*) AS n FROM ${schema}.${t} WHERE config_id = $1`, [old.configId])).toBe(0);
    }
    expect(await count(`SELECT count(*) AS n FROM ${schema}.ops WHERE config_id = $1`, [next.configId])).toBe(1);
    expect(await storage.cleanupStoppedConfigs()).toBe(0);
  });

  it('purges tombstones once their table snapshot is done and a later checkpoint passed them', async () => {
    const storage = await open();
    const { config } = await storage.deploySyncConfig(GLOBAL_TODOS);
    const todos = await table(config, 'todos');
    const batch = config.createWriteBatch();
    await batch.save({ tag: 'insert', table: todos, after: todo('a') });
    await batch.save({ tag: 'delete', table: todos, before: { id: 'a' } });
    await batch.commit(pos(1));
    const tombstones = `SELECT count(*) AS n FROM ${storage.ctx.schema}.current_data WHERE deleted_op IS NOT NULL`;
    expect(await count(tombstones)).toBe(1);
    await finishSnapshot(batch, [todos], pos(2));
    await batch.commit(pos(3));
    expect(await count(tombstones)).toBe(0);
  });

  it('keeps memory bounded by flushing a large batch in chunks', async () => {
    const storage = await open();
    const { config } = await storage.deploySyncConfig(GLOBAL_TODOS);
    const todos = await table(config, 'todos');
    let flushes = 0;
    const batch = config.createWriteBatch({ maxBufferedRows: 1000, hooks: { afterFlush: () => void flushes++ } });
    for (let i = 0; i < 5000; i++) await batch.save({ tag: 'insert', table: todos, after: todo(`t${i}`) });
    await batch.flush();
    expect(flushes).toBe(5);
    expect(await count(`SELECT count(*) AS n FROM ${storage.ctx.schema}.ops`)).toBe(5000);
  });

  it('gives cold checksums from the running per-bucket sums, exact at older checkpoints and after compaction', async () => {
    const schema = freshSchemaName();
    const storage = await open(schema);
    const { config } = await storage.deploySyncConfig(GLOBAL_TODOS);
    const todos = await table(config, 'todos');
    const batch = config.createWriteBatch();
    await finishSnapshot(batch, [todos], pos(1));
    for (let i = 0; i < 30; i++) await batch.save({ tag: 'insert', table: todos, after: todo(`t${i}`) });
    const first = await batch.commit(pos(2));
    for (let i = 0; i < 10; i++)
      await batch.save({ tag: 'update', table: todos, after: todo(`t${i}`, { title: 'x' }) });
    await batch.save({ tag: 'delete', table: todos, before: { id: 't29' } });
    const second = await batch.commit(pos(3));
    // Flushed past the newest checkpoint: the stored running sum is ahead of every checkpoint.
    await batch.save({ tag: 'insert', table: todos, after: todo('later') });
    await batch.flush();

    const expected = async (opId: bigint) => {
      const ops = (await readBucket(config, 'global[]', opId)).ops;
      return { bucket: 'global[]', checksum: sumOfOps(ops), count: ops.length };
    };
    const cold = async (opId: bigint) => {
      const reopened = await (await open(schema)).getSyncConfig(config.configId);
      if (!reopened) throw new Error(`sync config ${config.configId} not found after reopening`);
      return reopened.getChecksums(opId, ['global[]', 'none[]']);
    };
    for (const checkpoint of [first.checkpoint.opId, second.checkpoint.opId]) {
      const sums = await cold(checkpoint);
      expect(sums.get('global[]')).toEqual(await expected(checkpoint));
      expect(sums.get('none[]')).toEqual({ bucket: 'none[]', checksum: 0, count: 0 });
    }

    const before = (await cold(second.checkpoint.opId)).get('global[]')!;
    const result = await config.compact();
    expect(result.opsCleared).toBeGreaterThan(0);
    const after = (await cold(second.checkpoint.opId)).get('global[]')!;
    expect(after.checksum).toBe(before.checksum);
    expect(after).toEqual(await expected(second.checkpoint.opId));
    const third = await batch.commit(pos(4));
    expect((await cold(third.checkpoint.opId)).get('global[]')).toEqual(await expected(third.checkpoint.opId));
  });

  it('reads a bucket whose name needs quoting, in byte-bounded chunks that together hold every op once', async () => {
    const storage = await open();
    const { config } = await storage.deploySyncConfig(TODOS_BY_LIST);
    const todos = await table(config, 'todos');
    const batch = config.createWriteBatch();
    await finishSnapshot(batch, [todos], pos(1));
    const list = `it's a \\ "list"`;
    for (let i = 0; i < 500; i++) {
      await batch.save({
        tag: 'insert',
        table: todos,
        after: todo(`t${i}`, { list_id: list, title: 'é'.repeat(i % 7) }),
      });
    }
    const { checkpoint } = await batch.commit(pos(2));
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const bucket = (await client.query<{ bucket: string }>(`SELECT DISTINCT bucket FROM ${storage.ctx.schema}.ops`))
      .rows[0]!.bucket;
    await client.end();
    expect(bucket).toMatch(/'.*\\/); // a quote and a backslash: the COPY literal must escape both
    const read = await readBucket(config, bucket, checkpoint.opId, { chunkOps: 100, chunkBytes: 4000 });
    expect(read.ops.map((o) => o.objectId)).toEqual(Array.from({ length: 500 }, (_, i) => `t${i}`));
    expect(read.chunks).toBeGreaterThan(5);
    expect(read.hasMoreFlags.at(-1)).toBe(false);
    expect(read.hasMoreFlags.slice(0, -1).every((f) => f)).toBe(true);
  });

  it('keeps managed write checkpoints bounded: the most client ids per user, and no rows of long-gone clients', async () => {
    const schema = freshSchemaName();
    const storage = await open(schema);
    const q = `"${schema}".write_checkpoints`;
    const create = (userId: string, clientId: string) =>
      storage.createManagedWriteCheckpoint({ userId, clientId, headPosition: pos(1) });
    // A client that makes up a new id per request: the user keeps the newest 1,000.
    const first = await create('u1', 'c-first');
    await create('u1', 'c-first'); // written again: the same row, a newer id
    expect(first).toBe(1n);
    for (let i = 0; i < 1005; i++) await create('u1', `c${i}`);
    await create('u2', 'other');
    expect(await count(`SELECT count(*) AS n FROM ${q} WHERE user_id = 'u1'`)).toBe(MAX_WRITE_CHECKPOINTS_PER_USER);
    expect(await count(`SELECT count(*) AS n FROM ${q} WHERE client_id IN ('c-first', 'c0', 'c4')`)).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM ${q} WHERE client_id IN ('c5', 'c1004', 'other')`)).toBe(3);
    // Rows not written for 30 days go; a row written again is young again.
    await count(`UPDATE ${q} SET updated_at = now() - interval '31 days' WHERE client_id IN ('other', 'c6', 'c7')`);
    await create('u1', 'c7');
    expect(await storage.removeOldWriteCheckpoints()).toBe(2);
    expect(await count(`SELECT count(*) AS n FROM ${q} WHERE client_id IN ('other', 'c6', 'c7')`)).toBe(1);
  });
});
