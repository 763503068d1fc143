import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { createLogger } from '@bucketsync/lib-services';
import {
  decodeSyncRequest,
  syncStream,
  type OpId,
  type StoredTable,
  type SyncConfigStorage,
  type SyncLine,
  type WireBucketChecksum,
  type WriteBatch,
} from '@bucketsync/service-core';
import { finishSnapshot, pos, table } from '@bucketsync/service-core-tests';
import { parseSyncConfig, type SyncConfig } from '@bucketsync/sync-rules';
import { setMaxListeners } from 'node:events';
import { afterEach, expect, it } from 'vitest';
import type { PostgresStorage } from '../src/index.js';
import { freshSchemaName, openTestStorage } from './postgres-test-storage.js';

/** Like the soak: each user syncs their own items, everyone the notices (first). */
const ITEMS_AND_NOTICES = `
bucket_definitions:
  by_owner:
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT id, owner, title FROM items WHERE owner = bucket.owner
  everyone:
    priority: 1
    data:
      - SELECT id, body FROM notices
`;

/** Lists a user owns come from the parameter index. */
const TODOS_BY_OWNED_LIST = `
bucket_definitions:
  by_list:
    parameters: SELECT id AS list_id FROM lists WHERE owner_id = request.user_id()
    data:
      - SELECT * FROM todos WHERE list_id = bucket.list_id
`;

const compiled = new Map<string, SyncConfig>();
function compile(content: string): SyncConfig {
  let config = compiled.get(content);
  if (!config) {
    config = parseSyncConfig(content).config!;
    compiled.set(content, config);
  }
  return config;
}

/**
 * One client of the sync stream: reads every line in the background and keeps the state a
 * PowerSync client keeps, verifying each bucket's checksum at every checkpoint_complete.
 */
class TestClient {
  readonly lines: SyncLine[] = [];
  readonly completed: string[] = [];
  readonly problems: string[] = [];
  /** Op ids, per bucket, of the `data` lines received. */
  readonly dataOps = new Map<string, OpId[]>();
  checkpoint: { lastOpId: string; writeCheckpoint?: string; buckets: Map<string, WireBucketChecksum> } | undefined;
  ended = false;
  private readonly sums = new Map<string, number>();
  private waiters: (() => void)[] = [];

  constructor(readonly stream: AsyncGenerator<SyncLine>) {}

  /** Reads lines until the stream ends. */
  run(): Promise<void> {
    return (async () => {
      try {
        for await (const line of this.stream) this.apply(line);
      } catch (e) {
        this.problems.push(`stream failed: ${String(e)}`);
      }
      this.ended = true;
      this.notify();
    })();
  }

