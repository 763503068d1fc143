import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { portInUse } from '@bucketsync/dev-databases';
import { afterEach, describe, expect, it } from 'vitest';

const exec = promisify(execFile);

describe('npm run demo (built, --once)', () => {
  it('starts the databases and BucketSync, and two users each receive their own lists with verified checksums', async () => {
    const demo = path.resolve(import.meta.dirname, '../dist/demo.js');
    const { stdout } = await exec(process.execPath, [demo, '--once', '--free-ports'], { timeout: 110_000 });
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

// ---------------------------------------------------------------------------------------------
// Cleanup: whatever stops the demo (other than SIGKILL), nothing it started may outlive it.
// The demo runs in its own process group, as under a terminal, so a signal can go to the whole
// group (what a terminal does on Ctrl-C or when it closes). The processes it started are taken
// from its group and its process tree while it runs, and must all be gone once it has exited.

interface DemoProcesses {
  servicePid: number;
  servicePort: number;
  postgresPid: number;
  postgresPort: number;
  runDirectory: string;
}

interface RunningDemo {
  pid: number;
  output: () => string;
  started: DemoProcesses;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Demos a failed test may have left running; afterEach stops them so a failure leaves nothing behind. */
const leftRunning = new Set<ChildProcess>();

async function startDemo(): Promise<RunningDemo> {
  const demo = path.resolve(import.meta.dirname, '../dist/demo.js');
  const child = spawn(process.execPath, [demo, '--free-ports'], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  leftRunning.add(child);
  child.once('exit', () => leftRunning.delete(child));
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const deadline = Date.now() + 100_000;
  while (!output.includes('Running. Press Ctrl-C to stop.')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`the demo did not come up:\n${output}`);
    }
    await sleep(100);
  }
  const line =
    /Processes: BucketSync pid (\d+) port (\d+); Postgres pid (\d+) port (\d+); database files in (\S+)/.exec(output);
  if (!line) throw new Error(`the demo did not print the processes it started:\n${output}`);
  return {
    pid: child.pid!,
    output: () => output,
    exited,
    started: {
      servicePid: Number(line[1]),
      servicePort: Number(line[2]),
      postgresPid: Number(line[3]),
      postgresPort: Number(line[4]),
      runDirectory: line[5]!,
    },
  };
}

interface ProcessInfo {
  pid: number;
  ppid: number;
  pgid: number;
  cmdline: string;
}

/** Live (not zombie) processes, from /proc. */
function listProcesses(): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
      const [state, ppid, pgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z') continue;
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      found.push({ pid: Number(name), ppid: Number(ppid), pgid: Number(pgid), cmdline });
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

/**
 * The demo's processes: its process group (the demo, BucketSync, the postmaster) and every
 * descendant of the demo (Postgres puts each of its child processes in a group of its own).
 */
function demoProcesses(demoPid: number): ProcessInfo[] {
  const all = listProcesses();
  const tree = new Set([demoPid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) {
      if (tree.has(p.ppid) && !tree.has(p.pid)) {
        tree.add(p.pid);
        grew = true;
      }
    }
  }
  return all.filter((p) => p.pgid === demoPid || tree.has(p.pid));
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is already gone
  }
}

/** Waits for the demo to exit after a signal, then checks that nothing in `before` survived it. */
async function expectEverythingGone(demo: RunningDemo, before: ProcessInfo[]): Promise<void> {
  const { code } = await demo.exited;
  const output = demo.output();
  expect(code, output).toBe(0);
  expect(output).toMatch(/stopping BucketSync \(pid \d+\), Postgres \(pid \d+, port \d+\)\.\.\.[\s\S]*\nstopped/);
  const { servicePid, postgresPid, servicePort, postgresPort, runDirectory } = demo.started;
  const beforePids = new Set([...before.map((p) => p.pid), servicePid, postgresPid]);
  const survivors = listProcesses().filter((p) => p.pgid === demo.pid || beforePids.has(p.pid));
  expect(survivors).toEqual([]);
  expect(existsSync(runDirectory)).toBe(false);
  expect(await portInUse(servicePort)).toBe(false);
  expect(await portInUse(postgresPort)).toBe(false);
}

describe('npm run demo (built) stops everything it started', () => {
  afterEach(async () => {
    for (const child of leftRunning) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(30_000)]);
      signalGroup(child.pid!, 'SIGKILL');
    }
  });

  it('when its terminal closes (SIGHUP to the process group), and it starts Postgres only', async () => {
    const demo = await startDemo();
    const running = demoProcesses(demo.pid);
    const { servicePid, postgresPid, runDirectory } = demo.started;
    expect(running.map((p) => p.pid)).toEqual(expect.arrayContaining([demo.pid, servicePid, postgresPid]));
    // The postmaster's own children (checkpointer, WAL senders, backends) must go too.
    expect(running.filter((p) => p.cmdline.startsWith('postgres:')).length).toBeGreaterThan(0);
    expect(running.filter((p) => /mariadbd|mysqld/.test(p.cmdline))).toEqual([]);
    expect(readdirSync(runDirectory)).toContain('postgres');
    expect(readdirSync(runDirectory)).not.toContain('mariadb');

    signalGroup(demo.pid, 'SIGHUP');
    await expectEverythingGone(demo, running);
  });

  it('on Ctrl-C (SIGINT to the process group), pressed again while stopping, then the pane closing', async () => {
    const demo = await startDemo();
    const running = demoProcesses(demo.pid);
    signalGroup(demo.pid, 'SIGINT');
    while (!demo.output().includes('stopping')) await sleep(10);
    signalGroup(demo.pid, 'SIGINT');
    signalGroup(demo.pid, 'SIGHUP');
    await expectEverythingGone(demo, running);
  });

  it('on SIGTERM to the demo process alone (its children get no signal but from the demo)', async () => {
    const demo = await startDemo();
    const running = demoProcesses(demo.pid);
    process.kill(demo.pid, 'SIGTERM');
    await expectEverythingGone(demo, running);
  });
});
