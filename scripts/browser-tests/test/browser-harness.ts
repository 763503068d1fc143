/**
 * Headless Chromium from the system's `chromium` package (never a downloaded build), through
 * playwright-core, with a fresh profile per run and no network but localhost.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { BrowserTestPage } from '../src/page-api.js';

/** Debian's `chromium` package; `.ci/run` installs it when missing. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // No name resolves but localhost: the page and the service are all on 127.0.0.1.
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
];

/** Why the browser tests cannot run here, or undefined when they can. */
export function chromiumSkipReason(): string | undefined {
  return existsSync(CHROMIUM_PATH)
    ? undefined
    : `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`;
}

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
  const profile = mkdtempSync(path.join(tmpdir(), 'bucketsync-chromium-'));
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ARGS,
  });
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
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
