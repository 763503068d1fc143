import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import pg from 'pg';
import { expect, it } from 'vitest';

describeIntegration('postgres', 'Postgres test server', (url) => {
  it('is reachable and runs with wal_level = logical', async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query<{ wal_level: string }>('SHOW wal_level');
      expect(rows[0]?.wal_level).toBe('logical');
      const slots = await client.query<{ max_replication_slots: string }>('SHOW max_replication_slots');
      expect(Number(slots.rows[0]?.max_replication_slots)).toBeGreaterThanOrEqual(10);
    } finally {
      await client.end();
    }
  });
});

describeIntegration('postgresStorage', 'Postgres storage test server', (url) => {
  it('is reachable and accepts writes', async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query('CREATE TEMP TABLE probe (n int)');
      await client.query('INSERT INTO probe VALUES (1), (2)');
      const { rows } = await client.query<{ total: number }>('SELECT sum(n)::int AS total FROM probe');
      expect(rows[0]?.total).toBe(3);
    } finally {
      await client.end();
    }
  });
});
