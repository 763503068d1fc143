import { describe, expect, it } from 'vitest';
import {
  chooseFlakyPlan,
  DEFAULT_DROP_WEIGHTS,
  DROP_KINDS,
  logUniform,
  pickDropKind,
  seededRandom,
  type FlakyPlan,
} from '../src/flaky-plan.js';

const options = { users: 50, maxBytes: 4 * 1024 * 1024, maxStallMs: 5000, writeCheckpointShare: 0.1 };

function plans(n: number, seed = 7, overrides: Partial<typeof options> & { gzipShare?: number } = {}): FlakyPlan[] {
  const random = seededRandom(seed);
  return Array.from({ length: n }, () => chooseFlakyPlan(random, { ...options, ...overrides }));
}

describe('flaky plans', () => {
  it('draws every drop point, both encodings, gzip and not, and some write checkpoints, in about the weighted shares', () => {
    const all = plans(10_000);
    for (const kind of DROP_KINDS) {
      const share = all.filter((p) => p.drop.kind === kind).length / all.length;
      expect(share).toBeGreaterThan(DEFAULT_DROP_WEIGHTS[kind] - 0.03);
      expect(share).toBeLessThan(DEFAULT_DROP_WEIGHTS[kind] + 0.03);
    }
    const bson = all.filter((p) => p.encoding === 'bson').length / all.length;
    const gzip = all.filter((p) => p.gzip).length / all.length;
    const checkpoints = all.filter((p) => p.writeCheckpoint).length / all.length;
    expect(bson).toBeGreaterThan(0.45);
    expect(bson).toBeLessThan(0.55);
    expect(gzip).toBeGreaterThan(0.45);
    expect(gzip).toBeLessThan(0.55);
    expect(checkpoints).toBeGreaterThan(0.07);
    expect(checkpoints).toBeLessThan(0.13);
    expect(new Set(all.map((p) => p.user)).size).toBe(50);
    expect(all.every((p) => p.user >= 0 && p.user < 50)).toBe(true);
  });

  it('keeps byte targets within 256 bytes and the maximum, spread over the orders of magnitude, and stalls within the maximum', () => {
    const all = plans(10_000);
    const bytes = all.flatMap((p) => (p.drop.kind === 'after-bytes' || p.drop.kind === 'stall' ? [p.drop.bytes] : []));
    const positive = bytes.filter((b) => b > 0);
    expect(Math.min(...positive)).toBeGreaterThanOrEqual(256);
    expect(Math.max(...bytes)).toBeLessThanOrEqual(options.maxBytes);
    // Log-uniform: each decade of the range gets a similar share; the top decade holds real mid-data drops.
    expect(positive.filter((b) => b < 4096).length).toBeGreaterThan(positive.length * 0.2);
    expect(positive.filter((b) => b > 400_000).length).toBeGreaterThan(positive.length * 0.15);
    // A third of the stalls read nothing at all.
    const stalls = all.flatMap((p) => (p.drop.kind === 'stall' ? [p.drop] : []));
    const reading = stalls.filter((s) => s.bytes === 0).length / stalls.length;
    expect(reading).toBeGreaterThan(0.25);
    expect(reading).toBeLessThan(0.42);
    for (const p of all) {
      if (p.drop.kind === 'stall') expect(p.drop.stallMs).toBeLessThanOrEqual(5000);
      if (p.drop.kind === 'slow') {
        expect(p.drop.forMs).toBeGreaterThanOrEqual(200);
        expect(p.drop.bytesPerSecond).toBeGreaterThanOrEqual(1024);
      }
      if (p.drop.kind === 'before-headers') expect(p.drop.afterMs).toBeLessThanOrEqual(20);
    }
  });

  it('is the same for the same seed and follows the gzip share', () => {
    expect(plans(100, 3)).toEqual(plans(100, 3));
    expect(plans(100, 3)).not.toEqual(plans(100, 4));
    expect(plans(500, 3, { gzipShare: 0 }).some((p) => p.gzip)).toBe(false);
    expect(plans(500, 3, { gzipShare: 1 }).every((p) => p.gzip)).toBe(true);
  });
});

describe('drop kind by weight', () => {
  it('maps [0, 1) onto the kinds in order of their weights and skips kinds weighted 0', () => {
    const weights = { 'before-headers': 1, 'after-headers': 0, 'after-bytes': 1, stall: 0, slow: 2 };
    expect(pickDropKind(0, weights)).toBe('before-headers');
    expect(pickDropKind(0.24, weights)).toBe('before-headers');
    expect(pickDropKind(0.26, weights)).toBe('after-bytes');
    expect(pickDropKind(0.51, weights)).toBe('slow');
    expect(pickDropKind(0.999999, weights)).toBe('slow');
    expect(() => pickDropKind(0.5, { ...weights, 'before-headers': 0, 'after-bytes': 0, slow: 0 })).toThrow(/weights/);
  });
});

describe('log-uniform numbers', () => {
  it('stays within the bounds and puts the median at the geometric mean', () => {
    const random = seededRandom(1);
    const values = Array.from({ length: 5001 }, () => logUniform(random, 100, 1_000_000)).sort((a, b) => a - b);
    expect(values[0]).toBeGreaterThanOrEqual(100);
    expect(values[values.length - 1]).toBeLessThanOrEqual(1_000_000);
    expect(values[2500]).toBeGreaterThan(7000);
    expect(values[2500]).toBeLessThan(14_000);
    expect(logUniform(() => 0.5, 10, 10)).toBe(10);
  });
});
