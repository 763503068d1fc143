import { randomBytes } from 'node:crypto';
import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { afterEach, expect, it } from 'vitest';
import { createReplicationHarness, type ReplicationHarness } from './replication-harness.js';

const TODOS_SQL = `
  CREATE TABLE todos (id int8 PRIMARY KEY, owner text NOT NULL, title text, big text);
  INSERT INTO todos SELECT n, 'u' || (n % 5), 'todo ' || n, NULL FROM generate_series(1, 3000) n;
`;
const BY_OWNER = `
bucket_definitions:
  by_owner:
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT id, owner, title, big FROM $schema.todos WHERE owner = bucket.owner
`;

/** The source's rows of one owner, shaped like synced rows. */
async function expectedRows(h: ReplicationHarness, owner: string): Promise<Map<string, Record<string, unknown>>> {
  const { rows } = await h.source.query<{ id: string; owner: string; title: string | null; big: string | null }>(
    `SELECT id::text, owner, title, big FROM ${h.schema}.todos WHERE owner = $1`,
    [owner],
  );
  return new Map(rows.map((r) => [r.id, { id: Number(r.id), owner: r.owner, title: r.title, big: r.big }]));
}

function normalise(rows: Map<string, Record<string, unknown>>): Map<string, Record<string, unknown>> {
  return new Map(
    [...rows].map(([k, v]) => [k, { id: Number(v.id), owner: v.owner, title: v.title ?? null, big: v.big ?? null }]),
  );
}

describeIntegration('postgres', 'Postgres replication: snapshot while streaming', (sourceUrl) => {
  const storageUrl = process.env.PG_STORAGE_TEST_URL!;
  let h: ReplicationHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('copies tables while changes stream, and every bucket ends equal to the source', async () => {
    h = await createReplicationHarness({ sourceUrl, storageUrl, setupSql: TODOS_SQL, syncConfig: BY_OWNER });
    const harness = h;
    let flushes = 0;
    const { stop } = harness.start({
      chunkSize: 250,
      snapshotHooks: {
        // Between chunks of the copy: change rows already copied, not yet copied, and move rows between buckets.
        async afterFlush() {
          if (++flushes !== 2) return;
          await harness.source.query(`
            UPDATE ${harness.schema}.todos SET owner = 'u1' WHERE id BETWEEN 1 AND 20;
            UPDATE ${harness.schema}.todos SET title = 'late edit' WHERE id BETWEEN 2900 AND 2950;
            DELETE FROM ${harness.schema}.todos WHERE id BETWEEN 2000 AND 2100 OR id BETWEEN 30 AND 40;
            INSERT INTO ${harness.schema}.todos VALUES (5001, 'u2', 'new during copy', NULL);`);
        },
      },
    });
    await harness.waitForHead();
    await harness.source.query(`UPDATE ${harness.schema}.todos SET owner = 'u4' WHERE id = 5001`);
    await harness.waitForHead();
    for (const owner of ['u0', 'u1', 'u2', 'u3', 'u4']) {
      expect(normalise(await harness.bucket(`by_owner["${owner}"]`)), owner).toEqual(
        await expectedRows(harness, owner),
      );
    }
    expect(flushes).toBeGreaterThan(10);
    await stop();
  }, 60_000);

  it('resumes a table copy from the last saved chunk after a crash', async () => {
    h = await createReplicationHarness({ sourceUrl, storageUrl, setupSql: TODOS_SQL, syncConfig: BY_OWNER });
    const harness = h;
    let flushes = 0;
    // The third chunk is durable, then the process "dies": nothing after it runs.
    const first = harness.start({
      chunkSize: 300,
      snapshotHooks: {
        afterFlush() {
          if (++flushes === 3) throw new Error('simulated crash');
        },
      },
    });
    await expect(first.done).rejects.toThrow('simulated crash');
    const status = await harness.config.getStatus();
    const progress = status.tables.find((t) => t.name === 'todos')?.snapshotProgress;
    expect(status.snapshotDone).toBe(false);
    expect(progress?.copiedRows).toBe(900);

    harness.start({ chunkSize: 300 });
    await harness.waitForHead();
    const resumed = harness.logLines.map((l) => JSON.parse(l)).find((l) => l.message === 'resuming table copy');
    expect(resumed).toMatchObject({ copiedRows: 900 });
    for (const owner of ['u0', 'u3']) {
      expect(normalise(await harness.bucket(`by_owner["${owner}"]`))).toEqual(await expectedRows(harness, owner));
    }
  }, 60_000);

  it('keeps unchanged large (TOAST) values when an update leaves them out', async () => {
    h = await createReplicationHarness({ sourceUrl, storageUrl, setupSql: TODOS_SQL, syncConfig: BY_OWNER });
    const big = randomBytes(40_000).toString('base64');
    await h.source.query(`UPDATE ${h.schema}.todos SET big = $1 WHERE id = 5`, [big]);
    h.start();
    await h.waitForHead();
    await h.source.query(`UPDATE ${h.schema}.todos SET title = 'only the title' WHERE id = 5`);
    await h.waitForHead();
    const row = (await h.bucket('by_owner["u0"]')).get('5');
    expect(row?.title).toBe('only the title');
    expect(row?.big).toBe(big);
  }, 60_000);

  it('applies a truncate: every row of the table leaves its buckets', async () => {
    h = await createReplicationHarness({ sourceUrl, storageUrl, setupSql: TODOS_SQL, syncConfig: BY_OWNER });
    h.start();
    await h.waitForHead();
    expect((await h.bucket('by_owner["u2"]')).size).toBe(600);
    await h.source.query(`TRUNCATE ${h.schema}.todos`);
    await h.source.query(`INSERT INTO ${h.schema}.todos VALUES (1, 'u2', 'after truncate', NULL)`);
    await h.waitForHead();
    expect([...(await h.bucket('by_owner["u2"]')).keys()]).toEqual(['1']);
  }, 60_000);

  it('stops with the SQL to run when the publication does not exist', async () => {
    h = await createReplicationHarness({
      sourceUrl,
      storageUrl,
      setupSql: TODOS_SQL,
      syncConfig: BY_OWNER,
      withoutPublication: true,
    });
    const { done } = h.start();
    await expect(done).rejects.toThrow(
      /publication "pub_\w+" does not exist\. Create it as the tables' owner: CREATE PUBLICATION/,
    );
    expect((await h.config.getStatus()).lastError).toMatch(/CREATE PUBLICATION/);
  }, 60_000);
});
