import { describe, expect, it } from 'vitest';
import { comparePositions, maxPosition } from '../src/index.js';

describe('positions', () => {
  it('orders zero-padded positions as strings', () => {
    expect(comparePositions('00000000/0000A000', '00000001/00000000')).toBeLessThan(0);
    expect(comparePositions('00000001/00000000', '00000001/00000000')).toBe(0);
    expect(comparePositions('00000002/00000000', '00000001/FFFFFFFF')).toBeGreaterThan(0);
  });

  it('treats undefined as no position yet', () => {
    expect(maxPosition(undefined, 'a')).toBe('a');
    expect(maxPosition('b', undefined)).toBe('b');
    expect(maxPosition('b', 'a')).toBe('b');
  });
});
