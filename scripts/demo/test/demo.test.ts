import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const exec = promisify(execFile);

describe('npm run demo (built, --once)', () => {
  it('starts the databases and BucketSync, and two users each receive their own lists with verified checksums', async () => {
    const demo = path.resolve(import.meta.dirname, '../dist/demo.js');
    const { stdout } = await exec(process.execPath, [demo, '--once'], { timeout: 110_000 });
    expect(stdout).toContain('BucketSync is serving http://127.0.0.1:');
    const alice = stdout.slice(stdout.indexOf('--- alice received:'), stdout.indexOf('--- bob received:'));
    const bob = stdout.slice(stdout.indexOf('--- bob received:'));
    // alice owns groceries and work (2 lists, 20 todos); bob owns garden (1 list, 10 todos).
    expect(alice).toContain('all checksums verified');
    expect(alice).toMatch(/lists\s+2/);
    expect(alice).toMatch(/todos\s+20/);
    expect(bob).toMatch(/lists\s+1/);
    expect(bob).toMatch(/todos\s+10/);
  });
});
