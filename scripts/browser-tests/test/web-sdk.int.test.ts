/**
 * The official `@powersync/web` SDK in headless Chromium, on a vite-built page served from its own
 * origin, syncing over HTTP from the built service on another port (so every request is
 * cross-origin and goes through CORS). One story with one service, page and browser profile.
 */
import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { startService, waitUntil, type ServiceHarness } from '@bucketsync/service/test/service-harness';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { startAppBackend, type AppBackend } from './app-backend.js';
import { chromiumSkipReason, startBrowser, type BrowserHarness } from './browser-harness.js';
import { startSyncProxy, type SyncProxy } from './sync-proxy.js';

const SETUP = `
  CREATE TABLE todos (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), owner text NOT NULL,
                      description text, done int NOT NULL DEFAULT 0, server_note text);
  INSERT INTO todos (owner, description)
    SELECT CASE WHEN n % 3 = 2 THEN 'bob' ELSE 'alice' END, 'todo ' || n FROM generate_series(1, 300) n;
`;
const SYNC_CONFIG = `
bucket_definitions:
  user_todos:
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT id, owner, description, done, server_note FROM $schema.todos WHERE owner = bucket.owner
`;

function describeBrowser(name: string, body: (sourceUrl: string) => void): void {
  const reason = chromiumSkipReason();
  if (reason === undefined) {
    describeIntegration('postgres', name, body);
    return;
  }
  console.log(`[skipped] ${name}: ${reason}`);
  describe.skip(`${name} (skipped: ${reason})`, () => body(''));
}

