/**
 * Clients that read slowly or not at all. What sync streams hold in memory is bounded by the
 * process's budget (`syncBufferBytes`): storage reads wait when it is spent, instead of every
 * stream holding its batches. A client that takes nothing from its socket for the stall timeout
 * has its stream closed, and everything it held comes back; a slow client that keeps reading is
 * served to the end.
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

/** Rows of user u1: about 18 MB of data, far more than a socket's buffers take. */
const ROWS = 12_000;
const MiB = 1024 * 1024;
/** The budget of the first server: two storage batches and a half (a batch is 2 MiB). */
const BUDGET = 5 * MiB;
/** The most a line of sync data can be (1 MiB of op data, JSON-encoded). */
const MAX_LINE = 2 * MiB;

async function waitFor(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type Server = Awaited<ReturnType<typeof createSyncServer>>;

describeIntegration('postgres', 'sync streams of slow clients and clients that stop reading', () => {
  const url = process.env.PG_STORAGE_TEST_URL!;
  let storage: PostgresStorage;
  const servers: Server[] = [];
  let token: string;
  let startServer: (options: { syncBufferBytes?: number; stalledStreamTimeoutMs?: number }) => Promise<number>;
  const portOf = new Map<number, Server>();

  beforeAll(async () => {
    storage = await openTestStorage(url);
    const { config } = await storage.deploySyncConfig(CONFIG);
    const items: StoredTable = await table(config, 'items');
    const batch = config.createWriteBatch();
    await finishSnapshot(batch, [items], pos(1));
    for (let i = 0; i < ROWS; i++) {
      await batch.save({
        tag: 'insert',
        table: items,
        after: { id: `i${i}`, owner: 'u1', title: `${i} ${randomBytes(700).toString('hex')}` },
      });
    }
    await batch.commit(pos(2));
    const key = { kty: 'oct', alg: 'HS256', kid: 'k', k: randomBytes(32).toString('base64url') };
    const logger = createLogger({ level: 'error' });
    token = await signDevToken({ key, sub: 'u1', audience: 't', expiresInSeconds: 3600 });
    startServer = async (options) => {
      const app = await createSyncServer({
        storage,
        authenticator: new TokenVerifier(decodeAuthConfig({ jwks: { keys: [key] }, audience: ['t'] }), { logger }),
        sourceApi: undefined,
        compile: (content) => parseSyncConfig(content).config!,
        logger,
        ...options,
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      servers.push(app);
      const port = (app.server.address() as { port: number }).port;
      portOf.set(port, app);
      return port;
    };
  }, 120_000);

  afterAll(async () => {
    for (const app of servers) await app.close();
    await storage?.teardown().catch(() => undefined);
    await storage?.close();
  });

  /** A client that sends the request and never reads the answer. `drop` destroys it. */
  function stuckClient(port: number): { drop(): void; closed: Promise<void> } {
    const request = http.request({
      host: '127.0.0.1',
      port,
      path: '/sync/stream',
      method: 'POST',
      headers: { authorization: `Token ${token}`, 'content-type': 'application/json' },
    });
    request.on('error', () => undefined);
    // The response is never read: without a 'data' listener it stays paused and TCP fills up.
    request.on('response', (response) => response.on('error', () => undefined));
    const closed = new Promise<void>((resolve) => request.on('close', () => resolve()));
    request.end('{}');
    return { drop: () => request.destroy(), closed };
  }

  /**
   * A client that reads to the first `checkpoint_complete`, pausing `pauseMs` after each burst of
   * `burstMs` of reading. Answers the ops it received.
   */
  function readingClient(port: number, pacing?: { burstMs: number; pauseMs: number }): Promise<number> {
    return new Promise((resolve, reject) => {
      const request = http.request({
        host: '127.0.0.1',
        port,
        path: '/sync/stream',
        method: 'POST',
        headers: { authorization: `Token ${token}`, 'content-type': 'application/json' },
      });
      request.on('error', reject);
      request.on('response', (response) => {
        let ops = 0;
        let pending = '';
        response.setEncoding('utf8');
        response.on('data', (text: string) => {
          pending += text;
          let newline: number;
          while ((newline = pending.indexOf('\n')) >= 0) {
            const line = JSON.parse(pending.slice(0, newline)) as {
              data?: { data: unknown[] };
              checkpoint_complete?: unknown;
            };
            pending = pending.slice(newline + 1);
            if (line.data) ops += line.data.data.length;
            if (line.checkpoint_complete) {
              request.destroy();
              return resolve(ops);
            }
          }
        });
        response.on('error', () => undefined);
        response.on('close', () => reject(new Error(`the stream ended after ${ops} ops, before checkpoint_complete`)));
        if (pacing) {
          const cycle = () => {
            if (response.destroyed) return;
            response.pause();
            setTimeout(() => {
              response.resume();
              setTimeout(cycle, pacing.burstMs);
            }, pacing.pauseMs);
          };
          setTimeout(cycle, pacing.burstMs);
        }
      });
      request.end('{}');
    });
  }

  it('holds no more than its budget for clients that stop reading; storage reads wait instead', async () => {
    const port = await startServer({ syncBufferBytes: BUDGET });
    const app = portOf.get(port)!;
    const clients = Array.from({ length: 8 }, () => stuckClient(port));
    // Every stream is open, and some wait for budget: the others hold it all while their
    // clients read nothing.
    await waitFor('the streams to block on their clients', () => {
      const now = syncServerActivity(app);
      return now.openStreams === 8 && now.waitingReads > 0;
    });
    let most = 0;
    for (let i = 0; i < 20; i++) {
      most = Math.max(most, syncServerActivity(app).bufferedBytes);
      await new Promise((r) => setTimeout(r, 50));
    }
    // Storage batches stay within the budget; lines the clients did not take count beyond it.
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(BUDGET + clients.length * MAX_LINE);

    for (const c of clients) c.drop();
    await Promise.all(clients.map((c) => c.closed));
    await waitFor('every stream to be released', () => {
      const now = syncServerActivity(app);
      return now.openStreams === 0 && now.handlers === 0 && liveSyncStreams() === 0;
    });
    expect(syncServerActivity(app)).toEqual({ openStreams: 0, handlers: 0, bufferedBytes: 0, waitingReads: 0 });
    // The budget came back whole: a client that reads gets everything.
    expect(await readingClient(port)).toBe(ROWS);
  }, 120_000);

  it('closes the stream of a client that takes nothing for the stall timeout, not of a slow one', async () => {
    const port = await startServer({ stalledStreamTimeoutMs: 3000 });
    const app = portOf.get(port)!;
    const stuck = [stuckClient(port), stuckClient(port)];
    await waitFor('both streams to open', () => syncServerActivity(app).openStreams === 2);
    const started = Date.now();
    // Closed by the server once the clients' buffers are full and the timeout passes, not at once.
    // (The clients do not notice: a socket that is never read never sees its end.)
    await waitFor('the server to close the stalled streams', () => {
      const now = syncServerActivity(app);
      return now.openStreams === 0 && now.handlers === 0;
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(2500);
    for (const c of stuck) c.drop();

    // A slow client: reads in bursts with pauses shorter than the timeout, for the whole sync.
    expect(await readingClient(port, { burstMs: 100, pauseMs: 1000 })).toBe(ROWS);
    await waitFor('every stream to be released', () => {
      const now = syncServerActivity(app);
      return now.openStreams === 0 && now.handlers === 0;
    });
    expect(syncServerActivity(app).bufferedBytes).toBe(0);
  }, 120_000);
});
