/**
 * Version 2: source tables remember their columns, so a schema change that alters existing
 * rows without change events (a dropped or retyped column, a column added with a default)
 * gives the table a new identity and a fresh copy. Tables stored before have no column list
 * and take it from the next description of the table without a copy. `replaces_earlier`
 * marks an identity that replaced one clients already had: no checkpoint is exposed while it
 * is copied, so clients never see the table half copied.
 */
export function sourceTableColumns(schema: string): string {
  return `ALTER TABLE ${schema}.source_tables ADD COLUMN columns jsonb,
            ADD COLUMN replaces_earlier boolean NOT NULL DEFAULT false;`;
}
