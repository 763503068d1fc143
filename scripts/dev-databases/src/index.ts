export { MissingBinaryError, mariadbBinaries, postgresBinaries } from './binaries.js';
export { startMariadb, type StartMariadbOptions } from './mariadb-server.js';
export { POSTGRES_SETTINGS, startPostgres, type RunningServer, type StartPostgresOptions } from './postgres-server.js';
export {
  integrationTarget,
  startTestDatabases,
  TEST_DATABASE_ENV,
  type IntegrationTarget,
  type StartTestDatabasesOptions,
  type TestDatabaseKind,
  type TestDatabases,
} from './test-databases.js';
