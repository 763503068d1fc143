/**
 * Compaction of a config's buckets (architecture.md section 6): per bucket, ops superseded
 * by a later op of the same row become MOVE (data dropped, checksum kept), then a leading run
 * of REMOVE / MOVE / CLEAR collapses into one CLEAR carrying the run's checksum sum.
 */
import type { CompactResult } from '@bucketsync/service-core';
import type { PostgresSyncConfigStorage } from './postgres-sync-config-storage.js';

/** Compacts every bucket (or the given ones) up to `maxOpId`, one transaction per bucket. */
export async function compactBuckets(
  storage: PostgresSyncConfigStorage,
  options: { maxOpId: bigint; buckets?: readonly string[] | undefined; signal?: AbortSignal | undefined },
): Promise<CompactResult> {
  const s = storage.ctx.schema;
  const configId = storage.configId;
  const max = options.maxOpId.toString();
  let buckets = options.buckets;
  if (!buckets) {
    // Loose index scan: one index probe per distinct bucket instead of reading every op.
    const { rows } = await storage.query<{ bucket: string }>(
      `WITH RECURSIVE b(bucket) AS (
         (SELECT bucket FROM ${s}.ops WHERE config_id = $1 ORDER BY bucket LIMIT 1)
         UNION ALL
         SELECT (SELECT o.bucket FROM ${s}.ops o WHERE o.config_id = $1 AND o.bucket > b.bucket ORDER BY o.bucket LIMIT 1)
           FROM b WHERE b.bucket IS NOT NULL)
       SELECT bucket FROM b WHERE bucket IS NOT NULL`,
      [configId],
    );
    buckets = rows.map((r) => r.bucket);
  }
  let bucketsCompacted = 0;
  let opsMoved = 0;
  let opsCleared = 0;
  for (const bucket of buckets) {
    options.signal?.throwIfAborted();
    const client = await storage.connect();
    try {
      await client.query('BEGIN');
      const moved = await client.query(
        `UPDATE ${s}.ops o SET op = 3, data = NULL, row_table = NULL, row_id = NULL, subkey = NULL
           FROM (SELECT op_id FROM (
                   SELECT op_id, row_number() OVER (PARTITION BY row_table, row_id, subkey ORDER BY op_id DESC) AS rn
                     FROM ${s}.ops WHERE config_id = $1 AND bucket = $2 AND op_id <= $3 AND op IN (1, 2)) x
                  WHERE rn > 1) superseded
          WHERE o.config_id = $1 AND o.bucket = $2 AND o.op_id = superseded.op_id`,
        [configId, bucket, max],
      );
      // The leading run ends before the first PUT (or at maxOpId).
      const run = await client.query<{ n: string; total: string | null; last: string | null }>(
        `SELECT count(*) AS n, sum(checksum) AS total, max(op_id) AS last FROM ${s}.ops
          WHERE config_id = $1 AND bucket = $2 AND op_id <= $3
            AND op_id < coalesce((SELECT min(op_id) FROM ${s}.ops WHERE config_id = $1 AND bucket = $2 AND op = 1 AND op_id <= $3), $3::int8 + 1)`,
        [configId, bucket, max],
      );
      const n = Number(run.rows[0]?.n ?? 0);
      let cleared = 0;
      const clearOnly = n === 1 && (await isClear(client, s, configId, bucket, run.rows[0]!.last!));
      if (n > 0 && !clearOnly) {
        const last = run.rows[0]!.last!;
        const checksum = Number(BigInt.asIntN(32, BigInt(run.rows[0]!.total ?? '0')));
        await client.query(`DELETE FROM ${s}.ops WHERE config_id = $1 AND bucket = $2 AND op_id <= $3`, [
          configId,
          bucket,
          last,
        ]);
        await client.query(`INSERT INTO ${s}.ops (config_id, bucket, op_id, op, checksum) VALUES ($1, $2, $3, 4, $4)`, [
          configId,
          bucket,
          last,
          checksum,
        ]);
        cleared = n - 1;
        // The running sum is unchanged (the CLEAR carries the run's checksum); its count is not.
        await client.query(`UPDATE ${s}.bucket_checksums SET count = count - $3 WHERE config_id = $1 AND bucket = $2`, [
          configId,
          bucket,
          cleared,
        ]);
      }
      await client.query('COMMIT');
      if ((moved.rowCount ?? 0) > 0 || cleared > 0) bucketsCompacted++;
      opsMoved += moved.rowCount ?? 0;
      opsCleared += cleared;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }
  return { bucketsCompacted, opsMoved, opsCleared };
}

async function isClear(
  client: { query: (sql: string, params: unknown[]) => Promise<{ rows: { op: number }[] }> },
  s: string,
  configId: number,
  bucket: string,
  opId: string,
): Promise<boolean> {
  const { rows } = await client.query(`SELECT op FROM ${s}.ops WHERE config_id = $1 AND bucket = $2 AND op_id = $3`, [
    configId,
    bucket,
    opId,
  ]);
  return rows[0]?.op === 4;
}
