import { describe, expect, it } from 'vitest';
import { lsnToPosition, lsnToText, parseLsn, positionFromLsnText } from '../src/postgres-position.js';

describe('Postgres positions', () => {
  it('zero-pad LSNs so string order is WAL order', () => {
    const a = positionFromLsnText('9/FFFFFFFF');
    const b = positionFromLsnText('A/0');
    const c = positionFromLsnText('16/B374D848');
    expect([c, b, a].sort()).toEqual([a, b, c]);
    expect(c).toBe('00000016/B374D848');
  });

  it('round-trip between text, number and position', () => {
    const lsn = parseLsn('16/B374D848');
    expect(lsn).toBe(0x16b374d848n);
    expect(lsnToText(lsn)).toBe('16/B374D848');
    expect(parseLsn(lsnToPosition(lsn))).toBe(lsn);
  });

  it('reject text that is not an LSN, saying what was expected', () => {
    expect(() => parseLsn('16-B374')).toThrow('not a Postgres LSN: "16-B374" (expected the form 16/B374D848)');
  });
});
