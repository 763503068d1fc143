import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startService, type ServiceHarness } from './service-harness.js';

const SYNC_CONFIG = `
bucket_definitions:
  mine:
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT * FROM $schema.items WHERE owner = bucket.owner
  by_id:
    parameters: SELECT value AS id FROM json_each(request.parameters() ->> 'ids')
    data:
      - SELECT * FROM $schema.items WHERE id = bucket.id
streams:
  shared:
    query: SELECT * FROM $schema.items WHERE owner = subscription.parameter('owner')
  tagged:
    query: SELECT * FROM $schema.items WHERE id IN subscription.parameter('a') AND owner IN subscription.parameter('b')
`;

/** Reads NDJSON lines until `checkpoint_complete` (or the stream ends). */
async function readUntilComplete(response: Response): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
      buffer = buffer.slice(nl + 1);
      lines.push(line);
      if ('checkpoint_complete' in line) {
        await reader.cancel();
        return lines;
      }
    }
  }
  return lines;
}

describeIntegration('postgres', 'sync API errors and edges (real service)', (sourceUrl) => {
  let h: ServiceHarness;
  let token: string;
  beforeAll(async () => {
    h = await startService({
      sourceUrl,
      storageUrl: process.env.PG_STORAGE_TEST_URL!,
      setupSql: `CREATE TABLE items (id int8 PRIMARY KEY, owner text); INSERT INTO items SELECT n, 'u' || (n % 2) FROM generate_series(1, 20) n;`,
      syncConfig: SYNC_CONFIG,
    });
    token = await h.token('u1');
  }, 60_000);
  afterAll(async () => {
    await h.stop();
  }, 30_000);

  const stream = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${h.endpoint}/sync/stream`, {
      method: 'POST',
      headers: { authorization: `Token ${token}`, 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  it('answers a bad body with 400 naming the field', async () => {
    const response = await stream({ buckets: [{ name: 'mine["u1"]', after: 'abc' }] });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: string; description: string } };
    expect(body.error.code).toBe('BS5001');
    expect(body.error.description).toContain('buckets[0].after: expected a base-10 op id');
    const malformed = await stream('{"buckets": [');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { code: string } }).error.code).toBe('BS5001');
  });

  it('answers a missing or bad token with 401 and a PSYNC_S21xx code', async () => {
    const missing = await fetch(`${h.endpoint}/sync/stream`, { method: 'POST', body: '{}' });
    expect(missing.status).toBe(401);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('PSYNC_S2101');
    const bad = await stream({}, { authorization: `Token ${token.slice(0, -4)}AAAA` });
    expect(bad.status).toBe(401);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('PSYNC_S2102');
  });

  it('reports an unknown stream in the checkpoint, and the connection still syncs', async () => {
    const response = await stream({ streams: { subscriptions: [{ stream: 'nope', parameters: null }] } });
    expect(response.status).toBe(200);
    const lines = await readUntilComplete(response);
    const checkpoint = lines[0]!.checkpoint as {
      buckets: { bucket: string }[];
      streams: { name: string; errors: { message: string }[] }[];
    };
    expect(checkpoint.streams.find((s) => s.name === 'nope')?.errors[0]?.message).toContain('Unknown stream "nope"');
    expect(checkpoint.buckets.map((b) => b.bucket)).toEqual(['mine["u1"]']);
    expect(lines.some((l) => 'checkpoint_complete' in l)).toBe(true);
  });

  it('refuses too many buckets with an error naming the definition, without affecting other connections', async () => {
    const good = stream({});
    const tooMany = await stream({ parameters: { ids: Array.from({ length: 1001 }, (_, i) => i) } });
    expect(tooMany.status).toBe(400);
    const body = (await tooMany.json()) as { error: { code: string; description: string } };
    expect(body.error.code).toBe('BS5002');
    expect(body.error.description).toContain('by_id');
    const lines = await readUntilComplete(await good);
    expect(lines.some((l) => 'checkpoint_complete' in l)).toBe(true);
  });

  it('compresses with gzip when asked', async () => {
    const response = await fetch(`${h.endpoint}/sync/stream`, {
      method: 'POST',
      headers: { authorization: `Token ${token}`, 'content-type': 'application/json', 'accept-encoding': 'gzip' },
      body: '{}',
    });
    expect(response.headers.get('content-encoding')).toBe('gzip');
    // fetch decompresses transparently: the lines read back intact.
    const lines = await readUntilComplete(response);
    expect(lines.some((l) => 'checkpoint_complete' in l)).toBe(true);
  });

  it('refuses a 54 kB request whose two lists combine into 12 million buckets, and keeps serving', async () => {
    const values = Array.from({ length: 3500 }, (_, i) => `v${i}`);
    const response = await stream({
      streams: { subscriptions: [{ stream: 'tagged', parameters: { a: values, b: values } }] },
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: string; description: string } };
    expect(body.error.code).toBe('BS5002');
    expect(body.error.description).toContain('tagged (12250000)');
    expect(h.exitCode()).toBeNull();
    const after = await readUntilComplete(await stream({}));
    expect(after.some((l) => 'checkpoint_complete' in l)).toBe(true);
  });

  it('refuses more subscriptions than a client may send with a 400 naming the field', async () => {
    const subscriptions = Array.from({ length: 1001 }, () => ({ stream: 'shared', parameters: { owner: 'u1' } }));
    const response = await stream({ streams: { subscriptions } });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { description: string } }).error.description).toContain(
      'streams.subscriptions: at most 1000 subscriptions',
    );
  });

  it('sends the Node SDK (slow gzip through fetch) an uncompressed stream, and honours gzip;q=0', async () => {
    const variants: Record<string, string>[] = [
      {
        'accept-encoding': 'gzip, deflate',
        'x-user-agent': 'powersync-js/1.0.0 powersync-node node/20.20.2 linux/6.1',
      },
      { 'accept-encoding': 'gzip;q=0, identity' },
    ];
    for (const headers of variants) {
      const response = await fetch(`${h.endpoint}/sync/stream`, {
        method: 'POST',
        headers: { authorization: `Token ${token}`, 'content-type': 'application/json', ...headers },
        body: '{}',
      });
      expect(response.headers.get('content-encoding'), JSON.stringify(headers)).toBeNull();
      const lines = await readUntilComplete(response);
      expect(lines.some((l) => 'checkpoint_complete' in l)).toBe(true);
    }
  });

  it('creates monotonic write checkpoints, and requires client_id', async () => {
    const url = (q: string) => `${h.endpoint}/write-checkpoint2.json${q}`;
    const headers = { authorization: `Bearer ${token}` };
    const first = (await (await fetch(url('?client_id=c1'), { headers })).json()) as {
      data: { write_checkpoint: string };
    };
    const second = (await (await fetch(url('?client_id=c1'), { headers })).json()) as {
      data: { write_checkpoint: string };
    };
    expect(BigInt(second.data.write_checkpoint)).toBeGreaterThan(BigInt(first.data.write_checkpoint));
    const missing = await fetch(url(''), { headers });
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { error: { description: string } }).error.description).toContain(
      'client_id: required',
    );
  });

  it('refuses a bad client_id with a 400 naming it, never a 500 showing storage internals', async () => {
    const headers = { authorization: `Bearer ${token}` };
    for (const clientId of ['%00', 'x'.repeat(8000), '%0A']) {
      const response = await fetch(`${h.endpoint}/write-checkpoint2.json?client_id=${clientId}`, { headers });
      const text = await response.text();
      expect(response.status, clientId.slice(0, 10)).toBe(400);
      expect(text).toContain('client_id: ');
      expect(text).not.toMatch(/postgres|pkey|SQLSTATE|invalid byte/i);
    }
    const body = await fetch(`${h.endpoint}/sync/checkpoint-request`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'a\u0000b' }),
    });
    expect(body.status).toBe(400);
  });

  it('limits write checkpoints per user with a retryable 429, leaving other users alone', async () => {
    const ask = async (sub: string) =>
      fetch(`${h.endpoint}/write-checkpoint2.json?client_id=limit-test`, {
        headers: { authorization: `Bearer ${await h.token(sub)}` },
      });
    const statuses = await Promise.all(Array.from({ length: 30 }, () => ask('busy-user').then((r) => r.status)));
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    expect((await ask('other-user')).status).toBe(200);
  });

  it('keeps 413 for a body over the limit and 415 for a body that is not JSON', async () => {
    const large = await stream({ parameters: { pad: 'x'.repeat(1_100_000) } });
    expect(large.status).toBe(413);
    expect(((await large.json()) as { error: { code: string } }).error.code).toBe('BS5003');
    const text = await stream('<hello/>', { 'content-type': 'application/xml' });
    expect(text.status).toBe(415);
    expect(((await text.json()) as { error: { code: string } }).error.code).toBe('BS5004');
  });

  it('answers the probes', async () => {
    expect((await fetch(`${h.endpoint}/probes/liveness`)).status).toBe(200);
    expect(await (await fetch(`${h.endpoint}/probes/readiness`)).json()).toEqual({ ready: true });
  });
});
