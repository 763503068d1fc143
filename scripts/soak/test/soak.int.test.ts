import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { postgresBinaries } from '@bucketsync/dev-databases';
import { describe, expect, it } from 'vitest';
import { DEFAULT_FLAKY_OPTIONS } from '../src/flaky-options.js';
import { writeFlakyReport } from '../src/flaky-report.js';
import { runFlakySoak } from '../src/flaky-run.js';
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

  it('flaky: clients drop before, at and in the middle of NDJSON and BSON, gzipped and plain streams for 25 s; RSS, fds and connections come back to the baseline at rest and clients still sync exactly', async () => {
    const lines: string[] = [];
    const result = await runFlakySoak(
      {
        ...DEFAULT_FLAKY_OPTIONS,
        minutes: 25 / 60,
        // A rate a 2-core machine serves beside the other test files without falling behind: the
        // test is about the drops and the baseline comparison. The storm, hundreds a second, is
        // `npm run soak -- --flaky` (docs/security.md "Flaky-client soak": its RSS figures).
        rate: 6,
        users: 20,
        goodClients: 3,
        documentRows: 1500,
        maxBytes: 1024 * 1024,
        maxStallSeconds: 2,
        maxLifeSeconds: 6,
        writeRate: 20,
        noticeEverySeconds: 5,
        writeCheckpointShare: 0.2,
        warmupSeconds: 5,
        windowSeconds: 6,
        // With the 12 s quiet before the window, past the source pool's 30 s idle timeout (write
        // checkpoints open its connections).
        settleSeconds: 22,
        progressEverySeconds: 10,
        seed: 7,
      },
      { log: (line) => lines.push(line) },
    );
    if (!result.verdict.passed) console.log(result.verdict.failures.join('\n'));
    expect(result.verdict.passed).toBe(true);
    const f = result.flaky;
    expect(f.connections).toBeGreaterThan(120);
    expect(f.failures).toBe(0);
    // Drops really happened in the middle of the data, in every encoding and compression.
    expect(f.droppedAt.midData).toBeGreaterThan(20);
    expect(f.midDataOver64KiB).toBeGreaterThan(5);
    expect(f.byEncoding.ndjson.midData).toBeGreaterThan(0);
    expect(f.byEncoding.bson.midData).toBeGreaterThan(0);
    expect(f.byCompression.gzip.midData).toBeGreaterThan(0);
    expect(f.byCompression.identity.midData).toBeGreaterThan(0);
    expect(f.droppedAt.afterHeaders).toBeGreaterThan(0);
    expect(f.planned['before-headers'] + f.planned.stall + f.planned.slow).toBeGreaterThan(20);
    expect(f.writeCheckpoints.ok).toBeGreaterThan(0);
    // Both windows were sampled, and the storm showed in between.
    expect(result.resources.baseline.samples).toBeGreaterThanOrEqual(5);
    expect(result.resources.after.samples).toBeGreaterThanOrEqual(5);
    expect(result.resources.peak.fds).toBeGreaterThan(result.resources.baseline.fds);
    expect(result.resources.baseline.storageConnections).toBeGreaterThan(0);
    expect(result.goodClients.every((c) => c.complete)).toBe(true);
    expect(result.freshClient.complete).toBe(true);
    expect(result.freshClient.ops).toBeGreaterThan(1500);
    expect(result.service.exitCode).toBe(0);
    expect(lines.some((l) => /^Baseline: RSS [\d.]+ MB, \d+ fds/.test(l))).toBe(true);

    const dir = mkdtempSync(path.join(tmpdir(), 'soak-flaky-report-'));
    try {
      const files = await writeFlakyReport(result, dir);
      expect(JSON.parse(readFileSync(files.json, 'utf8')).verdict.passed).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
