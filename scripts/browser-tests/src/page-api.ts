/**
 * What the test page exposes as `window.bucketsync` for the Chromium tests to call through
 * `page.evaluate`. Plain data only (it crosses into Node), and no DOM types, so the Node-side
 * tests can import it too.
 */

/** The SDK's sync status, flattened to what the tests assert. */
export interface PageSyncStatus {
  connected: boolean;
  hasSynced: boolean | undefined;
  uploading: boolean;
  downloading: boolean;
  downloadError: string | undefined;
  uploadError: string | undefined;
}

export interface BrowserTestPage {
  /**
   * Opens the local database (IndexedDB through the SDK's wa-sqlite worker) and waits until it is
   * ready, without connecting. Resolves with the status read from the local database at once.
   */
  open(): Promise<PageSyncStatus>;
  /**
   * Connects over HTTP (`SyncStreamConnectionMethod.HTTP`); credentials come from the page's own
   * backend (`GET /token` on the page's origin), uploads go to `POST /upload` there.
   */
  connect(options?: { retryDelayMs?: number }): Promise<void>;
  waitForFirstSync(): Promise<void>;
  status(): PageSyncStatus;
  getAll(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  execute(sql: string, params?: unknown[]): Promise<void>;
  /** Local writes not yet uploaded (the SDK's upload queue). */
  uploadQueueCount(): Promise<number>;
  /** How often the SDK called `fetchCredentials`. */
  credentialFetches(): number;
  /** How often the SDK called `uploadData` with a transaction, and the last upload error. */
  uploads(): { count: number; lastError: string | undefined };
  disconnect(): Promise<void>;
}
