/**
 * The short oracle run of `npm test`: two fixed seeds, each with a kill inside the initial
 * snapshot and planned faults in later rounds (together: a kill while streaming, a source and
 * a storage restart, cut client connections). Longer runs: `npm run test:oracle`.
 */
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runOracle, type FaultKind } from '../src/index.js';

const RUNS: { seed: number; plan: FaultKind[] }[] = [
  { seed: 1, plan: ['kill-service', 'restart-storage'] },
  { seed: 2, plan: ['restart-source', 'cut-connections'] },
];

describe('oracle: random workloads with faults, every client compared with the source', () => {
  for (const { seed, plan } of RUNS) {
    it(`seed ${seed}: a kill during the snapshot, then ${plan.join(', ')}`, async () => {
      const report = await runOracle({
        seed,
        rounds: plan.length,
        faultPlan: plan,
        roundMs: 4000,
        initialSize: { docs: 30_000, events: 10_000 },
        convergeTimeoutMs: 60_000,
        failureDir: path.join(tmpdir(), 'bucketsync-oracle-failures'),
        log: (line) => console.log(line),
      });
      expect(report.mismatches).toEqual([]);
      expect(report.faults['kill-service-during-snapshot'] ?? 0).toBeGreaterThanOrEqual(1);
      for (const kind of plan) {
        const injected = Object.entries(report.faults).filter(([k]) => k.startsWith(kind));
        expect(injected.length, `fault ${kind} was injected`).toBeGreaterThan(0);
      }
      if (plan.includes('kill-service'))
        expect(report.faults['kill-service-during-streaming']).toBeGreaterThanOrEqual(1);
      // Every user was compared (PowerSync client and test-client) at the end of every round.
      expect(report.comparisons).toBe(2 * 4 * (plan.length + 1));
      expect(report.checkpointsVerified).toBeGreaterThanOrEqual(4 * (plan.length + 1));
    }, 300_000);
  }
});
