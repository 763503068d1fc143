import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { expect, it } from 'vitest';
import { startService } from './service-harness.js';

const SETUP = `CREATE TABLE items (id int8 PRIMARY KEY, owner text); INSERT INTO items SELECT n, 'u' || (n % 2) FROM generate_series(1, 50) n;`;
const CONFIG_A = `bucket_definitions:\n  mine:\n    parameters: SELECT request.user_id() AS owner\n    data:\n      - SELECT * FROM $schema.items WHERE owner = bucket.owner\n`;
const CONFIG_B = `bucket_definitions:\n  mine_v2:\n    parameters: SELECT request.user_id() AS owner\n    data:\n      - SELECT id FROM $schema.items WHERE owner = bucket.owner\n`;

async function firstCheckpoint(endpoint: string, token: string): Promise<{ buckets: string[]; ended: Promise<void> }> {
  const response = await fetch(`${endpoint}/sync/stream`, {
    method: 'POST',
    headers: { authorization: `Token ${token}`, 'content-type': 'application/json', accept: 'application/x-ndjson' },
    body: '{}',
  });
  const reader = response.body!.getReader();
  let text = '';
  while (!text.includes('checkpoint_complete')) {
    const { done, value } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString();
  }
  const checkpoint = JSON.parse(text.slice(0, text.indexOf('\n'))).checkpoint as { buckets: { bucket: string }[] };
  // Ends when the server ends the stream (or the connection drops when a test stops the service).
  const ended = (async () => {
    for (;;) if ((await reader.read()).done) return;
  })().catch(() => undefined);
  return { buckets: checkpoint.buckets.map((b) => b.bucket), ended };
}

describeIntegration('postgres', 'deploying a new sync config (two real service processes)', (sourceUrl) => {
  it('replicates the new config beside the active one, then moves connected clients to it', async () => {
    const storageUrl = process.env.PG_STORAGE_TEST_URL!;
    const first = await startService({ sourceUrl, storageUrl, setupSql: SETUP, syncConfig: CONFIG_A });
    let second: Awaited<ReturnType<typeof startService>> | undefined;
    try {
      const token = await first.token('u1');
      const before = await firstCheckpoint(first.endpoint, token);
      expect(before.buckets).toEqual(['mine["u1"]']);

      // A second process starts with the new config on the same storage: it replicates it as
      // processing while the first keeps serving the active one.
      second = await startService({ sourceUrl, storageUrl, setupSql: '', syncConfig: CONFIG_B, sharing: first });
      expect(second.output()).toContain('it replicates beside the active one');

      // Once the new config is active, the open stream ends so the client reconnects...
      await Promise.race([
        before.ended,
        new Promise((_, reject) => setTimeout(() => reject(new Error('the old stream did not end')), 15_000)),
      ]);
      // ...and a new connection gets the new config's buckets; the old config's replication stopped.
      const after = await firstCheckpoint(first.endpoint, token);
      expect(after.buckets).toEqual(['mine_v2["u1"]']);
      await first.waitForLog('sync config replaced; stopping its replication');
    } finally {
      const secondOutput = second?.output() ?? '';
      const secondCode = await second?.stop();
      const firstCode = await first.stop();
      expect(secondCode, secondOutput.split('\n').slice(-12).join('\n')).toBe(0);
      expect(firstCode, first.output().split('\n').slice(-12).join('\n')).toBe(0);
    }
  }, 90_000);
});
