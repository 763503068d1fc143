/**
 * Names of replication lock holders, and recognising a holder that crashed. A lock is a lease
 * in storage; a process killed while holding it would otherwise keep its successor waiting
 * until the lease expires. A holder on this host whose process no longer runs cannot be
 * replicating, so its lock may be taken over at once.
 */
import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * The id of this process's PID namespace (Linux), or '-' where it cannot be read. Two
 * containers can share a host name (host networking) while their pids mean different things:
 * a pid is only checked within the same namespace.
 */
function pidNamespace(): string {
  try {
    return /\d+/.exec(readlinkSync('/proc/self/ns/pid'))?.[0] ?? '-';
  } catch {
    return '-';
  }
}

/** `host:pid:nonce:pid-namespace`; the nonce tells apart two runs that got the same pid. */
export function lockHolderName(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}:${pidNamespace()}`;
}

/**
 * True when `holder` is an earlier process of this host and PID namespace that no longer
 * runs. Anything else (another host or namespace, a running process, a name of another
 * format) is presumed alive: its lease must expire first.
 */
export function holderIsDeadLocalProcess(holder: string, self: string): boolean {
  const [host, pidText, nonce, namespace] = holder.split(':');
  const [selfHost, selfPid, selfNonce, selfNamespace] = self.split(':');
  const pid = Number(pidText);
  if (host !== selfHost || !Number.isInteger(pid) || pid <= 0 || holder === self) return false;
  if (namespace === undefined || namespace === '-' || namespace !== selfNamespace) return false;
  // Our own pid with another nonce: an earlier run of this process id.
  if (String(pid) === selfPid) return nonce !== selfNonce;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
