/**
 * Connection limits of the built service: the token is checked before a body is read (a client
 * without one cannot hold a connection by trickling a body), and sync streams over
 * `api.parameters.max_concurrent_connections` are refused with PowerSync's retryable 429.
 */
import http from 'node:http';
import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { expect, it } from 'vitest';
import { waitUntil } from './fault-harness.js';
import { useService } from './service-harness.js';

describeIntegration('postgres', 'connection limits (built service)', (sourceUrl) => {
  const service = useService(() => ({
    sourceUrl,
    storageUrl: process.env.PG_STORAGE_TEST_URL!,
    setupSql: `CREATE TABLE notes (id text PRIMARY KEY, owner text NOT NULL); INSERT INTO notes VALUES ('n1', 'ann');`,
    syncConfig: `
bucket_definitions:
  mine:
    parameters: SELECT request.user_id() AS owner
    data: [SELECT * FROM $schema.notes WHERE owner = bucket.owner]
`,
    extraConfig: 'api:\n  parameters:\n    max_concurrent_connections: 2\n',
  }));

  it('answers a request without a valid token from its headers, before the body has arrived', async () => {
    const h = service();
    const { port } = new URL(h.endpoint);
    const request = http.request({
      host: '127.0.0.1',
      port,
      path: '/sync/stream',
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': '100000', authorization: 'Token nope' },
    });
    request.on('error', () => undefined);
    const answered = new Promise<number>((resolve) => request.on('response', (r) => resolve(r.statusCode ?? 0)));
    request.write('{"buckets": ['); // and nothing more: a trickling client
    const status = await Promise.race([answered, new Promise<string>((r) => setTimeout(() => r('no answer'), 5000))]);
    request.destroy();
    expect(status).toBe(401);
  });

  it('refuses a sync stream over max_concurrent_connections with a retryable 429 PSYNC_S2304', async () => {
    const h = service();
    const token = await h.token('ann');
    const open = async () => {
      const abort = new AbortController();
      const response = await fetch(`${h.endpoint}/sync/stream`, {
        method: 'POST',
        headers: { authorization: `Token ${token}`, 'content-type': 'application/json' },
        body: '{}',
        signal: abort.signal,
      });
      return { response, close: () => abort.abort() };
    };
    const first = await open();
    const second = await open();
    expect([first.response.status, second.response.status]).toEqual([200, 200]);
    const third = await open();
    expect(third.response.status).toBe(429);
    const body = (await third.response.json()) as { error: { code: string; description: string } };
    expect(body.error.code).toBe('PSYNC_S2304');
    expect(body.error.description).toContain('max_concurrent_connections');
    // A closed stream frees its place.
    first.close();
    const next = await waitUntil(
      'a place to free up',
      async () => {
        const attempt = await open();
        if (attempt.response.status !== 200) attempt.close();
        return attempt;
      },
      (attempt) => attempt.response.status === 200,
      10_000,
    );
    next.close();
    second.close();
  });
});
