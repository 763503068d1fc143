export { postgresStorageModule } from './postgres-storage-module.js';
export { PostgresStorage, migratePostgresStorage, type PostgresStorageOptions } from './postgres-storage.js';
export { normalisePostgresStorageConfig, type PostgresStorageConfig } from './postgres-storage-config.js';
export { MIGRATIONS, STORAGE_VERSION, type MigrationResult } from './migrations/index.js';
