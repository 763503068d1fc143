/**
 * Versioned schema migrations of Postgres bucket storage. Each runs once, in its own
 * transaction, under an advisory lock, so concurrent starts and `bucketsync migrate` twice
 * are harmless; a database newer than this code is refused rather than misread.
 */
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import type pg from 'pg';
import { initialSchema } from './001-initial-schema.js';
import { sourceTableColumns } from './002-source-table-columns.js';
import { changeIndexes } from './003-change-indexes.js';
import { writeCheckpointAge } from './004-write-checkpoint-age.js';

/**
 * Persisted storage format version (the highest migration).
 *
 * Changelog:
 * - 1: initial schema (sync configs, source tables with `rows_version` for the write batch's
 *   key tracking, ops, per-bucket running checksums (`bucket_checksums`), current rows with
 *   tombstones, parameter index, custom and managed write checkpoints).
 * - 2: `source_tables.columns`, so column changes that alter stored rows trigger a fresh copy.
 * - 3: indexes by op id on `bucket_checksums`, `parameter_index` and `custom_write_checkpoints`
 *   (what changed between two checkpoints); managed write checkpoint creations are announced on
 *   the checkpoint channel.
 * - 4: `write_checkpoints.updated_at`: old rows are removed and each user keeps at most
 *   MAX_WRITE_CHECKPOINTS_PER_USER client ids.
 */
export const STORAGE_VERSION = 4;

/** One schema migration: `up` returns SQL for the quoted schema name. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  up(schema: string): string;
}

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial schema', up: initialSchema },
  { version: 2, name: 'source table columns', up: sourceTableColumns },
  { version: 3, name: 'indexes by op id for checkpoint changes', up: changeIndexes },
  { version: 4, name: 'write checkpoint age', up: writeCheckpointAge },
];

/** Quotes an identifier for SQL. */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** What `runMigrations` did. */
export interface MigrationResult {
  readonly from: number;
  readonly to: number;
  readonly applied: readonly string[];
}

/**
 * Brings `schema` up to `STORAGE_VERSION` (or `targetVersion`, for tests of upgrades). Creates
 * the schema when missing. Throws STORAGE_UNREACHABLE (not retryable) when the database holds a
 * newer version than this code knows.
 */
export async function runMigrations(
  client: pg.ClientBase,
  schema: string,
  targetVersion: number = STORAGE_VERSION,
): Promise<MigrationResult> {
  const q = quoteIdentifier(schema);
  await client.query('BEGIN');
  try {
    // One migrator per schema at a time; the lock ends with the transaction.
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`bucketsync-migrate:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${q}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${q}.migrations (version int4 PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await client.query<{ version: number | null }>(
      `SELECT max(version) AS version FROM ${q}.migrations`,
    );
    const from = rows[0]?.version ?? 0;
    if (from > STORAGE_VERSION) {
      throw new ServiceError(
        ErrorCode.STORAGE_UNREACHABLE,
        `storage schema "${schema}" is at version ${from}, newer than this service (version ${STORAGE_VERSION}); upgrade the service`,
        { retryable: false },
      );
    }
    const applied: string[] = [];
    for (const migration of MIGRATIONS) {
      if (migration.version <= from || migration.version > targetVersion) continue;
      await client.query(migration.up(q));
      await client.query(`INSERT INTO ${q}.migrations (version, name) VALUES ($1, $2)`, [
        migration.version,
        migration.name,
      ]);
      applied.push(`${migration.version}: ${migration.name}`);
    }
    await client.query('COMMIT');
    return { from, to: Math.max(from, Math.min(targetVersion, STORAGE_VERSION)), applied };
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}
