export { MissingBinaryError, mariadbBinaries, postgresBinaries, type BinarySearch } from './binaries.js';
export { cleanStaleRuns, createRunDirectory, freePort, RUNS_ROOT } from './run-directory.js';
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
