import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { holderIsDeadLocalProcess, lockHolderName } from '../src/index.js';

describe('replication lock holders', () => {
  const self = lockHolderName();
  const ns = self.split(':')[3]!;

  it('names host, pid, a nonce and the pid namespace', () => {
    expect(self).toMatch(new RegExp(`^${hostname()}:${process.pid}:[0-9a-f]{8}:(\\d+|-)$`));
    expect(lockHolderName()).not.toBe(self);
  });

  it('takes over from a process on this host that has exited', async () => {
    const child = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => child.on('exit', resolve));
    expect(holderIsDeadLocalProcess(`${hostname()}:${child.pid}:0badcafe:${ns}`, self)).toBe(true);
    // The same pid in another pid namespace (a container sharing the host name) means nothing here.
    expect(holderIsDeadLocalProcess(`${hostname()}:${child.pid}:0badcafe:1`, self)).toBe(false);
  });

  it('takes over from an earlier run with our own pid in our pid namespace', () => {
    expect(holderIsDeadLocalProcess(`${hostname()}:${process.pid}:00000000:${ns}`, self)).toBe(true);
  });

  it('waits for a running process, another host, itself, or a holder it cannot read', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)']);
    try {
      expect(holderIsDeadLocalProcess(`${hostname()}:${child.pid}:0badcafe:${ns}`, self)).toBe(false);
    } finally {
      child.kill();
    }
    expect(holderIsDeadLocalProcess(`another-host:${process.pid}:0badcafe:${ns}`, self)).toBe(false);
    expect(holderIsDeadLocalProcess(`${hostname()}:${process.pid}:0badcafe`, self)).toBe(false);
    expect(holderIsDeadLocalProcess(self, self)).toBe(false);
    expect(holderIsDeadLocalProcess('legacy-name', self)).toBe(false);
  });
});
