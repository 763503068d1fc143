import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const repoRoot = path.resolve(import.meta.dirname, '../../..');

describe('MongoDB and SQL Server integration suites', () => {
  it('are skipped with a printed reason when their URL is unset', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' };
    delete env.MONGO_TEST_URL;
    delete env.MSSQL_TEST_URL;
    const vitest = path.join(repoRoot, 'node_modules/vitest/vitest.mjs');
    const { stdout } = await exec(
      process.execPath,
      [vitest, 'run', '--project', '@bucketsync/module-mongodb', '--project', '@bucketsync/module-mssql'],
      { cwd: repoRoot, env },
    );
    expect(stdout).toContain('[skipped] MongoDB test server: MONGO_TEST_URL is not set');
    expect(stdout).toContain('[skipped] SQL Server test server: MSSQL_TEST_URL is not set');
    expect(stdout).toMatch(/Tests\s+2 skipped \(2\)/);
  }, 60_000);
});
