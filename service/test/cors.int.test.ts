/**
 * CORS on the client-facing routes of the built service: preflights for the methods and headers
 * the SDKs send, the headers on every answer (streams, errors, write checkpoints, probes), and
 * `api.cors.origins` restricting which pages may call it.
 */
import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { describe, expect, it } from 'vitest';
import { useService, type ServiceHarness } from './service-harness.js';

const SETUP = `CREATE TABLE notes (id text PRIMARY KEY, owner text NOT NULL, body text);
  INSERT INTO notes VALUES ('n1', 'ann', 'hello');`;
const SYNC_CONFIG = `
bucket_definitions:
  user_notes:
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT * FROM $schema.notes WHERE owner = bucket.owner
`;
const APP = 'http://app.localhost:5173';

function preflight(h: ServiceHarness, path: string, origin: string, method = 'POST'): Promise<Response> {
  return fetch(`${h.endpoint}${path}`, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': method,
      'access-control-request-headers': 'authorization,content-type,x-user-agent',
    },
  });
}

/** Opens a sync stream from `origin`, reads its headers, and closes it. */
async function streamHeaders(h: ServiceHarness, origin: string, token: string): Promise<Response> {
  const abort = new AbortController();
  const response = await fetch(`${h.endpoint}/sync/stream`, {
    method: 'POST',
    headers: { origin, authorization: `Token ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ buckets: [] }),
    signal: abort.signal,
  });
  abort.abort();
  return response;
}

describeIntegration('postgres', 'CORS (built service)', (sourceUrl) => {
  const options = (extraConfig = '') => ({
    sourceUrl,
    storageUrl: process.env.PG_STORAGE_TEST_URL!,
    setupSql: SETUP,
    syncConfig: SYNC_CONFIG,
    extraConfig,
  });

  describe('by default any origin', () => {
    const service = useService(() => options());

    it('answers the preflight of each client-facing route with the SDKs’ methods and headers and a cache time', async () => {
      const h = service();
      for (const [path, method] of [
        ['/sync/stream', 'POST'],
        ['/sync/checkpoint-request', 'POST'],
        ['/write-checkpoint2.json', 'GET'],
        ['/probes/readiness', 'GET'],
      ] as const) {
        const response = await preflight(h, path, APP, method);
        expect(response.status, path).toBe(204);
        expect(response.headers.get('access-control-allow-origin'), path).toBe('*');
        expect(response.headers.get('access-control-allow-methods'), path).toContain(method);
        const allowed = response.headers.get('access-control-allow-headers')!.toLowerCase();
        for (const header of ['authorization', 'content-type', 'x-user-agent', 'user-agent']) {
          expect(allowed, `${path} ${header}`).toContain(header);
        }
        expect(response.headers.get('access-control-max-age'), path).toBe('7200');
        // Tokens are bearer headers: no cookies, so no credentials mode.
        expect(response.headers.get('access-control-allow-credentials'), path).toBeNull();
      }
    });

    it('puts the CORS header on streams, errors, write checkpoints and probes', async () => {
      const h = service();
      const token = await h.token('ann');
      const stream = await streamHeaders(h, APP, token);
      expect(stream.status).toBe(200);
      expect(stream.headers.get('access-control-allow-origin')).toBe('*');

      const refused = await fetch(`${h.endpoint}/sync/stream`, {
        method: 'POST',
        headers: { origin: APP, 'content-type': 'application/json' },
        body: '{}',
      });
      expect(refused.status).toBe(401);
      expect(refused.headers.get('access-control-allow-origin')).toBe('*');

      const checkpoint = await fetch(`${h.endpoint}/write-checkpoint2.json?client_id=c1`, {
        headers: { origin: APP, authorization: `Token ${token}` },
      });
      expect(checkpoint.status).toBe(200);
      expect(checkpoint.headers.get('access-control-allow-origin')).toBe('*');

      const probe = await fetch(`${h.endpoint}/probes/liveness`, { headers: { origin: APP } });
      expect(probe.headers.get('access-control-allow-origin')).toBe('*');
    });
  });

  describe('with api.cors.origins as a list', () => {
    const service = useService(() => options(`api:\n  cors:\n    origins: [${APP}]\n`));

    it('allows a listed origin by name and refuses any other', async () => {
      const h = service();
      const allowed = await preflight(h, '/sync/stream', APP);
      expect(allowed.headers.get('access-control-allow-origin')).toBe(APP);
      expect(allowed.headers.get('vary')?.toLowerCase()).toContain('origin');

      const other = await preflight(h, '/sync/stream', 'https://evil.example');
      expect(other.headers.get('access-control-allow-origin')).toBeNull();

      const token = await h.token('ann');
      const stream = await streamHeaders(h, APP, token);
      expect(stream.headers.get('access-control-allow-origin')).toBe(APP);
      const foreign = await streamHeaders(h, 'https://evil.example', token);
      expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
    });
  });
});
