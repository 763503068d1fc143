import { putChecksum, type StorageSyncConfig, type StoredTable } from '@bucketsync/service-core';
import { describe, expect, it } from 'vitest';
import { CopyBuffer, unescapeCopyText } from '../src/postgres-copy-writer.js';
import { HashSet32, keyHash } from '../src/postgres-key-tracker.js';
import { PreparedFlush } from '../src/postgres-prepared-flush.js';

const table: StoredTable = {
  id: 7,
  schema: 'public',
  name: 'todos',
  replicaIdColumns: ['id'],
  syncData: true,
  syncParameters: false,
  snapshotDone: true,
  snapshotBoundary: undefined,
  snapshotProgress: undefined,
};

/** One output per row, in bucket `global[]`, data = the row as JSON. */
const syncConfig: StorageSyncConfig = {
  tableIsRelevant: () => true,
  tableHasParameterQueries: () => false,
  evaluateRow: (_t, row) => [{ bucket: 'global[]', table: 'todos', id: String(row.id), data: row }],
  evaluateParameterRow: () => [],
};
const context = {
  configId: 3,
  syncConfig,
  engine: {
    parse: () => syncConfig,
    serializeParameterLookup: () => '',
    rowToJson: (row: Record<string, unknown>) => JSON.stringify(row),
  },
  maxRowBytes: 1 << 20,
  onRowError: () => undefined,
};

describe('Postgres storage encoding', () => {
  it('writes COPY text fields escaped and reads them back', () => {
    const buf = new CopyBuffer(8);
    const text = 'a\tb\nc\\d\re ünï 😀';
    buf.text(text).tab().int(-1234567).tab().int(0).newline();
    const line = buf.bytes().toString('utf8');
    expect(line).toBe('a\\tb\\nc\\\\d\\re ünï 😀\t-1234567\t0\n');
    expect(unescapeCopyText(buf.field(0))).toBe(text);
  });

  it('fills fixed-width op ids in place', () => {
    const buf = new CopyBuffer(8);
    buf.zeros(19).tab();
    buf.fillNumber(0, 19, 9_007_199_254_740_000);
    expect(buf.bytes().toString()).toBe('0009007199254740000\t');
    buf.fillDigits(0, 19, '9223372036854775807');
    expect(buf.bytes().toString()).toBe('9223372036854775807\t');
  });

  it('encodes puts with core checksums and decodes keys and bucket references back', () => {
    const flush = new PreparedFlush();
    const ids = ['plain', 'tab\there', 'quote"and\\slash', 'ünï 😀'];
    for (const id of ids) flush.prepare({ tag: 'insert', table, after: { id, n: 1 } }, context);
    flush.prepare({ tag: 'delete', table, before: { id: 'gone' } }, context);
    flush.prepare({ tag: 'insert', table, after: { id: 'plain', n: 2 } }, context);
    flush.markDuplicates();
    expect(flush.count).toBe(6);
    expect(flush.opCount).toBe(5);
    const lines = flush.ops.bytes().toString('utf8').split('\n').slice(0, -1);
    for (let i = 0; i < ids.length; i++) {
      const fields = lines[i]!.split('\t').map(unescapeCopyText);
      const [opId, config, bucket, op, objectType, objectId, subkey, data, checksum] = fields;
      expect([opId, config, bucket, op, objectType, objectId]).toEqual([
        '0'.repeat(19),
        '3',
        'global[]',
        '1',
        'todos',
        ids[i],
      ]);
      expect(Number(checksum)).toBe(putChecksum({ table: 'todos', id: ids[i]!, subkey: subkey! }, data!));
      expect(flush.key(i)).toBe(`[${JSON.stringify(ids[i])}]`);
      expect(flush.refs(i)).toEqual([{ bucket: 'global[]', table: 'todos', id: ids[i] }]);
    }
    expect(flush.key(4)).toBe('["gone"]');
    expect(flush.isDelete(4)).toBe(true);
    // The same row twice in one flush is looked up, in order, instead of written blindly.
    expect([0, 1, 2, 3, 4, 5].filter((i) => flush.isDuplicate(i))).toEqual([0, 5]);
  });

  it('keeps a set of 32-bit key hashes', () => {
    const set = new HashSet32();
    for (let i = 0; i < 50_000; i++) set.add(keyHash(`["k${i}"]`));
    expect(set.size).toBeGreaterThan(49_990);
    expect(set.has(keyHash('["k123"]'))).toBe(true);
    let falsePositives = 0;
    for (let i = 0; i < 10_000; i++) if (set.has(keyHash(`["other${i}"]`))) falsePositives++;
    expect(falsePositives).toBeLessThan(5);
  });
});
