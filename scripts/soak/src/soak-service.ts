/**
 * The service under soak: the built `service/bin/bucketsync start -c config.yaml` on a free
 * port, its log written to a file and scanned for warnings and errors, ready once it serves
 * clients and has its first consistent checkpoint.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { signDevToken } from '@bucketsync/service-core';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../service/bin/bucketsync');

export interface SoakServiceOptions {
  dir: string;
  sourceUrl: string;
  storageUrl: string;
  publication: string;
  syncConfig: string;
  port: number;
  logLevel: string;
  /**
   * Folder for heap snapshots: the service then writes one on SIGUSR2 (`heapSnapshot()`).
   * Default none (a snapshot pauses the service for seconds; only diagnostic runs take them).
   */
  heapSnapshotDir?: string;
}

/** Warnings and errors the service logged, with the first few messages. */
export interface ServiceLogProblems {
  warnings: number;
  errors: number;
  first: string[];
}

export class SoakService {
  readonly endpoint: URL;
  readonly logFile: string;
  readonly log: ServiceLogProblems = { warnings: 0, errors: 0, first: [] };
  /** Set when the process exited; `expected` when the soak stopped it. */
  exit: { code: number | null; signal: NodeJS.Signals | null; expected: boolean } | undefined;

  private readonly key = { kty: 'oct', alg: 'HS256', kid: 'soak', k: randomBytes(32).toString('base64url') };
  private readonly tokens = new Map<string, { token: Promise<string>; seconds: number; expiresAt: number }>();
  private child: ChildProcess | undefined;
  private logStream: WriteStream | undefined;
  private partialLine = '';
  private readyMarks = new Set<string>();
  private stopping = false;
  private exited: Promise<void> | undefined;

  constructor(private readonly options: SoakServiceOptions) {
    this.endpoint = new URL(`http://127.0.0.1:${options.port}`);
    this.logFile = path.join(options.dir, 'service.log');
  }

  /** The process exited without the soak stopping it. */
  get exitedUnexpectedly(): boolean {
    return this.exit !== undefined && !this.exit.expected;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** A token for `sub`, valid for `seconds`. */
  token(sub: string, seconds: number): Promise<string> {
    return signDevToken({ key: this.key, sub, audience: 'bucketsync', expiresInSeconds: seconds });
  }

  /**
   * A token for `sub` valid for `seconds`, shared by every caller for the same user and signed
   * again when less than a minute (or half its lifetime) is left, so hundreds of clients of a
   * user cost one signature.
   */
  cachedToken(sub: string, seconds: number): Promise<string> {
    const renewMs = Math.min(60_000, (seconds * 1000) / 2);
    let entry = this.tokens.get(sub);
    if (!entry || entry.seconds !== seconds || entry.expiresAt - Date.now() < renewMs) {
      entry = { token: this.token(sub, seconds), seconds, expiresAt: Date.now() + seconds * 1000 };
      this.tokens.set(sub, entry);
    }
    return entry.token;
  }

  async start(options: { timeoutMs: number; onExit(): void }): Promise<void> {
    const { dir } = this.options;
    await writeFile(path.join(dir, 'sync-config.yaml'), this.options.syncConfig);
    const configFile = path.join(dir, 'config.yaml');
    await writeFile(
      configFile,
      [
        'replication:',
        '  connections:',
        '    - type: postgresql',
        `      uri: ${this.options.sourceUrl}`,
        `      publication_name: ${this.options.publication}`,
        'storage:',
        '  type: postgresql',
        `  uri: ${this.options.storageUrl}`,
        'sync_config:',
        '  path: sync-config.yaml',
        'client_auth:',
        '  jwks:',
        `    keys: [${JSON.stringify(this.key)}]`,
        '  audience: [bucketsync]',
        `port: ${this.options.port}`,
        'host: 127.0.0.1',
        '',
      ].join('\n'),
    );
    this.logStream = createWriteStream(this.logFile);
    const child = spawn(process.execPath, [bin, 'start', '-c', configFile], {
      env: {
        ...process.env,
        LOG_LEVEL: this.options.logLevel,
        NODE_OPTIONS: this.options.heapSnapshotDir
          ? `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${this.options.heapSnapshotDir}`
          : '',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => this.onOutput(d));
    child.stderr!.on('data', (d: Buffer) => this.onOutput(d));
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exit = { code, signal, expected: this.stopping };
        resolve();
        if (!this.stopping) options.onExit();
      }),
    );

    const deadline = Date.now() + options.timeoutMs;
    while (!(this.readyMarks.has('serving') && this.readyMarks.has('consistent'))) {
      if (this.exit) throw new Error(`the service exited during start (code ${this.exit.code}); see ${this.logFile}`);
      if (Date.now() > deadline) {
        throw new Error(`the service did not become ready within ${options.timeoutMs} ms; see ${this.logFile}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private onOutput(data: Buffer): void {
    this.logStream?.write(data);
    const text = this.partialLine + data.toString('utf8');
    const lines = text.split('\n');
    this.partialLine = lines.pop() ?? '';
    for (const line of lines) {
      if (line.includes('serving clients on')) this.readyMarks.add('serving');
      if (line.includes('first consistent checkpoint')) this.readyMarks.add('consistent');
      const level = /"level":"(\w+)"/.exec(line)?.[1];
      if (level === 'warn' || level === 'error' || level === 'fatal') {
        if (level === 'warn') this.log.warnings++;
        else this.log.errors++;
        if (this.log.first.length < 10) this.log.first.push(line.slice(0, 500));
      } else if (!level && line.trim().length > 0 && this.log.first.length < 10 && !line.startsWith('{')) {
        // Not a log line (a crash trace on stderr): keep it.
        this.log.errors++;
        this.log.first.push(line.slice(0, 500));
      }
    }
  }

  /**
   * Makes the service write a heap snapshot (it runs a full garbage collection first) and resolves
   * with its path once the file is complete. Needs `heapSnapshotDir`.
   */
  async heapSnapshot(timeoutMs = 180_000): Promise<string> {
    const dir = this.options.heapSnapshotDir;
    if (!dir || !this.child || this.exit) throw new Error('heap snapshots need heapSnapshotDir and a running service');
    const before = new Set(await readdir(dir));
    this.child.kill('SIGUSR2');
    const deadline = Date.now() + timeoutMs;
    let last = -1;
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      const file = (await readdir(dir)).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
      if (file) {
        // The service writes the file in one go on its main thread: complete once the size stops changing.
        const size = (await stat(path.join(dir, file))).size;
        if (size > 0 && size === last) return path.join(dir, file);
        last = size;
      }
      if (Date.now() > deadline) throw new Error(`no complete heap snapshot in ${dir} after ${timeoutMs} ms`);
    }
  }

  /** SIGTERM, then SIGKILL after 15 s. Returns the exit code (undefined if it had to be killed). */
  async stop(): Promise<number | null | undefined> {
    const child = this.child;
    if (!child) return undefined;
    if (!this.exit) {
      this.stopping = true;
      child.kill('SIGTERM');
      const done = await Promise.race([
        this.exited!.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 15_000)),
      ]);
      if (!done) {
        child.kill('SIGKILL');
        await this.exited;
        await this.closeLog();
        return undefined;
      }
    }
    await this.closeLog();
    return this.exit?.code;
  }

  private async closeLog(): Promise<void> {
    const stream = this.logStream;
    this.logStream = undefined;
    if (stream) await new Promise<void>((resolve) => stream.end(() => resolve()));
  }
}
