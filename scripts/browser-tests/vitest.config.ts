import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: '@bucketsync/browser-tests',
    globalSetup: ['@bucketsync/dev-databases/vitest-global-setup'],
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
  },
});
