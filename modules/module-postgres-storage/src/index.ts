export { postgresStorageModule } from './postgres-storage-module.js';
export {
  MAX_WRITE_CHECKPOINTS_PER_USER,
  PostgresStorage,
  migratePostgresStorage,
  WRITE_CHECKPOINT_MAX_AGE_DAYS,
  type PostgresStorageOptions,
} from './postgres-storage.js';
export { normalisePostgresStorageConfig, type PostgresStorageConfig } from './postgres-storage-config.js';
export { MIGRATIONS, STORAGE_VERSION, type MigrationResult } from './migrations/index.js';
