import { describe, expect, it } from 'vitest';
import {
  formatBucketId,
  formatDate,
  formatTimestamp,
  parseBucketId,
  parseJsonPreservingBigInts,
  rowToJson,
  toSyncValue,
} from '../src/index.js';

describe('source values -> sync values', () => {
  it.each([
    [null, {}, null],
    [undefined, {}, null],
    [true, {}, 1n],
    [false, {}, 0n],
    [42, {}, 42n],
    [4.5, {}, 4.5],
    [3, { kind: 'real' as const }, 3],
    [12345678901234567890n, {}, 12345678901234567890n],
    ['123.4500', { kind: 'numeric' as const }, '123.4500'],
    ['text', {}, 'text'],
    [{ a: 1, b: [true, null] }, {}, '{"a":1,"b":[true,null]}'],
    [[1, 'a', null], {}, '[1,"a",null]'],
    ['{"a": 1}', { kind: 'json' as const }, '{"a": 1}'],
    [new Date('2025-08-19T09:21:00Z'), {}, '2025-08-19 09:21:00Z'],
    [new Date('2025-08-19T09:21:00.250Z'), { edition: 2 }, '2025-08-19T09:21:00.250Z'],
    [new Date('2025-08-19T09:21:00Z'), { kind: 'date' as const }, '2025-08-19'],
    ['2025-08-19 09:21:00.123456+00', { kind: 'timestamp' as const }, '2025-08-19 09:21:00.123456Z'],
  ])('%o %o -> %o', (input, options, expected) => {
    expect(toSyncValue(input, options)).toEqual(expected);
  });

  it('Buffers become plain Uint8Arrays', () => {
    const value = toSyncValue(Buffer.from([1, 2, 3]));
    expect(value).toBeInstanceOf(Uint8Array);
    expect(value?.constructor).toBe(Uint8Array);
    expect([...(value as Uint8Array)]).toEqual([1, 2, 3]);
  });
});

describe('timestamps', () => {
  it.each([
    ['2025-08-19 09:21:00', 1, '2025-08-19 09:21:00Z'],
    ['2025-08-19 09:21:00', 2, '2025-08-19T09:21:00Z'],
    ['2025-08-19T09:21:00.123456789Z', 2, '2025-08-19T09:21:00.123456789Z'],
    ['2025-08-19 11:21:00.5+02', 1, '2025-08-19 09:21:00.5Z'],
    ['2025-08-19 00:21:00-05:30', 2, '2025-08-19T05:51:00Z'],
    ['infinity', 1, 'infinity'],
  ])('%s (edition %d) -> %s', (input, edition, expected) => {
    expect(formatTimestamp(input, edition)).toBe(expected);
  });

  it('formats dates', () => {
    expect(formatDate(new Date('2025-08-19T23:00:00Z'))).toBe('2025-08-19');
  });
});

describe('JSON with exact integers', () => {
  it('keeps integers beyond 2^53 exact', () => {
    expect(parseJsonPreservingBigInts('{"a":9007199254740993,"b":1,"c":1.5,"d":[-12345678901234567890]}')).toEqual({
      a: 9007199254740993n,
      b: 1,
      c: 1.5,
      d: [-12345678901234567890n],
    });
  });

  it('rejects malformed JSON', () => {
    expect(() => parseJsonPreservingBigInts('{"a":}')).toThrow(/Malformed JSON at offset 5/);
  });

  it('does not pollute prototypes', () => {
    const parsed = parseJsonPreservingBigInts('{"__proto__":{"x":1}}') as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it('rowToJson: compact, exact bigint, REAL keeps its type, BLOBs dropped', () => {
    expect(
      rowToJson({ id: 'a"b', n: 12345678901234567890n, r: 2, f: 1.5, z: null, b: new Uint8Array([1]), 'k"': 'x' }),
    ).toBe('{"id":"a\\"b","n":12345678901234567890,"r":2.0,"f":1.5,"z":null,"k\\"":"x"}');
  });
});

describe('bucket ids', () => {
  it.each([
    [{ definition: 'by_user', parameters: ['u1'] }, 'by_user["u1"]'],
    [{ definition: 'global', parameters: [] }, 'global[]'],
    [{ definition: 'b', parameters: [314n, 3.14] }, 'b[314,3.14]'],
    [{ definition: 'b', parameters: [3.0] }, 'b[3]'],
    [{ definition: 'lists', variant: 0, parameters: ['x'] }, 'lists|0["x"]'],
    [{ configId: '12', definition: 'lists', variant: 2, parameters: [1n, 'a"b'] }, '12#lists|2[1,"a\\"b"]'],
  ])('%o -> %s', (parts, id) => {
    expect(formatBucketId(parts)).toBe(id);
    expect(formatBucketId(parseBucketId(id))).toBe(id);
  });

  it('parses the parts', () => {
    expect(parseBucketId('7#s|1["a",9007199254740993]')).toEqual({
      configId: '7',
      definition: 's',
      variant: 1,
      parameters: ['a', 9007199254740993n],
    });
  });

  it.each(['nope', '[1]', 'a[1', 'a|x[1]', 'a{}'])('rejects %s', (id) => {
    expect(() => parseBucketId(id)).toThrow(/is not a bucket id/);
  });
});
