import { randomBytes } from 'node:crypto';
import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodePostgresConfig } from '../src/postgres-config.js';
import { parseLsn } from '../src/postgres-position.js';
import { PostgresSourceApi, SOURCE_API_POOL_SIZE } from '../src/postgres-source-api.js';

/**
 * A burst of write checkpoints must not become a burst of connections to the user's database
 * (issue 13, item 4: 400 concurrent head-position reads opened 54-57 connections, 600 hit "too
 * many clients"). The source API here logs in as a role of its own, limited by the server to
 * the pool size: a connection beyond it would fail a call, and pg_stat_activity is sampled too.
 */
describeIntegration('postgres', 'Postgres source API connections under a burst of write checkpoints', (url) => {
  const role = `bucketsync_api_burst_${process.pid}`;
  const password = randomBytes(12).toString('hex');
  let admin: pg.Client;
  let roleUri: string;

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    // REPLICATION: what the configured source user has (README); the server caps the role's connections.
    await admin.query(
      `CREATE ROLE ${role} LOGIN REPLICATION PASSWORD '${password}' CONNECTION LIMIT ${SOURCE_API_POOL_SIZE}`,
    );
    const u = new URL(url);
    u.username = role;
    u.password = password;
    roleUri = u.toString();
  });

  afterAll(async () => {
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  });

  const backends = async (): Promise<number> => {
    const { rows } = await admin.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1',
      [role],
    );
    return rows[0]!.n;
  };

  it('400 concurrent head-position reads stay within the pool, all get a valid position, close() leaves none', async () => {
    const api = new PostgresSourceApi({
      config: decodePostgresConfig({ type: 'postgresql', uri: roleUri }),
      replicationId: `burst_${process.pid}`,
      edition: 1,
    });
    const { rows } = await admin.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const before = parseLsn(rows[0]!.lsn);

    let sampling = true;
    let most = 0;
    let samples = 0;
    const sampler = (async () => {
      while (sampling) {
        most = Math.max(most, await backends());
        samples++;
      }
    })();
    const settled = await Promise.allSettled(Array.from({ length: 400 }, () => api.headPosition()));
    // A second burst while the pool is warm, arriving one at a time across event-loop turns.
    const trickle: Promise<string>[] = [];
    for (let i = 0; i < 100; i++) {
      trickle.push(api.headPosition());
      await new Promise((resolve) => setImmediate(resolve));
    }
    const trickled = await Promise.allSettled(trickle);
    sampling = false;
    await sampler;

    const failures = [...settled, ...trickled].filter((r) => r.status === 'rejected');
    expect(failures.map((f) => String((f as PromiseRejectedResult).reason))).toEqual([]);
    // The 400 called in one turn of the event loop: one read served them all.
    expect(new Set(settled.map((r) => (r as PromiseFulfilledResult<string>).value)).size).toBe(1);
    for (const r of [...settled, ...trickled]) {
      const position = (r as PromiseFulfilledResult<string>).value;
      expect(position).toMatch(/^[0-9A-F]+\/[0-9A-F]+/);
      expect(parseLsn(position.split(':')[0]!)).toBeGreaterThan(before);
    }
    console.log(
      `[source api burst] 500 head-position reads: at most ${most} source connections seen in ${samples} samples (pool size ${SOURCE_API_POOL_SIZE})`,
    );
    expect(samples).toBeGreaterThan(0);
    expect(most).toBeGreaterThanOrEqual(1);
    expect(most).toBeLessThanOrEqual(SOURCE_API_POOL_SIZE);

    // Status, lag and schema share the same pool.
    await expect(api.status()).resolves.toEqual({ connected: true });
    expect(await backends()).toBeLessThanOrEqual(SOURCE_API_POOL_SIZE);

    await api.close();
    await api.close(); // idempotent
    // A backend leaves pg_stat_activity a moment after its client hung up: wait for it, boundedly.
    let left = await backends();
    for (let i = 0; i < 100 && left > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      left = await backends();
    }
    expect(left).toBe(0);
    await expect(api.headPosition()).rejects.toThrow(/closed/);
  });
});
