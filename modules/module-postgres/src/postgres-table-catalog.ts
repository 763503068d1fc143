/**
 * Describes source tables from the Postgres catalog: columns with type OIDs, the replica key
 * (primary key, else the replica identity index, else every column for REPLICA IDENTITY FULL),
 * and publication coverage. The snapshotter and the streamer both use it, so a table has
 * the same identity whichever of them sees it first.
 */
import type { SourceColumn, SourceTableDescriptor, SourceTablePattern } from '@bucketsync/service-core';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import type pg from 'pg';
import type { PostgresTableShape } from './postgres-table-reader.js';

export interface PostgresTable extends PostgresTableShape {
  oid: number;
  replicaIdentity: 'd' | 'n' | 'f' | 'i';
  descriptor: SourceTableDescriptor;
}

interface CatalogRow {
  oid: number;
  schema: string;
  name: string;
  replident: 'd' | 'n' | 'f' | 'i';
  columns: { name: string; type: number; typmod: number; hasDefault: boolean; generated: boolean }[];
  pk: string[] | null;
  ri: string[] | null;
}

const CATALOG_QUERY = `
  SELECT c.oid::int AS oid, n.nspname AS schema, c.relname AS name, c.relreplident AS replident,
    (SELECT json_agg(json_build_object('name', a.attname, 'type', a.atttypid::int, 'typmod', a.atttypmod,
                                       'hasDefault', a.atthasdef OR a.atthasmissing,
                                       'generated', a.attgenerated <> '') ORDER BY a.attnum)
       FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
    (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
       FROM pg_index i JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = c.oid AND i.indisprimary) AS pk,
    (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
       FROM pg_index i JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = c.oid AND i.indisreplident) AS ri
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND `;

/**
 * A catalog row as a table. Without a primary key or replica identity the key is empty and
 * `keyProblem` says how to fix it: that fails replication only for a table the sync config
 * uses (listing such a table for the sync config throws it at once); a publication may well
 * hold other tables without a key.
 */
function toTable(row: CatalogRow, tag: string): PostgresTable {
  const columns = row.columns.map((c) => ({ name: c.name, typeOid: c.type }));
  let keyColumns: string[] = [];
  let keyProblem: string | undefined;
  if (row.replident === 'i' && row.ri) keyColumns = row.ri;
  else if (row.pk) keyColumns = row.pk;
  else if (row.replident === 'f') keyColumns = columns.map((c) => c.name);
  else {
    keyProblem =
      `table ${row.schema}.${row.name} has no primary key or replica identity, so its updates and deletes cannot be replicated. ` +
      `Add a primary key, or run: ALTER TABLE "${row.schema}"."${row.name}" REPLICA IDENTITY FULL;`;
  }
  return {
    oid: row.oid,
    schema: row.schema,
    name: row.name,
    replicaIdentity: row.replident,
    columns,
    keyColumns,
    descriptor: {
      connectionTag: tag,
      schema: row.schema,
      name: row.name,
      objectId: row.oid,
      replicaIdColumns: keyColumns,
      ...(keyProblem ? { keyProblem } : {}),
      // As a relation message lists them (pgoutput leaves generated columns out).
      columns: row.columns.filter((c) => !c.generated).map((c) => sourceColumn(c.name, c.type, c.typmod, c.hasDefault)),
    },
  };
}

/** A column as replication compares it: `type` is the type oid, with the type modifier if any. */
export function sourceColumn(name: string, typeOid: number, typeMod: number, hasDefault: boolean): SourceColumn {
  return { name, type: typeMod >= 0 ? `${typeOid}(${typeMod})` : String(typeOid), hasDefault };
}

