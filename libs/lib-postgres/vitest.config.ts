import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: '@bucketsync/lib-postgres',
    globalSetup: ['@bucketsync/dev-databases/vitest-global-setup'],
    include: ['test/**/*.test.ts'],
  },
});
