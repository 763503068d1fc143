/**
 * The browser test page: a web app as a developer writes one with the official `@powersync/web`
 * SDK, syncing over HTTP from BucketSync on another origin. Its functions are exposed as
 * `window.bucketsync` (see page-api.ts) for the Chromium tests in ../test to drive.
 */
import {
  column,
  PowerSyncDatabase,
  Schema,
  SyncStreamConnectionMethod,
  Table,
  type PowerSyncBackendConnector,
  type SyncStatus,
} from '@powersync/web';
import type { BrowserTestPage, PageSyncStatus } from './page-api.js';

const schema = new Schema({
  todos: new Table({
    owner: column.text,
    description: column.text,
    done: column.integer,
    server_note: column.text,
  }),
});

let db: PowerSyncDatabase | undefined;
let credentialFetches = 0;
const uploads = { count: 0, lastError: undefined as string | undefined };

function database(): PowerSyncDatabase {
  if (!db) throw new Error('open() first');
  return db;
}

/** Errors from the shared sync worker arrive as plain objects: keep their message. */
function describeError(error: unknown): string | undefined {
  if (error === undefined || error === null) return undefined;
  if (typeof error === 'object' && 'message' in error) return String(error.message);
  return String(error);
}

function flatten(status: SyncStatus): PageSyncStatus {
  const flow = status.dataFlowStatus;
  return {
    connected: status.connected,
    hasSynced: status.hasSynced,
    uploading: flow.uploading ?? false,
    downloading: flow.downloading ?? false,
    downloadError: describeError(flow.downloadError),
    uploadError: describeError(flow.uploadError),
  };
}

/** The app's backend is the page's own origin: it hands out tokens and applies uploads. */
const connector: PowerSyncBackendConnector = {
  async fetchCredentials() {
    credentialFetches++;
    const response = await fetch('/token');
    if (!response.ok) throw new Error(`token endpoint answered ${response.status}`);
    const { endpoint, token } = (await response.json()) as { endpoint: string; token: string };
    return { endpoint, token };
  },
  async uploadData(database) {
    const transaction = await database.getNextCrudTransaction();
    if (!transaction) return;
    try {
      const response = await fetch('/upload', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(transaction.crud.map((op) => op.toJSON())),
      });
      if (!response.ok) throw new Error(`upload endpoint answered ${response.status}: ${await response.text()}`);
      await transaction.complete();
      uploads.count++;
    } catch (e) {
      uploads.lastError = String(e);
      throw e;
    }
  },
};

const api: BrowserTestPage = {
  async open() {
    db = new PowerSyncDatabase({ schema, database: { dbFilename: 'browser-test.db' } });
    await db.init();
    return flatten(db.currentStatus);
  },
  async connect(options = {}) {
    await database().connect(connector, {
      connectionMethod: SyncStreamConnectionMethod.HTTP,
      ...(options.retryDelayMs ? { retryDelayMs: options.retryDelayMs } : {}),
    });
  },
  waitForFirstSync: () => database().waitForFirstSync(),
  status: () => flatten(database().currentStatus),
  getAll: (sql, params = []) => database().getAll<Record<string, unknown>>(sql, params),
  async execute(sql, params = []) {
    await database().execute(sql, params);
  },
  async uploadQueueCount() {
    return (await database().getUploadQueueStats()).count;
  },
  credentialFetches: () => credentialFetches,
  uploads: () => ({ ...uploads }),
  disconnect: () => database().disconnect(),
};

(window as unknown as { bucketsync: BrowserTestPage }).bucketsync = api;
document.getElementById('state')!.textContent = 'ready';
