/**
 * Version 3: indexes by op id, so the sync engine can ask once per checkpoint "what changed
 * since op X" (`getCheckpointChanges`) instead of every connection re-reading its buckets:
 * buckets by the op id of their last write, parameter index entries and custom write
 * checkpoints by op id.
 */
export function changeIndexes(schema: string): string {
  return `CREATE INDEX bucket_checksums_by_op ON ${schema}.bucket_checksums (config_id, op_id);
CREATE INDEX parameter_index_by_op ON ${schema}.parameter_index (config_id, op_id);
CREATE INDEX custom_write_checkpoints_by_op ON ${schema}.custom_write_checkpoints (config_id, op_id);`;
}
