import { describe, expect, it } from 'vitest';
import { burstSchedule, DEFAULT_SOAK_OPTIONS, parseSoakArguments, soakUsage } from '../src/soak-options.js';

describe('soak arguments', () => {
  it('defaults to 10 minutes, 500 clients (one user each) and 200 rows/s', () => {
    const { options, help, out } = parseSoakArguments([]);
    expect(options).toEqual(DEFAULT_SOAK_OPTIONS);
    expect(options).toMatchObject({ minutes: 10, clients: 500, users: 500, rate: 200 });
    expect(help).toBe(false);
    expect(out).toBeUndefined();
  });

  it('reads --flag value and --flag=value; users follow clients unless set', () => {
    const { options, out } = parseSoakArguments(['--minutes', '0.5', '--clients=20', '--rate', '50', '--out', 'x']);
    expect(options).toMatchObject({ minutes: 0.5, clients: 20, users: 20, rate: 50 });
    expect(out).toBe('x');
    expect(parseSoakArguments(['--clients', '20', '--users', '5']).options.users).toBe(5);
  });

  it('rejects unknown flags, bad numbers and impossible combinations, naming them', () => {
    expect(() => parseSoakArguments(['--minute', '3'])).toThrow(/unknown flag --minute/);
    expect(() => parseSoakArguments(['--rate', 'fast'])).toThrow(/--rate: expected a number/);
    expect(() => parseSoakArguments(['--minutes'])).toThrow(/--minutes: expected a value/);
    expect(() => parseSoakArguments(['--clients', '10', '--probes', '11'])).toThrow(/probes/);
    expect(() => parseSoakArguments(['--clients', '2.5'])).toThrow(/clients: expected a whole number/);
  });

  it('documents every flag with its default in --help', () => {
    expect(parseSoakArguments(['--help']).help).toBe(true);
    const usage = soakUsage();
    for (const flag of ['--minutes', '--clients', '--rate', '--burst-rows', '--lag-threshold', '--out']) {
      expect(usage).toContain(flag);
    }
    expect(usage).toMatch(/--minutes <value>\s+.*\[10\]/);
  });
});

describe('burst schedule', () => {
  it('puts the first burst at half the interval and keeps each recovery window inside the run', () => {
    expect(burstSchedule(600, 120, 60)).toEqual([60, 180, 300, 420, 540]);
    expect(burstSchedule(180, 120, 60)).toEqual([60]);
    expect(burstSchedule(60, 120, 60)).toEqual([]);
    expect(burstSchedule(600, 0, 60)).toEqual([]);
  });
});
