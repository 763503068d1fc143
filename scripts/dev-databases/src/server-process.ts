/**
 * A database server running as a child process: started with its output in a log file,
 * stopped with a graceful signal, then SIGKILL if it does not exit in time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, closeSync } from 'node:fs';

export interface ServerProcessOptions {
  command: string;
  args: string[];
  logFile: string;
  /** Run as this user (numeric ids); used when we are root and the server refuses root. */
  user?: { uid: number; gid: number };
  env?: NodeJS.ProcessEnv;
}

export class ServerProcess {
  readonly child: ChildProcess;
  private exitDescription: string | undefined;
  private readonly exited: Promise<void>;

  constructor(private readonly options: ServerProcessOptions) {
    const log = openSync(options.logFile, 'a');
    this.child = spawn(options.command, options.args, {
      stdio: ['ignore', log, log],
      env: options.env ?? process.env,
      ...(options.user ? { uid: options.user.uid, gid: options.user.gid } : {}),
    });
    closeSync(log);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitDescription = `exit code ${code ?? 'none'}, signal ${signal ?? 'none'}; log: ${this.logTail()}`;
        resolve();
      });
      this.child.once('error', (err) => {
        this.exitDescription = `could not start ${options.command}: ${err.message}`;
        resolve();
      });
    });
  }

  /** The process id while it runs; undefined once it has exited (or could not start). */
  get pid(): number | undefined {
    return this.exitDescription === undefined ? this.child.pid : undefined;
  }

  /** Why the process has ended, or undefined while it runs. */
  get deadReason(): string | undefined {
    return this.exitDescription;
  }

  logTail(lines = 15): string {
    try {
      return readFileSync(this.options.logFile, 'utf8').trim().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Sends `signal`, waits up to `timeoutMs`, then kills. Idempotent. */
  async stop(signal: NodeJS.Signals, timeoutMs = 10_000): Promise<void> {
    if (this.exitDescription === undefined) {
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
  }
}
