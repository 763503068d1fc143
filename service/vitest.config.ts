import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: '@bucketsync/service',
    globalSetup: ['@bucketsync/dev-databases/vitest-global-setup'],
    include: ['test/**/*.test.ts'],
  },
});
