/**
 * Run directories for throwaway servers: one folder per owning process under the OS temp
 * dir, with the owner's pid recorded so a later run can stop servers whose owner died
 * (killed test run, Ctrl-C during startup) instead of clashing with them.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const RUNS_ROOT = path.join(os.tmpdir(), 'bucketsync-dev-databases');
/**
 * Cached initdb / mariadb-install-db output, one folder per server version, copied for each
 * run and kept between runs (the README says how to remove it). Nothing running uses it.
 */
export const TEMPLATES_ROOT = path.join(os.tmpdir(), 'bucketsync-dev-database-templates');

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').split('\n')[0] ?? '', 10);
    return Number.isFinite(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Server pid files that a run directory may contain (Postgres postmaster.pid, MariaDB pid file). */
function serverPidFiles(runDir: string): string[] {
  return [path.join(runDir, 'postgres', 'postmaster.pid'), path.join(runDir, 'mariadb', 'mariadbd.pid')];
}

/** Stops servers left behind by runs whose owning process no longer exists, and removes their folders. */
export async function cleanStaleRuns(): Promise<void> {
  if (!existsSync(RUNS_ROOT)) return;
  for (const name of readdirSync(RUNS_ROOT)) {
    const runDir = path.join(RUNS_ROOT, name);
    const owner = readPid(path.join(runDir, 'owner.pid'));
    if (owner !== undefined && processAlive(owner)) continue;
    for (const pidFile of serverPidFiles(runDir)) {
      const pid = readPid(pidFile);
      if (pid !== undefined && processAlive(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    rmSync(runDir, { recursive: true, force: true });
  }
}

/** Creates a fresh run directory owned by this process. */
export function createRunDirectory(): string {
  mkdirSync(RUNS_ROOT, { recursive: true, mode: 0o755 });
  const runDir = path.join(RUNS_ROOT, `${process.pid}-${Date.now().toString(36)}`);
  mkdirSync(runDir, { recursive: true, mode: 0o755 });
  writeFileSync(path.join(runDir, 'owner.pid'), `${process.pid}\n`);
  return runDir;
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not allocate a free port'));
      });
    });
  });
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function waitFor<T>(
  what: string,
  attempt: () => Promise<T>,
  options: { timeoutMs: number; isDead?: () => string | undefined },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    const dead = options.isDead?.();
    if (dead) throw new Error(`${what} exited during startup: ${dead}`);
    try {
      return await attempt();
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what} did not become ready within ${options.timeoutMs} ms: ${String(lastError)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