/** Tables matching the sync config's patterns (exact names or `prefix%` wildcards). */
export async function listPostgresTables(
  client: pg.ClientBase,
  patterns: readonly SourceTablePattern[],
  tag: string,
): Promise<PostgresTable[]> {
  const found = new Map<number, PostgresTable>();
  for (const pattern of patterns) {
    const condition = pattern.isWildcard
      ? `n.nspname = $1 AND c.relname LIKE $2 || '%'`
      : `n.nspname = $1 AND c.relname = $2`;
    const like = pattern.isWildcard ? pattern.name.replace(/[\\%_]/g, (m) => `\\${m}`) : pattern.name;
    const { rows } = await client.query<CatalogRow>(`${CATALOG_QUERY} ${condition}`, [pattern.schema, like]);
    for (const row of rows) if (!found.has(row.oid)) found.set(row.oid, toTable(row, tag));
  }
  // These are the sync config's tables: one without a key cannot be replicated.
  for (const table of found.values()) {
    if (table.descriptor.keyProblem)
      throw new ServiceError(ErrorCode.SOURCE_MISCONFIGURED, table.descriptor.keyProblem);
  }
  return [...found.values()];
}

/** One table by relation oid (the streamer's view after a relation message). */
export async function describePostgresTable(
  client: pg.ClientBase,
  oid: number,
  tag: string,
): Promise<PostgresTable | undefined> {
  return (await describePostgresTables(client, [oid], tag)).get(oid);
}

/** Tables by relation oid, in one query; tables that no longer exist are absent. */
export async function describePostgresTables(
  client: pg.ClientBase,
  oids: readonly number[],
  tag: string,
): Promise<Map<number, PostgresTable>> {
  const { rows } = await client.query<CatalogRow>(`${CATALOG_QUERY} c.oid = ANY($1::oid[])`, [oids]);
  return new Map(rows.map((row) => [row.oid, toTable(row, tag)]));
}

/**
 * Checks that the publication exists and covers `tables`. It does not create or alter it
 * (that needs owner rights): it fails with the SQL the user must run.
 */
export async function checkPublication(
  client: pg.ClientBase,
  publication: string,
  tables: readonly PostgresTable[],
): Promise<void> {
  const { rows } = await client.query<{ schemaname: string; tablename: string }>(
    `SELECT p.pubname, t.schemaname, t.tablename FROM pg_publication p
       LEFT JOIN pg_publication_tables t ON t.pubname = p.pubname WHERE p.pubname = $1`,
    [publication],
  );
  const quoted = (t: { schema: string; name: string }) => `"${t.schema}"."${t.name}"`;
  if (rows.length === 0) {
    throw new ServiceError(
      ErrorCode.SOURCE_MISCONFIGURED,
      `publication "${publication}" does not exist. Create it as the tables' owner: CREATE PUBLICATION "${publication}" FOR ALL TABLES;` +
        (tables.length > 0 ? ` (or FOR TABLE ${tables.map(quoted).join(', ')};)` : ''),
    );
  }
  const covered = new Set(rows.filter((r) => r.tablename).map((r) => `${r.schemaname}.${r.tablename}`));
  const missing = tables.filter((t) => !covered.has(`${t.schema}.${t.name}`));
  if (missing.length > 0) {
    throw new ServiceError(
      ErrorCode.SOURCE_MISCONFIGURED,
      `publication "${publication}" does not cover ${missing.map((t) => `${t.schema}.${t.name}`).join(', ')}. ` +
        `Run: ALTER PUBLICATION "${publication}" ADD TABLE ${missing.map(quoted).join(', ')};`,
    );
  }
}

/**
 * Checks that the connecting user may read `tables` (the copy and re-reads need SELECT).
 * Fails with the GRANT to run, before any slot exists, instead of failing mid-copy.
 */
export async function checkTablePrivileges(client: pg.ClientBase, tables: readonly PostgresTable[]): Promise<void> {
  if (tables.length === 0) return;
  const { rows } = await client.query<{ oid: number; role: string }>(
    `SELECT t.oid::int AS oid, current_user AS role FROM unnest($1::oid[]) AS t(oid)
      WHERE NOT has_table_privilege(t.oid, 'SELECT')`,
    [tables.map((t) => t.oid)],
  );
  if (rows.length === 0) return;
  const denied = new Set(rows.map((r) => r.oid));
  const names = tables.filter((t) => denied.has(t.oid)).map((t) => `"${t.schema}"."${t.name}"`);
  const role = rows[0]!.role.replace(/"/g, '""');
  throw new ServiceError(
    ErrorCode.SOURCE_PERMISSION_DENIED,
    `the user "${rows[0]!.role}" may not read ${names.join(', ')}. Run as the tables' owner: GRANT SELECT ON ${names.join(', ')} TO "${role}";`,
  );
}
