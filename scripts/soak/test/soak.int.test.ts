import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { postgresBinaries } from '@bucketsync/dev-databases';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SOAK_OPTIONS } from '../src/soak-options.js';
import { writeSoakReport } from '../src/soak-report.js';
import { runSoak } from '../src/soak-run.js';

// The soak starts its own Postgres cluster (it needs wal_level=logical and the whole server to
// itself), so it needs the Postgres binaries rather than PG_TEST_URL.
let skipReason: string | undefined;
try {
  postgresBinaries();
} catch (e) {
  skipReason = (e as Error).message;
}
const describeWithPostgres = skipReason === undefined ? describe : describe.skip;
if (skipReason) console.log(`[skipped] soak: ${skipReason}`);

describeWithPostgres(`soak (own Postgres cluster${skipReason ? `; skipped: ${skipReason}` : ''})`, () => {
  it('runs half a minute with 20 clients, a burst and expiring tokens, delivers every op exactly, measures lag and memory, and passes', async () => {
    const lines: string[] = [];
    const result = await runSoak(
      {
        ...DEFAULT_SOAK_OPTIONS,
        minutes: 0.5,
        clients: 20,
        users: 20,
        probes: 3,
        rate: 100,
        burstRows: 2000,
        burstEverySeconds: 20,
        recoveryWindowSeconds: 15,
        noticeEverySeconds: 5,
        // Other test files run beside this one on a small machine: a lenient threshold keeps it
        // about recovery, not speed (speed is for `npm run soak`).
        lagThresholdMs: 3000,
        sampleEverySeconds: 2,
        progressEverySeconds: 10,
        drainTimeoutSeconds: 30,
        // Streams end at token expiry and resume from the last checkpoint with a new token.
        tokenSeconds: 12,
      },
      { log: (line) => lines.push(line) },
    );
    if (!result.verdict.passed) console.log(result.verdict.failures.join('\n'));
    expect(result.verdict.passed).toBe(true);
    expect(result.load.steadyRows).toBeGreaterThan(1000);
    expect(result.load.burstRows).toBe(2000);
    expect(result.delivery.opsDelivered).toBeGreaterThan(result.load.rowsWritten);
    expect(result.delivery.caughtUp).toBe(true);
    expect(result.delivery.protocolProblems).toBe(0);
    expect(result.delivery.tokenExpiries).toBeGreaterThanOrEqual(20);
    expect(result.lag.overall.count).toBeGreaterThan(100);
    expect(result.lag.overall.p50).toBeGreaterThanOrEqual(0);
    expect(result.bursts).toHaveLength(1);
    expect(result.bursts[0]!.recovered).toBe(true);
    expect(result.series.rss.length).toBeGreaterThanOrEqual(10);
    expect(result.series.rss.every((p) => p.serviceMb > 10)).toBe(true);
    expect(result.series.lag.filter((w) => w.count > 0).length).toBeGreaterThan(5);
    expect(result.memory.service.growth.judged).toBe(true);
    expect(result.service.exitCode).toBe(0);
    expect(lines.some((l) => /^\[00:10\] rows [\d,]+/.test(l))).toBe(true);

    const dir = mkdtempSync(path.join(tmpdir(), 'soak-report-'));
    try {
      const files = await writeSoakReport(result, dir);
      expect(JSON.parse(readFileSync(files.json, 'utf8')).verdict.passed).toBe(true);
      expect(existsSync(files.svg)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
