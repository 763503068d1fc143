/**
 * The test page in headless Chromium (../node-src/chromium.ts: the system's `chromium`, a fresh
 * profile per run, no network but localhost), with typed calls into `window.bucketsync`.
 */
import type { Page } from 'playwright-core';
import { chromiumSkipReason, launchChromium } from '../node-src/chromium.js';
import type { BrowserTestPage } from '../src/page-api.js';

export { chromiumSkipReason };

export interface BrowserHarness {
  page: Page;
  /** The page's console and errors, for failure messages. */
  log: string[];
  /** Calls `window.bucketsync[method](...args)` in the page. */
  call<K extends keyof BrowserTestPage>(
    method: K,
    ...args: Parameters<BrowserTestPage[K]>
  ): Promise<Awaited<ReturnType<BrowserTestPage[K]>>>;
  /** Loads (or reloads) the page at `url` and waits for `window.bucketsync`. */
  load(url: string): Promise<void>;
  close(): Promise<void>;
}

export async function startBrowser(): Promise<BrowserHarness> {
  const browser = await launchChromium();
  const { context } = browser;
  const page = context.pages()[0] ?? (await context.newPage());
  const log: string[] = [];
  page.on('console', (message) => log.push(`[${message.type()}] ${message.text()}`));
  page.on('pageerror', (error) => log.push(`[pageerror] ${error.message}`));
  return {
    page,
    log,
    call: (method, ...args) =>
      page.evaluate(
        ([m, a]) =>
          (
            (globalThis as unknown as { bucketsync: Record<string, (...x: unknown[]) => unknown> }).bucketsync[m] as (
              ...x: unknown[]
            ) => unknown
          )(...a),
        [method, args] as [string, unknown[]],
      ) as never,
    async load(url) {
      await page.goto(url);
      await page.waitForFunction(() => 'bucketsync' in globalThis, undefined, { timeout: 20_000 });
    },
    close: () => browser.close(),
  };
}