  /** Waits until `predicate` holds (checked after every line). */
  async until(predicate: () => boolean, what: string, timeoutMs = 4000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (this.ended && !predicate()) throw new Error(`stream ended before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out waiting for ${what}; last lines ${JSON.stringify(this.lines.slice(-3), replacer)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  completedAt(opId: OpId): Promise<void> {
    return this.until(() => this.completed.includes(opId.toString()), `checkpoint_complete ${opId}`);
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private apply(line: SyncLine): void {
    this.lines.push(line);
    if ('checkpoint' in line) {
      const c = line.checkpoint;
      this.checkpoint = {
        lastOpId: c.last_op_id,
        ...(c.write_checkpoint !== undefined ? { writeCheckpoint: c.write_checkpoint } : {}),
        buckets: new Map(c.buckets.map((b) => [b.bucket, b])),
      };
    } else if ('checkpoint_diff' in line) {
      const d = line.checkpoint_diff;
      if (!this.checkpoint) this.problems.push('checkpoint_diff before a checkpoint');
      const buckets = new Map(this.checkpoint?.buckets);
      for (const b of d.updated_buckets) buckets.set(b.bucket, b);
      for (const name of d.removed_buckets) {
        buckets.delete(name);
        this.sums.delete(name);
      }
      this.checkpoint = {
        lastOpId: d.last_op_id,
        ...(d.write_checkpoint !== undefined ? { writeCheckpoint: d.write_checkpoint } : {}),
        buckets,
      };
    } else if ('data' in line) {
      const { bucket, data } = line.data;
      const ids = this.dataOps.get(bucket) ?? [];
      for (const op of data) {
        ids.push(BigInt(op.op_id));
        const sum = op.op === 'CLEAR' ? op.checksum : ((this.sums.get(bucket) ?? 0) + op.checksum) | 0;
        this.sums.set(bucket, sum);
      }
      this.dataOps.set(bucket, ids);
    } else if ('checkpoint_complete' in line) {
      const last = line.checkpoint_complete.last_op_id;
      if (last !== this.checkpoint?.lastOpId) this.problems.push(`checkpoint_complete ${last} for another checkpoint`);
      for (const b of this.checkpoint?.buckets.values() ?? []) {
        const sum = this.sums.get(b.bucket) ?? 0;
        if (sum !== b.checksum)
          this.problems.push(`bucket ${b.bucket} at ${last}: checksum ${sum}, expected ${b.checksum}`);
      }
      this.completed.push(last);
    }
    this.notify();
  }
}

function replacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

describeIntegration('postgresStorage', 'sync stream on Postgres storage', (url) => {
  const opened: PostgresStorage[] = [];
  const controllers: AbortController[] = [];
  const running: Promise<void>[] = [];
  afterEach(async () => {
    for (const c of controllers.splice(0)) c.abort();
    await Promise.all(running.splice(0));
    for (const storage of opened.splice(0).reverse()) {
      await storage.teardown().catch(() => undefined);
      await storage.close();
    }
  });

  async function open(schema: string): Promise<PostgresStorage> {
    const storage = await openTestStorage(url, { schema });
    opened.push(storage);
    return storage;
  }

  /**
   * A writer storage (the replicating process) with `content` deployed and its first checkpoint,
   * and a reader storage on the same schema (the API process the clients connect to).
   */
  async function setup(content: string, tableNames: string[]) {
    const schema = freshSchemaName('s');
    const writer = await open(schema);
    const reader = await open(schema);
    const { config } = await writer.deploySyncConfig(content);
    const tables: Record<string, StoredTable> = {};
    for (const name of tableNames) tables[name] = await table(config, name);
    const batch = config.createWriteBatch();
    await finishSnapshot(batch, Object.values(tables), pos(1));
    let position = 2;
    const commit = async () => (await batch.commit(pos(position++))).checkpoint;
    const keepalive = async () => batch.keepalive(pos(position++));
    await commit();
    return { writer, reader, config, tables, batch, commit, keepalive, nextPosition: () => pos(position) };
  }

  function connect(
    reader: PostgresStorage,
    userId: string,
    options: { clientId?: string; expiresInSeconds?: number; chunkOps?: number } = {},
  ): TestClient {
    const controller = new AbortController();
    setMaxListeners(50, controller.signal);
    controllers.push(controller);
    const client = new TestClient(
      syncStream({
        storage: reader,
        identity: { userId, claims: {}, expiresAt: Math.floor(Date.now() / 1000) + (options.expiresInSeconds ?? 3600) },
        request: decodeSyncRequest({ client_id: options.clientId ?? `client-${userId}` }),
        signal: controller.signal,
        compile,
        logger: createLogger({ level: 'error' }),
        ...(options.chunkOps !== undefined ? { chunkOps: options.chunkOps } : {}),
      }),
    );
    running.push(client.run());
    return client;
  }

  /** Counts the round trips the reader's pool makes (queries and checked-out connections). */
  function countQueries(storage: PostgresStorage): { readonly count: number; reset(): void } {
    const pool = storage.ctx.pool;
    let count = 0;
    // pool.query checks a connection out through pool.connect: counted once, as a query.
    let inQuery = false;
    const query = pool.query.bind(pool);
    const connect = pool.connect.bind(pool);
    pool.query = ((...args: Parameters<typeof pool.query>) => {
      count++;
      inQuery = true;
      try {
        return (query as (...a: unknown[]) => unknown)(...args);
      } finally {
        inQuery = false;
      }
    }) as typeof pool.query;
    pool.connect = ((...args: Parameters<typeof pool.connect>) => {
      if (!inQuery) count++;
      return (connect as (...a: unknown[]) => unknown)(...args);
    }) as typeof pool.connect;
    return {
      get count() {
        return count;
      },
      reset: () => void (count = 0),
    };
  }

  async function insertItems(batch: WriteBatch, items: StoredTable, owner: string, ids: string[]) {
    for (const id of ids) await batch.save({ tag: 'insert', table: items, after: { id, owner, title: `item ${id}` } });
  }

  it('costs idle connections no storage query per checkpoint, and changed ones a shared lookup and one shared read', async () => {
    const { reader, tables, batch, commit } = await setup(ITEMS_AND_NOTICES, ['items', 'notices']);
    await batch.save({ tag: 'insert', table: tables.notices!, after: { id: 'n1', body: 'hello' } });
    await insertItems(batch, tables.items!, 'u0', ['i0']);
    const first = await commit();
    const queries = countQueries(reader);
    const clients = Array.from({ length: 20 }, (_, i) => connect(reader, `u${i}`));
    await Promise.all(clients.map((c) => c.completedAt(first.opId)));

    // A checkpoint that changes no connection's buckets: one shared lookup for all of them.
    queries.reset();
    await insertItems(batch, tables.items!, 'nobody', ['x1', 'x2']);
    const idle = await commit();
    await Promise.all(clients.map((c) => c.completedAt(idle.opId)));
    expect(queries.count).toBeLessThanOrEqual(1);
    for (const c of clients) {
      const diff = c.lines.findLast((l) => 'checkpoint_diff' in l) as {
        checkpoint_diff: { updated_buckets: unknown[]; last_op_id: string };
      };
      expect(diff.checkpoint_diff).toMatchObject({ last_op_id: idle.opId.toString(), updated_buckets: [] });
    }

    // One user's bucket changes: the lookup, and one read for that connection only.
    queries.reset();
    await insertItems(batch, tables.items!, 'u3', ['i3']);
    const one = await commit();
    await Promise.all(clients.map((c) => c.completedAt(one.opId)));
    expect(queries.count).toBeLessThanOrEqual(2);
    expect(clients[3]!.dataOps.get('by_owner["u3"]')).toHaveLength(1);
    expect(clients[4]!.dataOps.has('by_owner["u4"]')).toBe(false);

    // Ten users' buckets change: their connections' reads are one query.
    queries.reset();
    for (let i = 10; i < 20; i++) await insertItems(batch, tables.items!, `u${i}`, [`j${i}`]);
    const ten = await commit();
    await Promise.all(clients.map((c) => c.completedAt(ten.opId)));
    expect(queries.count).toBeLessThanOrEqual(2);
    for (let i = 10; i < 20; i++) {
      const ops = clients[i]!.dataOps.get(`by_owner["u${i}"]`)!;
      expect(ops).toHaveLength(1);
      expect(ops[0]).toBeGreaterThan(one.opId);
    }

    // The global bucket changes: every connection gets the new op, read once for all of them.
    queries.reset();
    await batch.save({ tag: 'update', table: tables.notices!, after: { id: 'n1', body: 'changed' } });
    const global = await commit();
    await Promise.all(clients.map((c) => c.completedAt(global.opId)));
    expect(queries.count).toBeLessThanOrEqual(2);
    for (const c of clients) {
      expect(c.dataOps.get('everyone[]')).toHaveLength(2);
      expect(c.problems).toEqual([]);
    }
  });

  it('sends checkpoint_diffs with only the changed buckets, by priority, and data that adds up to the checksums', async () => {
    const { reader, tables, batch, commit } = await setup(ITEMS_AND_NOTICES, ['items', 'notices']);
    await batch.save({ tag: 'insert', table: tables.notices!, after: { id: 'n1', body: 'hello' } });
    await insertItems(batch, tables.items!, 'u1', ['a', 'b']);
    const first = await commit();
    const client = connect(reader, 'u1', { chunkOps: 100 });
    await client.completedAt(first.opId);
    const kinds = client.lines.map((l) => Object.keys(l)[0]);
    expect(kinds).toEqual(['checkpoint', 'data', 'partial_checkpoint_complete', 'data', 'checkpoint_complete']);
    expect((client.lines[1] as { data: { bucket: string } }).data.bucket).toBe('everyone[]');

    // More new ops than one chunk holds: streamed in chunks with has_more.
    await insertItems(
      batch,
      tables.items!,
      'u1',
      Array.from({ length: 250 }, (_, i) => `many${i}`),
    );
    await batch.save({ tag: 'delete', table: tables.items!, before: { id: 'a' } });
    const second = await commit();
    await client.completedAt(second.opId);
    const since = client.lines.slice(client.lines.findIndex((l) => 'checkpoint_diff' in l));
    const diff = (since[0] as { checkpoint_diff: { updated_buckets: WireBucketChecksum[] } }).checkpoint_diff;
    expect(diff.updated_buckets.map((b) => b.bucket)).toEqual(['by_owner["u1"]']);
    expect(since.map((l) => Object.keys(l)[0])).toEqual([
      'checkpoint_diff',
      'partial_checkpoint_complete',
      'data',
      'data',
      'data',
      'checkpoint_complete',
    ]);
    const chunks = since
      .filter((l) => 'data' in l)
      .map((l) => (l as { data: { has_more: boolean; data: unknown[] } }).data);
    expect(chunks.map((c) => [c.data.length, c.has_more])).toEqual([
      [100, true],
      [100, true],
      [51, false],
    ]);
    expect(client.problems).toEqual([]);
  });

  it('re-evaluates parameter lookups when their rows change, adding and removing buckets', async () => {
    const { reader, tables, batch, commit } = await setup(TODOS_BY_OWNED_LIST, ['todos', 'lists']);
    await batch.save({ tag: 'insert', table: tables.todos!, after: { id: 't1', list_id: 'l1', title: 'x' } });
    const first = await commit();
    const client = connect(reader, 'u1');
    await client.completedAt(first.opId);
    expect([...client.checkpoint!.buckets.keys()]).toEqual([]);

    await batch.save({ tag: 'insert', table: tables.lists!, after: { id: 'l1', owner_id: 'u1' } });
    const granted = await commit();
    await client.completedAt(granted.opId);
    expect([...client.checkpoint!.buckets.keys()]).toEqual(['by_list["l1"]']);
    expect(client.dataOps.get('by_list["l1"]')).toHaveLength(1);

    // Someone else's list: nothing to re-evaluate for u1.
    await batch.save({ tag: 'insert', table: tables.lists!, after: { id: 'l2', owner_id: 'u2' } });
    const other = await commit();
    await client.completedAt(other.opId);
    expect([...client.checkpoint!.buckets.keys()]).toEqual(['by_list["l1"]']);

    await batch.save({ tag: 'delete', table: tables.lists!, before: { id: 'l1' } });
    const revoked = await commit();
    await client.completedAt(revoked.opId);
    const diff = client.lines.findLast((l) => 'checkpoint_diff' in l) as {
      checkpoint_diff: { removed_buckets: string[] };
    };
    expect(diff.checkpoint_diff.removed_buckets).toEqual(['by_list["l1"]']);
    expect(client.problems).toEqual([]);
  });

  it('reports a managed write checkpoint created by another process once a checkpoint reaches its head', async () => {
    const { writer, reader, tables, batch, commit, keepalive, nextPosition } = await setup(ITEMS_AND_NOTICES, [
      'items',
      'notices',
    ]);
    await insertItems(batch, tables.items!, 'nobody', ['x0']);
    const first = await commit();
    const writing = connect(reader, 'u1', { clientId: 'c1' });
    const idle = connect(reader, 'u2', { clientId: 'c2' });
    await Promise.all([writing.completedAt(first.opId), idle.completedAt(first.opId)]);
    expect(writing.checkpoint!.writeCheckpoint).toBeUndefined();

    // Created in the writer (another process), with a head the next checkpoint reaches.
    const id = await writer.createManagedWriteCheckpoint({
      userId: 'u1',
      clientId: 'c1',
      headPosition: nextPosition(),
    });
    const reached = await keepalive();
    expect(reached.checkpointCreated).toBe(true);
    await writing.until(() => writing.checkpoint?.writeCheckpoint === id.toString(), 'the write checkpoint');
    expect(writing.checkpoint!.lastOpId).toBe(first.opId.toString());
    expect(idle.checkpoint!.writeCheckpoint).toBeUndefined();

    // A newer one whose head is not reached yet is not reported.
    const ahead = await writer.createManagedWriteCheckpoint({ userId: 'u1', clientId: 'c1', headPosition: pos(90) });
    await insertItems(batch, tables.items!, 'nobody', ['x']);
    const next = await commit();
    await writing.completedAt(next.opId);
    expect(writing.checkpoint!.writeCheckpoint).not.toBe(ahead.toString());
  });

  it('reports a custom write checkpoint with the checkpoint that includes it', async () => {
    const { reader, tables, batch, commit } = await setup(ITEMS_AND_NOTICES, ['items', 'notices']);
    await insertItems(batch, tables.items!, 'nobody', ['x0']);
    const first = await commit();
    const client = connect(reader, 'u1');
    const other = connect(reader, 'u2');
    await Promise.all([client.completedAt(first.opId), other.completedAt(first.opId)]);
    await batch.addCustomWriteCheckpoint({ userId: 'u1', checkpoint: 42n });
    const second = await commit();
    await Promise.all([client.completedAt(second.opId), other.completedAt(second.opId)]);
    expect(client.checkpoint!.writeCheckpoint).toBe('42');
    expect(other.checkpoint!.writeCheckpoint).toBeUndefined();
  });

  it('abandons a checkpoint that a compaction passed while it was being sent, for a newer one', async () => {
    const { config, reader, tables, batch, commit } = await setup(ITEMS_AND_NOTICES, ['items', 'notices']);
    await batch.save({ tag: 'insert', table: tables.notices!, after: { id: 'n1', body: 'v1' } });
    await insertItems(batch, tables.items!, 'u1', ['a']);
    const first = await commit();
    const controller = new AbortController();
    controllers.push(controller);
    // Pulled by hand: the stream is lazy, so it stops after the first priority's data.
    const lines = syncStream({
      storage: reader,
      identity: { userId: 'u1', claims: {}, expiresAt: Math.floor(Date.now() / 1000) + 3600 },
      request: decodeSyncRequest({}),
      signal: controller.signal,
      compile,
      logger: createLogger({ level: 'error' }),
    });
    const pulled: SyncLine[] = [];
    const pull = async () => {
      const next = await lines.next();
      if (next.done) throw new Error('the stream ended');
      pulled.push(next.value);
      return next.value;
    };
    while (!('partial_checkpoint_complete' in (await pull())));
    expect(pulled[0]).toMatchObject({ checkpoint: { last_op_id: first.opId.toString() } });

    // Meanwhile: a newer checkpoint, and a compaction through it.
    // Waits for the compaction's notification to reach the reader (its watchers and its caches).
    const readerConfig = (await reader.getSyncConfig(config.configId)) as SyncConfigStorage;
    const watch = new AbortController();
    const events = readerConfig.watchCheckpoints(watch.signal)[Symbol.asyncIterator]();
    await events.next();
    await batch.save({ tag: 'update', table: tables.notices!, after: { id: 'n1', body: 'v2' } });
    await insertItems(batch, tables.items!, 'u1', ['b']);
    const second = await commit();
    await config.compact();
    for (;;) {
      const event = (await events.next()).value!;
      if (event.compactedThrough >= second.opId) break;
    }
    watch.abort();
    await events.return?.();

    const rest: SyncLine[] = [];
    for (;;) {
      const line = await pull();
      rest.push(line);
      if ('checkpoint_complete' in line) break;
    }
    await lines.return(undefined);
    const completes = rest.filter((l) => 'checkpoint_complete' in l);
    expect(completes).toEqual([{ checkpoint_complete: { last_op_id: second.opId.toString() } }]);
    const lastOpIds = rest
      .filter((l) => 'checkpoint' in l || 'checkpoint_diff' in l)
      .map((l) =>
        'checkpoint' in l
          ? l.checkpoint.last_op_id
          : (l as { checkpoint_diff: { last_op_id: string } }).checkpoint_diff.last_op_id,
      );
    expect(lastOpIds).toEqual([second.opId.toString()]);
  });

  it('ends the stream when the token expires', async () => {
    const { reader, tables, batch, commit } = await setup(ITEMS_AND_NOTICES, ['items', 'notices']);
    await insertItems(batch, tables.items!, 'nobody', ['x0']);
    await commit();
    const client = connect(reader, 'u1', { expiresInSeconds: 1 });
    await client.until(() => client.ended, 'the end of the stream', 5000);
    expect(client.lines.at(-1)).toEqual({ token_expires_in: 0 });
  });
});
