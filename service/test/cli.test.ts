import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const bin = path.resolve(import.meta.dirname, '../bin/bucketsync');

describe('bucketsync CLI (built)', () => {
  it('prints usage listing its commands', async () => {
    const { stdout } = await exec(bin, ['--help']);
    expect(stdout).toContain('Usage: bucketsync <command>');
    expect(stdout).toContain('version');
  });

  it('rejects an unknown command with exit code 2 and the usage', async () => {
    const error = await exec(bin, ['frobnicate']).catch((e: { code: number; stderr: string }) => e);
    expect(error).toMatchObject({ code: 2 });
    expect((error as { stderr: string }).stderr).toContain('unknown command "frobnicate"');
  });
});
