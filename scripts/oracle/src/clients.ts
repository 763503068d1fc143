/**
 * The clients of an oracle run: one real `@powersync/node` database per user (connecting,
 * disconnecting and changing stream subscriptions at random), and one-shot syncs through the
 * test-client CLI, which verifies every bucket checksum of the checkpoint it reaches.
 */
import { execFile } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import {
  column,
  PowerSyncDatabase,
  Schema,
  SyncStreamConnectionMethod,
  Table,
  type PowerSyncBackendConnector,
  type SyncStreamSubscription,
} from '@powersync/node';
import { collectRows, type ClientRows, type ClientTable } from './expected.js';
import { TEST_CLIENT_BIN } from './service-process.js';

const schema = new Schema({
  settings: new Table({ value: column.text }),
  docs: new Table({
    group_id: column.text,
    title: column.text,
    body: column.text,
    version: column.integer,
    extra: column.text,
  }),
  events: new Table({ group_id: column.text, kind: column.text, amount: column.integer }),
  notes: new Table({ group_id: column.text, note: column.text }),
  pairs: new Table({ a: column.integer, b: column.text, tag: column.text, val: column.text }),
});

export interface Endpoint {
  url: string;
  token(user: string): Promise<string>;
}

/** A user's `@powersync/node` database. */
export class PowerSyncClient {
  readonly db: PowerSyncDatabase;
  private readonly subscriptions = new Map<string, SyncStreamSubscription>();
  /** Warnings and errors the SDK logged that mention checksums (a failed checkpoint). */
  readonly checksumFailures: string[] = [];
  connected = false;
  readonly logFile: string;

  constructor(
    readonly user: string,
    directory: string,
    private readonly endpoint: Endpoint,
  ) {
    this.logFile = path.join(directory, `${user}.sdk.log`);
    this.db = new PowerSyncDatabase({
      schema,
      // A distinct file name per database: the SDK locks by file name.
      database: { dbFilename: `oracle-${user}-${process.pid}.db`, dbLocation: directory },
      logger: {
        log: (record) => {
          if (record.level >= 40 && /checksum/i.test(record.message)) this.checksumFailures.push(record.message);
          // Everything the SDK says, for a mismatch report.
          const error = record.error === undefined ? '' : ` ${String(record.error)}`;
          appendFileSync(this.logFile, `${new Date().toISOString()} ${record.level} ${record.message}${error}\n`);
        },
      },
    });
  }

  get tags(): string[] {
    return [...this.subscriptions.keys()].sort();
  }

  async connect(): Promise<void> {
    if (this.connected) return;
    const connector: PowerSyncBackendConnector = {
      fetchCredentials: async () => ({ endpoint: this.endpoint.url, token: await this.endpoint.token(this.user) }),
      uploadData: async () => undefined,
    };
    this.connected = true;
    await this.db.connect(connector, { connectionMethod: SyncStreamConnectionMethod.HTTP, retryDelayMs: 500 });
  }

  async disconnect(): Promise<void> {
    if (!this.connected) return;
    this.connected = false;
    await this.db.disconnect();
  }

  async subscribe(tag: string): Promise<void> {
    if (this.subscriptions.has(tag)) return;
    // The default ttl: an ended subscription stays requested (and its rows cached) for a day.
    this.subscriptions.set(tag, await this.db.syncStream('tagged', { tag }).subscribe());
  }

  /** The tags of stream `tagged` the SDK requests: its subscriptions, including ended ones not yet expired. */
  async requestedTags(): Promise<string[]> {
    const rows = await this.db.getAll<{ local_params: string }>(
      "SELECT local_params FROM ps_stream_subscriptions WHERE stream_name = 'tagged'",
    );
    return rows.map((r) => (JSON.parse(r.local_params) as { tag: string }).tag).sort();
  }

  unsubscribe(tag: string): void {
    this.subscriptions.get(tag)?.unsubscribe();
    this.subscriptions.delete(tag);
  }

  rows(): Promise<ClientRows> {
    return collectRows((table, columns) =>
      this.db.getAll<Record<string, unknown>>(`SELECT id, ${columns.join(', ')} FROM ${table}`),
    );
  }

  /** The SDK's buckets and stream subscriptions, for a mismatch report. */
  async describeState(): Promise<string> {
    const buckets = await this.db.getAll<{ name: string; count: number }>(
      'SELECT name, count_at_last + count_since_last AS count FROM ps_buckets ORDER BY name',
    );
    const streams = await this.db.getAll<{ stream_name: string; local_params: string | null; active: number }>(
      'SELECT stream_name, local_params, active FROM ps_stream_subscriptions ORDER BY id',
    );
    return (
      `buckets ${buckets.map((b) => `${b.name}(${b.count})`).join(', ') || 'none'}; ` +
      `subscriptions ${streams.map((s) => `${s.stream_name}${s.local_params ?? ''}${s.active ? '' : ' (inactive)'}`).join(', ') || 'none'}`
    );
  }

  async close(): Promise<void> {
    for (const tag of this.tags) this.unsubscribe(tag);
    await this.disconnect().catch(() => undefined);
    await this.db.close().catch(() => undefined);
  }
}

export interface FetchResult {
  ok: boolean;
  /** Exit code 1 with a checksum mismatch named on stderr. */
  checksumMismatch: boolean;
  buckets: number;
  rows?: ClientRows;
  message: string;
}

/** One sync to the first checkpoint_complete through the test-client CLI (`fetch --json`). */
export function testClientFetch(
  endpoint: string,
  token: string,
  tags: string[],
  timeoutSeconds = 30,
): Promise<FetchResult> {
  const streams = JSON.stringify(tags.map((tag) => ({ stream: 'tagged', parameters: { tag } })));
  const args = ['fetch', '--endpoint', endpoint, '--token', token, '--streams', streams, '--json'];
  args.push('--timeout', String(timeoutSeconds));
  return new Promise((resolve) => {
    execFile(TEST_CLIENT_BIN, args, { maxBuffer: 512 * 1024 * 1024 }, (error, stdout, stderr) => {
      const checksumMismatch = /checksum mismatch/i.test(stderr);
      let state:
        | {
            buckets: unknown[];
            checksums_verified: boolean;
            tables: Record<string, Record<string, Record<string, unknown>>>;
          }
        | undefined;
      try {
        state = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        state = undefined;
      }
      const ok = !error && state !== undefined && state.checksums_verified;
      const result: FetchResult = {
        ok,
        checksumMismatch,
        buckets: state?.buckets.length ?? 0,
        message: stderr.trim() || (error ? String(error.message) : ''),
      };
      if (state) {
        const tables = state.tables;
        void collectRows(async (table: ClientTable) =>
          Object.entries(tables[table] ?? {}).map(([id, data]) => ({ ...data, id })),
        ).then((rows) => resolve({ ...result, rows }));
      } else {
        resolve(result);
      }
    });
  });
}
