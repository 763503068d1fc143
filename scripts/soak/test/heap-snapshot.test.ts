import { describe, expect, it } from 'vitest';
import { heapGrowth, summarizeHeapSnapshot } from '../src/heap-snapshot.js';

/** A snapshot in V8's format with nodes given as [type, name, self size]. */
function snapshot(nodes: [string, string, number][]) {
  const types = ['hidden', 'array', 'string', 'object', 'code', 'closure', 'native'];
  const strings: string[] = [];
  const flat: number[] = [];
  for (const [type, name, size] of nodes) {
    if (!strings.includes(name)) strings.push(name);
    // type, name, id, self_size, edge_count, trace_node_id, detachedness
    flat.push(types.indexOf(type), strings.indexOf(name), flat.length, size, 0, 0, 0);
  }
  return {
    snapshot: {
      meta: {
        node_fields: ['type', 'name', 'id', 'self_size', 'edge_count', 'trace_node_id', 'detachedness'],
        node_types: [types, 'string', 'number', 'number', 'number', 'number', 'number'],
      },
    },
    nodes: flat,
    strings,
  };
}

describe('heap snapshots', () => {
  it('group objects by constructor and other nodes by type, and list what grew, most bytes first', () => {
    const before = summarizeHeapSnapshot(
      snapshot([
        ['object', 'Socket', 1000],
        ['closure', 'onData', 64],
        ['string', 'abc', 32],
      ]),
    );
    expect(before.nodes).toBe(3);
    expect(before.groups.map((g) => g.name)).toEqual(['Socket', '(closure)', '(string)']);
    const after = summarizeHeapSnapshot(
      snapshot([
        ['object', 'Socket', 1000],
        ['object', 'Socket', 1000],
        ['object', 'Gzip', 500],
        ['closure', 'onData', 64],
        ['closure', 'onEnd', 64],
        ['string', 'abc', 32],
      ]),
    );
    expect(after.totalMb).toBe(0);
    expect(heapGrowth(before, after)).toEqual([
      { name: 'Socket', countBefore: 1, countAfter: 2, bytesBefore: 1000, bytesAfter: 2000 },
      { name: 'Gzip', countBefore: 0, countAfter: 1, bytesBefore: 0, bytesAfter: 500 },
      { name: '(closure)', countBefore: 1, countAfter: 2, bytesBefore: 64, bytesAfter: 128 },
    ]);
  });
});
