import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { defineStorageContract } from '@bucketsync/service-core-tests';
import { openTestStorage } from './postgres-test-storage.js';

describeIntegration('postgresStorage', 'Postgres storage', (url) =>
  defineStorageContract((options) => openTestStorage(url, options)),
);
