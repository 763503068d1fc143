/**
 * Version 4: managed write checkpoints carry when they were last written, so rows of clients
 * long gone are removed and each user keeps a bounded number of client ids (a client making up
 * a new id per request cannot grow the table without end).
 */
export function writeCheckpointAge(schema: string): string {
  return `ALTER TABLE ${schema}.write_checkpoints ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX write_checkpoints_by_user_age ON ${schema}.write_checkpoints (user_id, updated_at);
CREATE INDEX write_checkpoints_by_age ON ${schema}.write_checkpoints (updated_at);`;
}
