import { describe, expect, it } from 'vitest';
import { DEFAULT_FLAKY_OPTIONS, flakySoakUsage, parseFlakySoakArguments } from '../src/flaky-options.js';
import { parseSoakArguments, soakUsage } from '../src/soak-options.js';

describe('flaky soak arguments', () => {
  it('defaults to 10 minutes at 200 clients a second, and skips --flaky itself', () => {
    const { options, help, out } = parseFlakySoakArguments(['--flaky']);
    expect(options).toEqual(DEFAULT_FLAKY_OPTIONS);
    expect(options).toMatchObject({ minutes: 10, rate: 200, settleSeconds: 45, rssToleranceMb: 32 });
    expect(help).toBe(false);
    expect(out).toBeUndefined();
  });

  it('reads its own flags, and rejects the steady soak flags it does not have', () => {
    const { options, out } = parseFlakySoakArguments(['--flaky', '--minutes', '0.5', '--rate=50', '--out', 'x']);
    expect(options).toMatchObject({ minutes: 0.5, rate: 50 });
    expect(out).toBe('x');
    expect(() => parseFlakySoakArguments(['--flaky', '--clients', '5'])).toThrow(/unknown flag --clients/);
    expect(() => parseFlakySoakArguments(['--flaky', '--rate', '0'])).toThrow(/rate: expected more than 0/);
    expect(() => parseFlakySoakArguments(['--flaky', '--users', '3', '--good-clients', '4'])).toThrow(/goodClients/);
    expect(() => parseFlakySoakArguments(['--flaky', '--gzip-share', '2'])).toThrow(/gzipShare/);
    expect(() => parseFlakySoakArguments(['--flaky', '--heap-snapshots', '2'])).toThrow(/heapSnapshots/);
    expect(() => parseFlakySoakArguments(['--flaky', '--window', '2'])).toThrow(/three samples/);
  });

  it('documents every flag with its default, and the steady usage points to it', () => {
    const usage = flakySoakUsage();
    for (const flag of ['--minutes', '--rate', '--settle', '--rss-tolerance-mb', '--max-bytes', '--heap-snapshots']) {
      expect(usage).toContain(flag);
    }
    expect(usage).toMatch(/--rate <value>\s+.*\[200\]/);
    expect(soakUsage()).toContain('--flaky');
    // The steady soak does not take --flaky (soak.ts picks the parser).
    expect(() => parseSoakArguments(['--flaky'])).toThrow(/--flaky: expected a value/);
  });
});
