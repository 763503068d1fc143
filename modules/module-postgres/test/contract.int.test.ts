import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { defineSourceContract } from '@bucketsync/service-core-tests';
import { postgresSourceHarness } from './postgres-harness.js';

describeIntegration('postgres', 'Postgres source', (sourceUrl) => {
  defineSourceContract(postgresSourceHarness({ sourceUrl, storageUrl: process.env.PG_STORAGE_TEST_URL! }));
});
