import { describe, expect, it } from 'vitest';
import { pos, sumOfOps } from '../src/index.js';

describe('storage contract fixtures', () => {
  it('makes positions that sort as strings in numeric order', () => {
    const positions = [pos(10), pos(2), pos(100), pos(1)];
    expect([...positions].sort()).toEqual([pos(1), pos(2), pos(10), pos(100)]);
  });

  it('sums op checksums with 32-bit wrapping, as a client does', () => {
    const op = (checksum: number) => ({ opId: 1n, op: 'PUT' as const, checksum });
    expect(sumOfOps([op(0x7fffffff), op(1)])).toBe(-0x80000000);
    expect(sumOfOps([op(-5), op(5)])).toBe(0);
  });
});