describeBrowser('@powersync/web in Chromium syncs from BucketSync over HTTP', (sourceUrl) => {
  let h: ServiceHarness;
  let proxy: SyncProxy;
  let app: AppBackend;
  let browser: BrowserHarness;
  /** Lifetime of the next token `GET /token` hands out. */
  let nextTokenSeconds = 3600;
  const tokens: string[] = [];
  /** The first stream's figures once the first sync completed. */
  let firstSync = { ops: 0, wireBytes: 0 };

  beforeAll(async () => {
    // The page's origin first: the service allows only it (api.cors.origins as a list), as a
    // production config would.
    app = await startAppBackend({
      schema: () => h.schema,
      source: () => h.source,
      credentials: async () => {
        const token = await h.token('alice', { expiresInSeconds: nextTokenSeconds });
        nextTokenSeconds = 3600;
        tokens.push(token);
        return { endpoint: proxy.endpoint, token };
      },
    });
    h = await startService({
      sourceUrl,
      storageUrl: process.env.PG_STORAGE_TEST_URL!,
      setupSql: SETUP,
      syncConfig: SYNC_CONFIG,
      extraConfig: `api:\n  cors:\n    origins: [${app.origin}]\n`,
    });
    proxy = await startSyncProxy(h.endpoint);
    browser = await startBrowser();
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await proxy?.close();
    expect(await h?.stop()).toBe(0);
  }, 30_000);

  /** On failure, print what the page and the service said. */
  function reportOnFailure(): void {
    onTestFailed(() => {
      console.log(`page log:\n${browser.log.join('\n')}\n\nservice log (tail):\n${h.output().slice(-4000)}`);
      console.log(`proxy: ${JSON.stringify({ requests: proxy.requests, streams: proxy.streams }, null, 1)}`);
    });
  }

  async function sourceRows(): Promise<string[]> {
    const { rows } = await h.source.query<{ id: string; description: string; server_note: string | null }>(
      `SELECT id::text, description, server_note FROM ${h.schema}.todos WHERE owner = 'alice' ORDER BY id`,
    );
    return rows.map((r) => `${r.id}:${r.description}:${r.server_note}`);
  }

  async function pageRows(): Promise<string[]> {
    const rows = await browser.call('getAll', 'SELECT id, description, server_note FROM todos ORDER BY id');
    return rows.map(
      (r) => `${String(r.id)}:${String(r.description)}:${r.server_note === null ? null : String(r.server_note)}`,
    );
  }

  it('the first sync equals the source for the user, through CORS from the page’s origin', async () => {
    reportOnFailure();
    await browser.load(`${app.origin}/`);
    expect(new URL(app.origin).port).not.toBe(new URL(proxy.endpoint).port);
    const opened = await browser.call('open');
    expect(opened.hasSynced).toBe(false);
    await browser.call('connect');
    await browser.call('waitForFirstSync');

    const expected = await sourceRows();
    expect(expected).toHaveLength(200);
    expect(await pageRows()).toEqual(expected);
    // The browser asked for permission first (the SDK sends Authorization and content-type).
    expect(proxy.requests).toContain('OPTIONS /sync/stream');
    const first = proxy.streams[0]!;
    expect(first.status).toBe(200);
    expect(first.allowOrigin).toBe(app.origin);
    expect(first.ops).toBe(200);
    expect(first.lines.checkpoint_complete).toBeGreaterThanOrEqual(1);
    firstSync = { ops: first.ops, wireBytes: first.wireBytes };
    console.log(`first sync: ${JSON.stringify({ ...first, authorization: undefined })}`);
  });

  it('a source insert, update, delete and a row moving between users’ buckets arrive', async () => {
    reportOnFailure();
    await h.source.query(`
      INSERT INTO ${h.schema}.todos (owner, description) VALUES ('alice', 'brand new');
      UPDATE ${h.schema}.todos SET description = 'edited' WHERE description = 'todo 1';
      DELETE FROM ${h.schema}.todos WHERE description = 'todo 3';
      UPDATE ${h.schema}.todos SET owner = 'alice' WHERE description = 'todo 2';  -- bob's row moves to alice
      UPDATE ${h.schema}.todos SET owner = 'bob' WHERE description = 'todo 4';    -- alice's row moves to bob`);
    const expected = await sourceRows();
    await waitUntil('the changes to arrive', pageRows, (rows) => rows.join() === expected.join());
    const descriptions = (await pageRows()).map((r) => r.split(':')[1]);
    expect(descriptions).toContain('brand new');
    expect(descriptions).toContain('edited');
    expect(descriptions).toContain('todo 2');
    expect(descriptions).not.toContain('todo 1');
    expect(descriptions).not.toContain('todo 3');
    expect(descriptions).not.toContain('todo 4');
  });

  it('a local write is uploaded through the app’s backend and comes back through a write checkpoint', async () => {
    reportOnFailure();
    const release = app.holdUploads();
    await browser.call(
      'execute',
      "INSERT INTO todos (id, owner, description) VALUES (uuid(), 'alice', 'from the page')",
    );
    const local = await browser.call('getAll', "SELECT id, server_note FROM todos WHERE description = 'from the page'");
    // Held at the backend: the page shows its own version and the write waits in the upload queue.
    expect(local).toEqual([{ id: expect.any(String), server_note: null }]);
    const id = String(local[0]!.id);
    expect(await browser.call('uploadQueueCount')).toBe(1);
    release();

    // The backend fills server_note: seeing it in the page proves the row came back through the
    // stream, applied once the write checkpoint that covers the upload was reached.
    await waitUntil(
      'the upload queue to empty and the server’s version to arrive',
      async () => ({
        queue: await browser.call('uploadQueueCount'),
        rows: await browser.call('getAll', 'SELECT server_note FROM todos WHERE id = ?', [id]),
      }),
      (v) => v.queue === 0 && v.rows[0]?.server_note === 'saved by backend',
    );
    const { rows } = await h.source.query(`SELECT description, server_note FROM ${h.schema}.todos WHERE id = $1`, [id]);
    expect(rows).toEqual([{ description: 'from the page', server_note: 'saved by backend' }]);
    expect(app.uploads.flat()).toEqual([expect.objectContaining({ op: 'PUT', type: 'todos', id })]);
    expect(proxy.requests.some((r) => r.startsWith('/write-checkpoint2.json'))).toBe(true);

    // An update made in the page round-trips the same way.
    await browser.call('execute', 'UPDATE todos SET done = 1 WHERE id = ?', [id]);
    await waitUntil(
      'the updated row to come back',
      async () => ({
        queue: await browser.call('uploadQueueCount'),
        rows: await browser.call('getAll', 'SELECT done, server_note FROM todos WHERE id = ?', [id]),
      }),
      (v) => v.queue === 0 && v.rows[0]?.server_note === 'updated by backend' && v.rows[0]?.done === 1,
    );
    expect(await pageRows()).toEqual(await sourceRows());
  });

  it('reloading the page resumes from the local database without downloading everything again', async () => {
    reportOnFailure();
    const before = await pageRows();
    const streamsBefore = proxy.streams.length;
    await browser.page.reload();
    await browser.page.waitForFunction(() => 'bucketsync' in globalThis);

    // Before connecting: the local database already has the data and says it has synced.
    const opened = await browser.call('open');
    expect(opened.hasSynced).toBe(true);
    expect(await pageRows()).toEqual(before);

    await h.source.query(`INSERT INTO ${h.schema}.todos (owner, description) VALUES ('alice', 'after reload')`);
    await browser.call('connect');
    const expected = await sourceRows();
    await waitUntil('the change made while reloading', pageRows, (rows) => rows.join() === expected.join());
    const resumed = proxy.streams.slice(streamsBefore);
    expect(resumed.length).toBeGreaterThanOrEqual(1);
    // Only what changed since the last checkpoint: the one new row, not the ~200 of the first sync.
    const ops = resumed.reduce((sum, s) => sum + s.ops, 0);
    const bytes = resumed.reduce((sum, s) => sum + s.wireBytes, 0);
    console.log(
      `after reload: ${ops} ops, ${bytes} bytes; first sync: ${firstSync.ops} ops, ${firstSync.wireBytes} bytes`,
    );
    expect(ops).toBe(1);
    expect(bytes).toBeLessThan(firstSync.wireBytes / 5);
  });

  it('an expired token is refreshed through fetchCredentials and syncing continues', async () => {
    reportOnFailure();
    await browser.call('disconnect');
    const fetchesBefore = await browser.call('credentialFetches');
    const tokensBefore = tokens.length;
    nextTokenSeconds = 3;
    await browser.call('connect', { retryDelayMs: 200 });
    // The service ends the stream when the 3 s token expires; the SDK must fetch a new one.
    await waitUntil(
      'a new token to be fetched',
      () => browser.call('credentialFetches'),
      (n) => n >= fetchesBefore + 2,
      30_000,
    );
    // The first token fetched on connect is the short one; every later one lasts an hour (the SDK
    // may fetch ahead of the expiry, so which later token it streams with is not fixed).
    const short = tokens[tokensBefore]!;
    const renewed = () => new Set(tokens.slice(tokensBefore + 1).map((t) => `Token ${t}`));
    await waitUntil(
      'a stream with a renewed token after the short-lived one',
      () => {
        const firstShort = proxy.streams.findIndex((s) => s.authorization === `Token ${short}`);
        const fresh = renewed();
        return firstShort < 0
          ? 0
          : proxy.streams.slice(firstShort + 1).filter((s) => fresh.has(s.authorization ?? '') && s.status === 200)
              .length;
      },
      (n) => n >= 1,
    );

    await h.source.query(`INSERT INTO ${h.schema}.todos (owner, description) VALUES ('alice', 'after refresh')`);
    await waitUntil(
      'a change after the refresh',
      () => browser.call('getAll', "SELECT id FROM todos WHERE description = 'after refresh'"),
      (rows) => rows.length === 1,
    );
    expect((await browser.call('status')).connected).toBe(true);
  });

  it('a page on an origin missing from api.cors.origins cannot sync', async () => {
    reportOnFailure();
    const other = await startAppBackend({
      schema: () => h.schema,
      source: () => h.source,
      credentials: async () => ({ endpoint: proxy.endpoint, token: await h.token('alice') }),
    });
    const page = await browser.page.context().newPage();
    try {
      const streamsBefore = proxy.streams.length;
      const preflights = () => proxy.requests.filter((r) => r === 'OPTIONS /sync/stream').length;
      const preflightsBefore = preflights();
      await page.goto(`${other.origin}/`);
      await page.waitForFunction(() => 'bucketsync' in globalThis);
      const call = (script: string) => page.evaluate(script) as Promise<unknown>;
      await call('window.bucketsync.open()');
      await call('window.bucketsync.connect({ retryDelayMs: 200 })');
      const status = await waitUntil(
        'the SDK to report the refused request',
        () => call('window.bucketsync.status()') as Promise<{ downloadError?: string; hasSynced?: boolean }>,
        (s) => s.downloadError !== undefined,
      );
      console.log(`refused origin: downloadError = ${status.downloadError}`);
      expect(status.downloadError).toContain('Failed to fetch'); // Chromium's words for a CORS refusal
      expect(status.hasSynced).toBe(false);
      expect(await call("window.bucketsync.getAll('SELECT id FROM todos')")).toEqual([]);
      // The service answered the preflight without allowing this origin, so the browser never sent the stream.
      expect(preflights()).toBeGreaterThan(preflightsBefore);
      expect(proxy.streams.slice(streamsBefore)).toEqual([]);
      await call('window.bucketsync.disconnect()');
    } finally {
      await page.close();
      await other.close();
    }
  });
});
