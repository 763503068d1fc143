/**
 * Checkpoint fan-out: one LISTEN connection per process and storage schema, shared by every
 * watcher (architecture.md section 6). Commits NOTIFY; each notification is handed to all
 * subscribers in memory. After a reconnect, subscribers are told to re-read the checkpoint.
 */
import pg from 'pg';
import { quoteIdentifier } from './migrations/index.js';

/** A decoded checkpoint notification. */
export interface CheckpointNotification {
  readonly configId: number;
  readonly opId: bigint;
  readonly position: string | undefined;
  readonly compactedThrough: bigint;
}

/** A subscriber gets each notification, or `undefined` meaning "missed some: re-read". */
export type CheckpointSubscriber = (notification: CheckpointNotification | undefined) => void;

/** The NOTIFY channel of a storage schema. */
export function checkpointChannel(schema: string): string {
  return `${schema}_checkpoints`.slice(0, 63);
}

/** Encodes a notification payload (well under the 8000-byte NOTIFY limit for sane positions). */
export function encodeCheckpointNotification(n: CheckpointNotification): string {
  return JSON.stringify({
    c: n.configId,
    o: n.opId.toString(),
    p: n.position ?? null,
    k: n.compactedThrough.toString(),
  });
}

function decode(payload: string | undefined): CheckpointNotification | undefined {
  try {
    const raw = JSON.parse(payload ?? '') as { c: number; o: string; p: string | null; k: string };
    return { configId: raw.c, opId: BigInt(raw.o), position: raw.p ?? undefined, compactedThrough: BigInt(raw.k) };
  } catch {
    return undefined;
  }
}

/** The shared listener of one (URI, schema) in this process. */
export class PostgresCheckpointListener {
  private static readonly shared = new Map<string, PostgresCheckpointListener>();

  /** The process-wide listener for this database and schema (created on first use). */
  static acquire(uri: string, schema: string): PostgresCheckpointListener {
    const key = `${uri}\u0000${schema}`;
    let listener = PostgresCheckpointListener.shared.get(key);
    if (!listener) {
      listener = new PostgresCheckpointListener(uri, schema, () => PostgresCheckpointListener.shared.delete(key));
      PostgresCheckpointListener.shared.set(key, listener);
    }
    listener.users++;
    return listener;
  }

  private users = 0;
  private readonly subscribers = new Set<CheckpointSubscriber>();
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private closed = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  private constructor(
    private readonly uri: string,
    private readonly schema: string,
    private readonly onClosed: () => void,
  ) {}

  /** Number of LISTEN connections this listener holds (0 or 1); for tests and diagnostics. */
  get connections(): number {
    return this.client ? 1 : 0;
  }

  /**
   * Adds a subscriber; resolves once the LISTEN is active, so a commit after this call is
   * seen. Returns the unsubscribe function.
   */
  async subscribe(subscriber: CheckpointSubscriber): Promise<() => void> {
    this.subscribers.add(subscriber);
    await this.ensureConnected();
    return () => {
      this.subscribers.delete(subscriber);
    };
  }

  /** Drops one user; the connection closes with the last one. */
  async release(): Promise<void> {
    this.users--;
    if (this.users > 0) return;
    this.closed = true;
    this.onClosed();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private ensureConnected(): Promise<void> {
    if (this.client) return Promise.resolve();
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.uri });
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    client.on('notification', (message) => {
      const notification = decode(message.payload);
      for (const subscriber of this.subscribers) subscriber(notification);
    });
    await client.connect();
    await client.query(`LISTEN ${quoteIdentifier(checkpointChannel(this.schema))}`);
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
  }

  private lost(client: pg.Client): void {
    if (this.client !== client || this.closed) return;
    this.client = undefined;
    // Tell everyone they may have missed notifications, then reconnect in the background.
    for (const subscriber of this.subscribers) subscriber(undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    this.retryTimer = setTimeout(() => {
      if (this.closed || this.subscribers.size === 0) return;
      this.ensureConnected().catch(() => this.scheduleReconnect());
    }, 1000);
    this.retryTimer.unref?.();
  }
}
