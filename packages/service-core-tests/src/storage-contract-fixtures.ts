/**
 * Fixtures of the storage contract suite: sync configs, positions, and small drivers that
 * deploy a config, finish the initial snapshot, and read a bucket back in full.
 */
import type {
  BucketStorage,
  OpId,
  OplogEntry,
  SqliteRow,
  StoredTable,
  SyncConfigStorage,
  WriteBatch,
} from '@bucketsync/service-core';

/** One global bucket with every todo. */
export const GLOBAL_TODOS = `
bucket_definitions:
  global:
    data:
      - SELECT * FROM todos
`;

/** Todos partitioned by list; a user's lists come from the parameter index. */
export const TODOS_BY_LIST = `
bucket_definitions:
  by_list:
    parameters: SELECT id AS list_id FROM lists WHERE owner_id = request.user_id()
    data:
      - SELECT * FROM todos WHERE list_id = bucket.list_id
`;

/** Each item lands in one bucket per tag (a JSON array column). */
export const ITEMS_BY_TAG = `
bucket_definitions:
  by_tag:
    parameters: SELECT request.parameter('tag') AS tag
    data:
      - SELECT * FROM items WHERE bucket.tag IN items.tags
`;

/** Positions that sort as strings, like every source's. */
export function pos(n: number): string {
  return `P${String(n).padStart(8, '0')}`;
}

export interface Deployed {
  readonly storage: BucketStorage;
  readonly config: SyncConfigStorage;
}

/** Resolves a table with `id` as its key. */
export async function table(config: SyncConfigStorage, name: string): Promise<StoredTable> {
  return (await config.resolveTable({ schema: 'public', name, replicaIdColumns: ['id'], objectId: name })).table;
}

/** Marks every given table and the initial snapshot done at `position`. */
export async function finishSnapshot(batch: WriteBatch, tables: StoredTable[], position: string): Promise<void> {
  await batch.markTableSnapshotDone(tables, position);
  await batch.markSnapshotDone(position);
}

/** Every op of a bucket after `after` up to `checkpoint`, read chunk by chunk. */
export async function readBucket(
  config: SyncConfigStorage,
  bucket: string,
  checkpoint: OpId,
  options: { after?: OpId; chunkOps?: number; chunkBytes?: number } = {},
): Promise<{ ops: OplogEntry[]; chunks: number; hasMoreFlags: boolean[] }> {
  const ops: OplogEntry[] = [];
  const hasMoreFlags: boolean[] = [];
  for await (const chunk of config.getBucketData({
    checkpoint,
    buckets: [{ bucket, after: options.after ?? 0n }],
    chunkOps: options.chunkOps,
    chunkBytes: options.chunkBytes,
  })) {
    ops.push(...chunk.ops);
    hasMoreFlags.push(chunk.hasMore);
  }
  return { ops, chunks: hasMoreFlags.length, hasMoreFlags };
}

/** Live rows of a bucket at a checkpoint: replays PUT / REMOVE / CLEAR like a client. */
export async function bucketRows(
  config: SyncConfigStorage,
  bucket: string,
  checkpoint: OpId,
): Promise<Map<string, string>> {
  const rows = new Map<string, string>();
  const { ops } = await readBucket(config, bucket, checkpoint);
  for (const op of ops) {
    const key = `${op.objectType}/${op.objectId}/${op.subkey}`;
    if (op.op === 'PUT') rows.set(key, op.data ?? '');
    else if (op.op === 'REMOVE') rows.delete(key);
    else if (op.op === 'CLEAR') rows.clear();
  }
  return new Map([...rows].map(([k, v]) => [k.split('/')[1]!, v]));
}

/** Wrapping 32-bit sum of ops' checksums, as a client computes it. */
export function sumOfOps(ops: readonly OplogEntry[]): number {
  let sum = 0;
  for (const op of ops) sum = (sum + op.checksum) | 0;
  return sum;
}

/** A todo row. */
export function todo(id: string, fields: SqliteRow = {}): SqliteRow {
  return { id, title: `todo ${id}`, list_id: 'l1', ...fields };
}
