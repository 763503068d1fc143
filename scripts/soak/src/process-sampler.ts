/**
 * Resident memory, CPU time and open file descriptors of another process, read from /proc
 * (Linux); optionally with its child processes (a Postgres server is a postmaster and one process
 * per connection). Without /proc, `ps` gives the memory of the process alone and nothing else.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on every mainstream Linux). */
const TICKS_PER_SECOND = 100;

export interface ProcessSample {
  rssMb: number;
  /** CPU seconds (user + system) used so far; undefined where /proc is not available. */
  cpuSeconds: number | undefined;
}

/** The fields of /proc/<pid>/stat after the command name (which may contain spaces): [0] is field 3. */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

function rssMb(pid: number): number {
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return rss ? Number(rss[1]) / 1024 : 0;
}

export class ProcessSampler {
  /**
   * `withChildren`: add the live children's memory and CPU, and the CPU of children that have
   * exited (the parent's cutime / cstime).
   */
  constructor(
    readonly pid: number,
    private readonly options: { withChildren?: boolean } = {},
  ) {}

  /** The process's current RSS and CPU time; undefined when it is gone. */
  sample(): ProcessSample | undefined {
    try {
      const fields = statFields(this.pid);
      // utime, stime, cutime, cstime are fields 14 to 17.
      let ticks = Number(fields[11]) + Number(fields[12]);
      let mb = rssMb(this.pid);
      if (this.options.withChildren) {
        ticks += Number(fields[13]) + Number(fields[14]);
        for (const child of this.children()) {
          try {
            const f = statFields(child);
            ticks += Number(f[11]) + Number(f[12]);
            mb += rssMb(child);
          } catch {
            // exited meanwhile
          }
        }
      }
      return { rssMb: mb, cpuSeconds: ticks / TICKS_PER_SECOND };
    } catch {
      return this.sampleWithPs();
    }
  }

  /**
   * Open file descriptors of the process (entries of /proc/<pid>/fd: sockets, files, pipes,
   * epoll and timer fds), its handles as the kernel sees them; undefined without /proc access.
   */
  openFds(): number | undefined {
    try {
      return readdirSync(`/proc/${this.pid}/fd`).length;
    } catch {
      return undefined;
    }
  }

  private children(): number[] {
    const out: number[] = [];
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        if (Number(statFields(Number(name))[1]) === this.pid) out.push(Number(name));
      } catch {
        // exited meanwhile
      }
    }
    return out;
  }

  private sampleWithPs(): ProcessSample | undefined {
    try {
      const kb = Number(execFileSync('ps', ['-o', 'rss=', '-p', String(this.pid)], { encoding: 'utf8' }).trim());
      return Number.isFinite(kb) && kb > 0 ? { rssMb: kb / 1024, cpuSeconds: undefined } : undefined;
    } catch {
      return undefined;
    }
  }
}
