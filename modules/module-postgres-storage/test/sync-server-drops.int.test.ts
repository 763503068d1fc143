/**
 * Clients that go away mid-sync, as mobile clients do all day: dropped before the answer, after
 * the headers, and after a random number of bytes, with and without gzip and BSON. Every exit
 * path of a stream must release what it holds: afterwards the server has no open stream, no
 * running handler, no live sync stream (watch and timers), and the process no more timers or
 * sockets than before.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { createLogger } from '@bucketsync/lib-services';
import {
  createSyncServer,
  decodeAuthConfig,
  liveSyncStreams,
  signDevToken,
  syncServerActivity,
  TokenVerifier,
  type StoredTable,
} from '@bucketsync/service-core';
import { finishSnapshot, pos, table } from '@bucketsync/service-core-tests';
import { parseSyncConfig } from '@bucketsync/sync-rules';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PostgresStorage } from '../src/index.js';
import { openTestStorage } from './postgres-test-storage.js';

const CONFIG = `
bucket_definitions:
  by_owner:
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT id, owner, title FROM items WHERE owner = bucket.owner
`;

/** Resources of this process by kind (timers, sockets, zlib handles ...). */
function resources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describeIntegration('postgres', 'sync streams of clients that drop mid-sync', () => {
  const url = process.env.PG_STORAGE_TEST_URL!;
  let storage: PostgresStorage;
  let app: Awaited<ReturnType<typeof createSyncServer>>;
  let port: number;
  let token: string;

  beforeAll(async () => {
    storage = await openTestStorage(url);
    const { config } = await storage.deploySyncConfig(CONFIG);
    const items: StoredTable = await table(config, 'items');
    const batch = config.createWriteBatch();
    await finishSnapshot(batch, [items], pos(1));
    // About 600 kB of rows for one user: more than one read, so drops land mid-stream.
    for (let i = 0; i < 3000; i++) {
      await batch.save({
        tag: 'insert',
        table: items,
        after: { id: `i${i}`, owner: 'u1', title: `${i} ${randomBytes(90).toString('hex')}` },
      });
    }
    await batch.commit(pos(2));
    const key = { kty: 'oct', alg: 'HS256', kid: 'k', k: randomBytes(32).toString('base64url') };
    const logger = createLogger({ level: 'error' });
    app = await createSyncServer({
      storage,
      authenticator: new TokenVerifier(decodeAuthConfig({ jwks: { keys: [key] }, audience: ['t'] }), { logger }),
      sourceApi: undefined,
      compile: (content) => parseSyncConfig(content).config!,
      logger,
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as { port: number }).port;
    token = await signDevToken({ key, sub: 'u1', audience: 't', expiresInSeconds: 3600 });
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await storage?.teardown().catch(() => undefined);
    await storage?.close();
  });

  /** One client that drops at `dropAfter` bytes of body (-1: before the answer; 0: right after the headers). */
  function client(options: { gzip: boolean; bson: boolean; dropAfter: number }): Promise<void> {
    return new Promise((resolve) => {
      const request = http.request({
        host: '127.0.0.1',
        port,
        path: '/sync/stream',
        method: 'POST',
        headers: {
          authorization: `Token ${token}`,
          'content-type': 'application/json',
          accept: options.bson ? 'application/vnd.powersync.bson-stream' : 'application/x-ndjson',
          ...(options.gzip ? { 'accept-encoding': 'gzip' } : {}),
        },
      });
      request.on('error', () => resolve());
      request.on('close', () => resolve());
      request.end('{}', () => {
        if (options.dropAfter < 0) request.destroy();
      });
      request.on('response', (response) => {
        let received = 0;
        response.on('error', () => undefined);
        if (options.dropAfter === 0) return void request.destroy();
        response.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received >= options.dropAfter) request.destroy();
        });
      });
    });
  }

  it('releases every stream, handler, watch, timer and socket, whatever the point of the drop', async () => {
    // Warm up once (the shared checkpoint listener, the pool) before taking the baseline.
    await client({ gzip: false, bson: false, dropAfter: 1 });
    await waitFor('the warm-up to end', () => syncServerActivity(app).openStreams === 0 && liveSyncStreams() === 0);
    const before = resources();

    const runs: Promise<void>[] = [];
    for (let i = 0; i < 60; i++) {
      const dropAfter = [-1, 0, 1, 1000, 50_000, 300_000][i % 6]! + (i % 6 > 1 ? Math.floor(Math.random() * 1000) : 0);
      runs.push(client({ gzip: i % 2 === 0, bson: i % 3 === 0, dropAfter }));
    }
    await Promise.all(runs);

    await waitFor('every stream to be released', () => {
      const now = syncServerActivity(app);
      return now.openStreams === 0 && now.handlers === 0 && liveSyncStreams() === 0;
    });
    await waitFor('timers and sockets to return to the baseline', () => {
      const after = resources();
      return ['Timeout', 'TCPSocketWrap', 'ZlibHandle'].every(
        (kind) => (after.get(kind) ?? 0) <= (before.get(kind) ?? 0),
      );
    });
    expect(syncServerActivity(app)).toEqual({ openStreams: 0, handlers: 0, bufferedBytes: 0, waitingReads: 0 });
    expect(liveSyncStreams()).toBe(0);
  }, 60_000);

  it('answers readiness probes from one storage lookup per second, however many arrive', async () => {
    const lookups = { count: 0 };
    const original = storage.getActiveSyncConfig.bind(storage);
    storage.getActiveSyncConfig = () => {
      lookups.count++;
      return original();
    };
    try {
      const started = Date.now();
      const answers = await Promise.all(
        Array.from({ length: 200 }, () => fetch(`http://127.0.0.1:${port}/probes/readiness`).then((r) => r.status)),
      );
      expect(new Set(answers)).toEqual(new Set([200]));
      // One lookup per second the 200 probes took (they would be 200 lookups without the cache).
      expect(lookups.count).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / 1000) + 1);
      expect(lookups.count).toBeLessThan(20);
    } finally {
      storage.getActiveSyncConfig = original;
    }
  });
});
