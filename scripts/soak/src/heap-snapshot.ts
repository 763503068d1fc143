/**
 * What a V8 heap snapshot holds, grouped (objects by constructor name, everything else by its
 * node type), and what grew between two snapshots: the evidence behind "the service leaks X".
 * Reading is one JSON.parse; the grouping and the comparison are pure.
 */
import { readFile } from 'node:fs/promises';

export interface HeapGroup {
  /** Constructor name for objects (`Socket`, `Gzip`), `(type)` for other nodes (`(closure)`, `(string)`). */
  name: string;
  count: number;
  bytes: number;
}

export interface HeapSummary {
  /** Sum of the nodes' self sizes, MB (what the heap holds after the snapshot's full GC). */
  totalMb: number;
  nodes: number;
  groups: HeapGroup[];
}

/** The parts of the .heapsnapshot format read here. */
interface RawSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: unknown[] } };
  nodes: number[];
  strings: string[];
}

export function summarizeHeapSnapshot(raw: RawSnapshot): HeapSummary {
  const fields = raw.snapshot.meta.node_fields;
  const types = raw.snapshot.meta.node_types[0] as string[];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const groups = new Map<string, HeapGroup>();
  let bytes = 0;
  for (let i = 0; i < raw.nodes.length; i += width) {
    const type = types[raw.nodes[i + typeAt]!] ?? 'unknown';
    const size = raw.nodes[i + sizeAt]!;
    const name = type === 'object' || type === 'native' ? raw.strings[raw.nodes[i + nameAt]!]! : `(${type})`;
    let group = groups.get(name);
    if (!group) groups.set(name, (group = { name, count: 0, bytes: 0 }));
    group.count++;
    group.bytes += size;
    bytes += size;
  }
  return {
    totalMb: Math.round((bytes / 1048576) * 10) / 10,
    nodes: raw.nodes.length / width,
    groups: [...groups.values()].sort((a, b) => b.bytes - a.bytes),
  };
}

export async function readHeapSnapshotSummary(file: string): Promise<HeapSummary> {
  return summarizeHeapSnapshot(JSON.parse(await readFile(file, 'utf8')) as RawSnapshot);
}

export interface HeapGrowth {
  name: string;
  countBefore: number;
  countAfter: number;
  bytesBefore: number;
  bytesAfter: number;
}

/** The `top` groups that grew most in bytes from `before` to `after` (only those that grew). */
export function heapGrowth(before: HeapSummary, after: HeapSummary, top = 12): HeapGrowth[] {
  const earlier = new Map(before.groups.map((g) => [g.name, g]));
  return after.groups
    .map((g) => ({
      name: g.name,
      countBefore: earlier.get(g.name)?.count ?? 0,
      countAfter: g.count,
      bytesBefore: earlier.get(g.name)?.bytes ?? 0,
      bytesAfter: g.bytes,
    }))
    .filter((g) => g.bytesAfter > g.bytesBefore || g.countAfter > g.countBefore)
    .sort((a, b) => b.bytesAfter - b.bytesBefore - (a.bytesAfter - a.bytesBefore))
    .slice(0, top);
}
