/**
 * Checkpoint fan-out: one LISTEN connection per process and storage schema, shared by every
 * watcher (architecture.md section 6). Commits NOTIFY; each notification is handed to all
 * subscribers in memory. After a reconnect, subscribers are told to re-read the checkpoint.
 * The same channel carries "a managed write checkpoint was created" notices, which invalidate
 * every process's write checkpoint cache.
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

/** A created managed write checkpoint's (user, client); `undefined` = any (missed some, or too long to send). */
export type WriteCheckpointSubscriber = (key: { userId: string; clientId: string } | undefined) => void;

/**
 * Payload of a write checkpoint notice. Longer ones (huge user ids) are sent as "any" rather
 * than failing the write checkpoint on NOTIFY's 8000-byte limit.
 *
 * Changelog: `{"w":[user,client]}` or `{"w":null}` (any), added with storage version 3. Older
 * processes read it as an undecodable checkpoint notification, i.e. "re-read".
 */
export function encodeWriteCheckpointNotification(key: { userId: string; clientId: string }): string {
  const payload = JSON.stringify({ w: [key.userId, key.clientId] });
  return Buffer.byteLength(payload) <= 7000 ? payload : JSON.stringify({ w: null });
}

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

type Decoded =
  | { kind: 'checkpoint'; notification: CheckpointNotification | undefined }
  | { kind: 'write-checkpoint'; key: { userId: string; clientId: string } | undefined };

function decode(payload: string | undefined): Decoded {
  try {
    const raw = JSON.parse(payload ?? '') as
      { c: number; o: string; p: string | null; k: string; w?: undefined } | { w: [string, string] | null };
    if (raw.w !== undefined) {
      const w = raw.w;
      return {
        kind: 'write-checkpoint',
        key: Array.isArray(w) ? { userId: String(w[0]), clientId: String(w[1]) } : undefined,
      };
    }
    return {
      kind: 'checkpoint',
      notification: {
        configId: raw.c,
        opId: BigInt(raw.o),
        position: raw.p ?? undefined,
        compactedThrough: BigInt(raw.k),
      },
    };
  } catch {
    return { kind: 'checkpoint', notification: undefined };
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
  private readonly writeCheckpointSubscribers = new Set<WriteCheckpointSubscriber>();
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

  /**
   * Adds a subscriber to managed write checkpoint notices; resolves once the LISTEN is active.
   * It also gets `undefined` whenever notices may have been missed (connection lost).
   */
  async subscribeWriteCheckpoints(subscriber: WriteCheckpointSubscriber): Promise<() => void> {
    this.writeCheckpointSubscribers.add(subscriber);
    await this.ensureConnected();
    return () => {
      this.writeCheckpointSubscribers.delete(subscriber);
    };
  }

  /** True while the LISTEN connection is up: nothing is being missed. */
  get listening(): boolean {
    return this.client !== undefined;
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
      const decoded = decode(message.payload);
      if (decoded.kind === 'write-checkpoint') {
        for (const subscriber of this.writeCheckpointSubscribers) subscriber(decoded.key);
      } else {
        for (const subscriber of this.subscribers) subscriber(decoded.notification);
      }
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
    for (const subscriber of this.writeCheckpointSubscribers) subscriber(undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    this.retryTimer = setTimeout(() => {
      if (this.closed || this.subscribers.size + this.writeCheckpointSubscribers.size === 0) return;
      this.ensureConnected().catch(() => this.scheduleReconnect());
    }, 1000);
    this.retryTimer.unref?.();
  }
}
