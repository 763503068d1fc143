/**
 * The module table: the only place that knows every module. Adding a source or a storage is
 * one line here (architecture.md section 1).
 */
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
