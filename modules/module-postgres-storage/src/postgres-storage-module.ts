/**
 * Registration of the Postgres bucket storage module: the `storage.type` key, its config
 * codec, and the factory the service uses to open storage and to run `bucketsync migrate`.
 */
import { migratePostgresStorage, PostgresStorage, type PostgresStorageOptions } from './postgres-storage.js';
import { normalisePostgresStorageConfig } from './postgres-storage-config.js';

export const postgresStorageModule = {
  /** Key used in the service config: `storage.type`. */
  type: 'postgresql',
  /** Validates the `storage` section; throws CONFIG_INVALID naming each bad field. */
  decodeConfig: normalisePostgresStorageConfig,
  /** Opens storage (migrating the schema first, as the service does at start). */
  open: (config: unknown, options?: PostgresStorageOptions) => PostgresStorage.open(config, options),
  /** `bucketsync migrate`: creates or upgrades the schema; harmless when run twice. */
  migrate: migratePostgresStorage,
} as const;
