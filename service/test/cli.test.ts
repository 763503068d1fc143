import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
  }, 30_000);

  it('rejects an unknown command with exit code 2 and the usage', async () => {
    const error = await exec(bin, ['frobnicate']).catch((e: { code: number; stderr: string }) => e);
    expect(error).toMatchObject({ code: 2 });
    expect((error as { stderr: string }).stderr).toContain('unknown command "frobnicate"');
  }, 30_000);
});

describe('bucketsync start with a misspelt config key (built)', () => {
  it('exits 1 naming the key, its path and what was meant, instead of starting on defaults', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bucketsync-typo-'));
    writeFileSync(path.join(dir, 'sync.yaml'), 'bucket_definitions:\n  global:\n    data: [SELECT * FROM todos]\n');
    writeFileSync(
      path.join(dir, 'config.yaml'),
      [
        'replication:',
        '  connections:',
        '    - type: postgresql',
        '      uri: postgres://localhost:1/app',
        'storage:',
        '  type: postgresql',
        '  uri: postgres://localhost:1/storage',
        'sync_confg:',
        '  path: sync.yaml',
        'prot: 18599',
        '',
      ].join('\n'),
    );
    const error = await exec(bin, ['start', '-c', path.join(dir, 'config.yaml')]).catch(
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(error).toMatchObject({ code: 1 });
    const output = `${(error as { stdout: string }).stdout}${(error as { stderr: string }).stderr}`;
    expect(output).toContain('sync_confg: unknown key; did you mean sync_config?');
    expect(output).toContain('prot: unknown key; did you mean port?');
    expect(output).not.toContain('serving clients');
  }, 30_000);
});
