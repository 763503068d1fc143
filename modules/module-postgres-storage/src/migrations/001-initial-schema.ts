/**
 * Storage version 1: sync configs, table identities, op log, current rows with tombstones,
 * per-bucket running checksums, parameter index, write checkpoints. `${schema}` is the quoted storage schema.
 */
export function initialSchema(schema: string): string {
  return `
CREATE TABLE ${schema}.sync_configs (
  id serial PRIMARY KEY,
  content text NOT NULL,
  state text NOT NULL CHECK (state IN ('processing', 'active', 'stopped', 'terminated')),
  created_at timestamptz NOT NULL DEFAULT now(),
  last_op_id int8 NOT NULL DEFAULT 0,
  checkpoint_op_id int8 NOT NULL DEFAULT 0,
  checkpoint_position text,
  last_commit_position text,
  resume_position text,
  snapshot_done boolean NOT NULL DEFAULT false,
  no_checkpoint_before text,
  compacted_through int8 NOT NULL DEFAULT 0,
  last_error text,
  lock_holder text,
  lock_expires_at timestamptz
);

CREATE TABLE ${schema}.source_tables (
  id serial PRIMARY KEY,
  config_id int4 NOT NULL REFERENCES ${schema}.sync_configs (id) ON DELETE CASCADE,
  connection_tag text NOT NULL,
  schema_name text NOT NULL,
  table_name text NOT NULL,
  object_id text,
  replica_id_columns text[] NOT NULL,
  sync_data boolean NOT NULL,
  sync_parameters boolean NOT NULL,
  snapshot_done boolean NOT NULL DEFAULT false,
  snapshot_boundary text,
  snapshot_progress jsonb,
  dropped boolean NOT NULL DEFAULT false,
  -- Bumped by every flush that writes current_data rows of the table (postgres-key-tracker.ts).
  rows_version int8 NOT NULL DEFAULT 0
);
CREATE INDEX source_tables_by_name ON ${schema}.source_tables (config_id, schema_name, table_name);

-- The op log. Reads go by (config, bucket, op id); checksum is included so checksum sums
-- are index-only scans. op: 1 PUT, 2 REMOVE, 3 MOVE, 4 CLEAR.
CREATE TABLE ${schema}.ops (
  config_id int4 NOT NULL,
  bucket text COLLATE "C" NOT NULL,
  op_id int8 NOT NULL,
  op int2 NOT NULL,
  row_table text,
  row_id text,
  subkey text,
  checksum int4 NOT NULL,
  data text,
  PRIMARY KEY (config_id, bucket, op_id) INCLUDE (checksum)
);

-- Running checksum of each bucket: the unsigned 32-bit sum (checksum, in 0 .. 2^32 - 1) and
-- count of its ops up to op_id, the last op id of the last flush that wrote the bucket, kept by
-- every flush in its transaction. Compaction keeps the sum (MOVE and CLEAR carry checksums)
-- and lowers the count by the ops a CLEAR replaced. Checksums at a checkpoint start from it.
CREATE TABLE ${schema}.bucket_checksums (
  config_id int4 NOT NULL,
  bucket text COLLATE "C" NOT NULL,
  op_id int8 NOT NULL,
  checksum int8 NOT NULL,
  count int8 NOT NULL,
  PRIMARY KEY (config_id, bucket)
);

-- What each source row last produced. deleted_op set = tombstone (architecture.md invariant 5).
CREATE TABLE ${schema}.current_data (
  config_id int4 NOT NULL,
  table_id int4 NOT NULL,
  row_key text COLLATE "C" NOT NULL,
  buckets text NOT NULL,
  lookups text NOT NULL,
  position text,
  deleted_op int8,
  PRIMARY KEY (config_id, table_id, row_key)
);
CREATE INDEX current_data_tombstones ON ${schema}.current_data (config_id, deleted_op) WHERE deleted_op IS NOT NULL;

-- Parameter index, versioned by op id; empty outputs ('[]') = the row stopped granting.
CREATE TABLE ${schema}.parameter_index (
  config_id int4 NOT NULL,
  lookup text COLLATE "C" NOT NULL,
  table_id int4 NOT NULL,
  row_key text COLLATE "C" NOT NULL,
  op_id int8 NOT NULL,
  outputs text NOT NULL,
  PRIMARY KEY (config_id, lookup, table_id, row_key, op_id)
);

CREATE TABLE ${schema}.custom_write_checkpoints (
  config_id int4 NOT NULL,
  user_id text NOT NULL,
  op_id int8 NOT NULL,
  checkpoint int8 NOT NULL,
  PRIMARY KEY (config_id, user_id, op_id)
);

CREATE TABLE ${schema}.write_checkpoints (
  user_id text NOT NULL,
  client_id text NOT NULL,
  id int8 NOT NULL,
  head_position text NOT NULL,
  PRIMARY KEY (user_id, client_id)
);
`;
}
