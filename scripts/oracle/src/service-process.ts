/**
 * The BucketSync process under test (the built `bucketsync start`), restartable on a fixed
 * port, and a TCP proxy in front of it whose client connections can be cut at any moment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SERVICE_BIN = path.join(root, 'service/bin/bucketsync');
export const TEST_CLIENT_BIN = path.join(root, 'test-client/bin/bucketsync-test-client');

export class ServiceProcess {
  private child: ChildProcess | undefined;
  /** Output of the current process only. */
  private output = '';
  private starts = 0;
  private stopping = false;
  /** Set when the process exited without being killed or stopped: a crash to report. */
  unexpectedExit: string | undefined;

  constructor(
    private readonly configFile: string,
    private readonly logFile: string,
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the service and waits until it serves clients. */
  async start(): Promise<void> {
    if (this.running) return;
    this.output = '';
    this.starts++;
    appendFileSync(this.logFile, `\n===== start ${this.starts} at ${new Date().toISOString()} =====\n`);
    const child = spawn(SERVICE_BIN, ['start', '-c', this.configFile], {
      env: { ...process.env, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.stopping = false;
    child.once('exit', (code, signal) => {
      if (this.stopping) return;
      const tail = this.output.trim().split('\n').slice(-25).join('\n');
      this.unexpectedExit ??= `the service exited on its own (code ${code}, signal ${signal}); its last output:\n${tail}`;
    });
    const onData = (d: Buffer) => {
      const text = d.toString();
      this.output += text;
      appendFileSync(this.logFile, text);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    await this.waitForLog('serving clients on', 1, 60_000);
  }

  async waitForLog(text: string, count = 1, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.count(text) < count) {
      if (!this.running) throw new Error(`the service exited while waiting for "${text}"; see ${this.logFile}`);
      if (Date.now() > deadline)
        throw new Error(`"${text}" was not logged within ${timeoutMs} ms; see ${this.logFile}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  count(text: string): number {
    return this.output.split(text).length - 1;
  }

  /** Table copies started and not finished by the current process. */
  get copiesInFlight(): number {
    return this.count('"copying table"') + this.count('"resuming table copy"') - this.count('"table copy done"');
  }

  /** Lines of the current process at level error (for the report). */
  errorLines(): string[] {
    return this.output.split('\n').filter((l) => l.includes('"level":"error"'));
  }

  /** SIGKILL: no shutdown code runs, as in a crash. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((r) => child.once('exit', r));
    this.stopping = true;
    child.kill('SIGKILL');
    await exited;
  }

  /** A graceful stop (SIGTERM), then SIGKILL after 15 s. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((r) => child.once('exit', r));
    this.stopping = true;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Forwards TCP connections to `targetPort`; `cut()` destroys every open client connection. */
export class CuttableProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly targetPort: number) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      this.sockets.add(client);
      this.sockets.add(upstream);
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** Cuts every connection now; returns how many client connections were open. */
  cut(): number {
    const open = this.sockets.size / 2;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    return Math.floor(open);
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
