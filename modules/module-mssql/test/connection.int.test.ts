import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import mssql from 'mssql';
import { expect, it } from 'vitest';

describeIntegration('mssql', 'SQL Server test server', (url) => {
  it('is reachable and has a SQL Server Agent for CDC', async () => {
    const pool = await mssql.connect(url);
    try {
      const result = await pool.request().query<{ version: string }>('SELECT @@VERSION AS version');
      expect(result.recordset[0]?.version).toContain('SQL Server');
    } finally {
      await pool.close();
    }
  });
});
