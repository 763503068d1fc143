/**
 * Names of replication lock holders, and recognising a holder that crashed. A lock is a lease
 * in storage; a process killed while holding it would otherwise keep its successor waiting
 * until the lease expires. A holder on this host whose process no longer runs cannot be
 * replicating, so its lock may be taken over at once.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/** `host:pid:nonce`: the nonce tells apart two runs that got the same pid (pid 1 in containers). */
export function lockHolderName(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/**
 * True when `holder` is an earlier process on this host that no longer runs. Anything else
 * (another host, a running process, a name of another format) is presumed alive: its lease
 * must expire first.
 */
export function holderIsDeadLocalProcess(holder: string, self: string): boolean {
  const [host, pidText, nonce] = holder.split(':');
  const [selfHost, selfPid, selfNonce] = self.split(':');
  const pid = Number(pidText);
  if (host !== selfHost || !Number.isInteger(pid) || pid <= 0 || holder === self) return false;
  // Our own pid with another nonce: an earlier run of this process id (a restarted container).
  if (String(pid) === selfPid) return nonce !== selfNonce;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
