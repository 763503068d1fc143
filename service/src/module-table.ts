/**
 * The module table: the only place that knows every module. Adding a source or a storage is
 * one line here (architecture.md section 1).
 */
import { createHash } from 'node:crypto';
import { postgresModule } from '@bucketsync/module-postgres';
import { postgresStorageModule } from '@bucketsync/module-postgres-storage';
import type { BucketStorage, SourceModule } from '@bucketsync/service-core';

/** A bucket storage backend as the service uses it. */
export interface StorageModule {
  /** Key in the service config: `storage.type`. */
  readonly type: string;
  /** Validates the `storage` section; throws CONFIG_INVALID naming each bad field. */
  decodeConfig(raw: unknown): unknown;
  /** Opens storage, migrating its schema first. */
  open(config: unknown): Promise<BucketStorage>;
  /** Creates or upgrades the schema (`bucketsync migrate`); harmless when run twice. */
  migrate(config: unknown): Promise<unknown>;
}

export const SOURCE_MODULES: readonly SourceModule<unknown>[] = [postgresModule as SourceModule<unknown>];

export const STORAGE_MODULES: readonly StorageModule[] = [postgresStorageModule];

/** Source types users may configure that have no module in this build yet, with their status. */
export const PLANNED_SOURCE_TYPES: Readonly<Record<string, string>> = {
  mysql: 'MySQL / MariaDB replication is not available yet',
  mongodb: 'MongoDB replication is not available yet',
  mssql: 'SQL Server replication is not available yet',
};

/**
 * A short stable id of the storage a service writes to (host, port, database, schema; never
 * credentials), used to keep stream resources such as replication slots of two BucketSync
 * deployments on one source apart.
 */
export function storageIdentity(rawStorage: unknown): string {
  const raw = (rawStorage ?? {}) as Record<string, unknown>;
  let where = '';
  try {
    const url = new URL(String(raw.uri ?? ''));
    where = `${url.hostname}:${url.port}${url.pathname}`;
  } catch {
    where = String(raw.uri ?? '');
  }
  return createHash('sha256')
    .update(`${String(raw.type)}|${where}|${String(raw.schema ?? '')}`)
    .digest('hex')
    .slice(0, 8);
}
