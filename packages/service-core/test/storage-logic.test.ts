import { ServiceError } from '@bucketsync/service-errors';
import { describe, expect, it } from 'vitest';
import {
  addChecksums,
  columnsChangeNeedsCopy,
  diffParameterLookups,
  diffRowBuckets,
  formatOpId,
  MAX_OP_ID,
  normaliseChecksum,
  opSubkey,
  parseOpId,
  putChecksum,
  removeChecksum,
  replicaKey,
  sameColumns,
  sumChecksums,
} from '../src/index.js';

const key = { table: 'todos', id: 't1', subkey: 'abc' };

describe('checksums', () => {
  it('wraps sums modulo 2^32 and reports them as signed 32-bit integers', () => {
    expect(addChecksums(0x7fffffff, 1)).toBe(-0x80000000);
    expect(addChecksums(-1, 1)).toBe(0);
    expect(sumChecksums([0x7fffffff, 0x7fffffff, 2])).toBe(0);
  });

  it('folds a large SQL sum into the same value as wrapping addition', () => {
    const values = [2_000_000_000, 2_000_000_000, -123, 1_999_999_999];
    const sqlSum = values.reduce((a, b) => a + BigInt(b), 0n);
    expect(normaliseChecksum(sqlSum)).toBe(sumChecksums(values));
    expect(normaliseChecksum(sqlSum.toString())).toBe(sumChecksums(values));
  });

  it('gives a PUT a checksum that depends on the data and a REMOVE one that does not', () => {
    expect(putChecksum(key, '{"a":1}')).not.toBe(putChecksum(key, '{"a":2}'));
    expect(removeChecksum(key)).toBe(removeChecksum({ ...key }));
    expect(removeChecksum(key)).not.toBe(removeChecksum({ ...key, id: 't2' }));
    expect(Number.isInteger(putChecksum(key, 'x'))).toBe(true);
    expect(putChecksum(key, 'x')).toBeLessThanOrEqual(0x7fffffff);
  });
});

describe('op ids', () => {
  it('round-trips unsigned 64-bit ids through their wire form', () => {
    expect(parseOpId('0')).toBe(0n);
    expect(parseOpId(formatOpId(MAX_OP_ID))).toBe(MAX_OP_ID);
  });

  it('rejects malformed or out-of-range ids with a request error', () => {
    for (const bad of ['', '-1', '01', '1.5', 'abc', '18446744073709551616']) {
      expect(() => parseOpId(bad, 'after')).toThrow(ServiceError);
    }
  });
});

describe('replica keys', () => {
  it('keeps INTEGER, REAL and TEXT keys apart and encodes big integers exactly', () => {
    const keys = new Set([
      replicaKey({ id: 1n }, ['id']),
      replicaKey({ id: 1 }, ['id']),
      replicaKey({ id: '1' }, ['id']),
      replicaKey({ id: null }, ['id']),
    ]);
    expect(keys.size).toBe(4);
    expect(replicaKey({ id: 9007199254740993n }, ['id'])).toBe('[9007199254740993]');
    expect(replicaKey({ a: 'x', b: new Uint8Array([1, 255]) }, ['a', 'b'])).toBe('["x",x01ff]');
  });

  it('refuses a table without key columns', () => {
    expect(() => replicaKey({ id: 1n }, [])).toThrow(ServiceError);
  });

  it('derives a subkey from the table name, not its storage identity', () => {
    expect(opSubkey({ schema: 'public', name: 'todos' }, '[1]')).toBe(
      opSubkey({ schema: 'public', name: 'todos' }, '[1]'),
    );
    expect(opSubkey({ schema: 'public', name: 'todos' }, '[1]')).not.toBe(
      opSubkey({ schema: 'public', name: 'lists' }, '[1]'),
    );
  });
});

describe('row diffs', () => {
  const row = (bucket: string, id = 't1') => ({ bucket, table: 'todos', id, data: { id } });

  it('emits a PUT in the new bucket and a REMOVE in the old one when a row moves', () => {
    const diff = diffRowBuckets([{ bucket: 'a[]', table: 'todos', id: 't1' }], [row('b[]')]);
    expect(diff.puts.map((p) => p.bucket)).toEqual(['b[]']);
    expect(diff.removes).toEqual([{ bucket: 'a[]', table: 'todos', id: 't1' }]);
  });

  it('removes every output row on delete and puts every output row on insert', () => {
    expect(diffRowBuckets([{ bucket: 'a[]', table: 'todos', id: 't1' }], []).removes).toHaveLength(1);
    expect(diffRowBuckets([], [row('a[]'), row('b[]')]).puts).toHaveLength(2);
  });

  it('treats a changed output id in the same bucket as a move', () => {
    const diff = diffRowBuckets([{ bucket: 'a[]', table: 'todos', id: 'old' }], [row('a[]', 'new')]);
    expect(diff.removes).toEqual([{ bucket: 'a[]', table: 'todos', id: 'old' }]);
    expect(diff.puts).toHaveLength(1);
  });

  it('writes an empty parameter entry for a lookup the row no longer produces', () => {
    const { changes, current } = diffParameterLookups(['L1', 'L2'], [{ lookup: 'L2', outputs: [{ team: 't' }] }]);
    expect(current).toEqual(['L2']);
    expect(changes).toEqual([
      { lookup: 'L2', outputs: [{ team: 't' }] },
      { lookup: 'L1', outputs: [] },
    ]);
  });
});

describe('column changes', () => {
  const col = (name: string, type = 'text', hasDefault = false) => ({ name, type, hasDefault });
  const base = [col('id', 'int8'), col('title'), col('done', 'bool', true)];

  it('needs a copy when a column is dropped or retyped: stored rows changed without change events', () => {
    expect(columnsChangeNeedsCopy(base, [col('id', 'int8'), col('done', 'bool', true)])).toBe(true);
    expect(columnsChangeNeedsCopy(base, [col('id', 'int8'), col('title', 'varchar'), col('done', 'bool', true)])).toBe(
      true,
    );
  });

  it('needs a copy for a new column with a default, not for one without', () => {
    expect(columnsChangeNeedsCopy(base, [...base, col('score', 'int4', true)])).toBe(true);
    expect(columnsChangeNeedsCopy(base, [...base, col('note')])).toBe(false);
  });

  it('needs no copy when a column gets a default later, or when either side does not know its columns', () => {
    expect(
      columnsChangeNeedsCopy(base, [col('id', 'int8'), col('title', 'text', true), col('done', 'bool', true)]),
    ).toBe(false);
    expect(columnsChangeNeedsCopy(undefined, base)).toBe(false);
    expect(columnsChangeNeedsCopy(base, undefined)).toBe(false);
  });

  it('compares column lists by name, type, default and order', () => {
    expect(sameColumns(base, [...base])).toBe(true);
    expect(sameColumns(base, [...base].reverse())).toBe(false);
    expect(sameColumns(base, [col('id', 'int8'), col('title', 'text', true), col('done', 'bool', true)])).toBe(false);
    expect(sameColumns(undefined, undefined)).toBe(true);
    expect(sameColumns(undefined, base)).toBe(false);
  });
});
