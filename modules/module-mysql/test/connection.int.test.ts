import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import mysql from 'mysql2/promise';
import { expect, it } from 'vitest';

describeIntegration('mysql', 'MySQL / MariaDB test server', (url) => {
  it('is reachable and writes a ROW binlog with full row images', async () => {
    const conn = await mysql.createConnection(url);
    try {
      const [rows] = await conn.query<mysql.RowDataPacket[]>(
        "SHOW VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image')",
      );
      const vars = Object.fromEntries(rows.map((r) => [r.Variable_name as string, r.Value as string]));
      expect(vars).toEqual({ log_bin: 'ON', binlog_format: 'ROW', binlog_row_image: 'FULL' });
    } finally {
      await conn.end();
    }
  });
});
