export { MissingBinaryError, mariadbBinaries, postgresBinaries, type BinarySearch } from './binaries.js';
export { cleanStaleRuns, createRunDirectory, freePort, portInUse, RUNS_ROOT, TEMPLATES_ROOT } from './run-directory.js';
export { startMariadb, type StartMariadbOptions } from './mariadb-server.js';
export { POSTGRES_SETTINGS, startPostgres, type RunningServer, type StartPostgresOptions } from './postgres-server.js';
export {
  integrationTarget,
  startTestDatabases,
  TEST_DATABASE_ENV,
  type IntegrationTarget,
  type StartedServer,
  type StartTestDatabasesOptions,
  type TestDatabaseKind,
  type TestDatabases,
  type TestServer,
} from './test-databases.js';
