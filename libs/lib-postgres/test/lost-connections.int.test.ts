import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { expect, it } from 'vitest';
import { connectPostgres, createPostgresPool } from '../src/index.js';

/** Ends the backends of `applicationName` from another connection, as a server restart would. */
async function terminate(url: string, applicationName: string): Promise<number> {
  const admin = await connectPostgres({ uri: url });
  try {
    const { rows } = await admin.query<{ pid: number }>(
      'SELECT pg_terminate_backend(pid) AS pid FROM pg_stat_activity WHERE application_name = $1',
      [applicationName],
    );
    return rows.length;
  } finally {
    await admin.end();
  }
}

describeIntegration('postgres', 'connections whose server goes away', (url) => {
  it('a pool client held between two queries reports the loss on its next query instead of crashing', async () => {
    const pool = createPostgresPool({ uri: url, applicationName: 'lost-held-client' });
    try {
      const held = await pool.connect();
      await held.query('SELECT 1');
      expect(await terminate(url, 'lost-held-client')).toBe(1);
      // Unguarded, the driver's 'error' event on the held client ends the process here.
      await new Promise((r) => setTimeout(r, 200));
      await expect(held.query('SELECT 1')).rejects.toThrow();
      held.release(true);
      // The pool replaces the lost client.
      expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it('a single client reports the loss on its next query instead of crashing', async () => {
    const client = await connectPostgres({ uri: url, applicationName: 'lost-single-client' });
    expect(await terminate(url, 'lost-single-client')).toBe(1);
    await new Promise((r) => setTimeout(r, 200));
    await expect(client.query('SELECT 1')).rejects.toThrow();
    await client.end().catch(() => undefined);
  });
});
