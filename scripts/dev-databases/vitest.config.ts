import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: '@bucketsync/dev-databases',
    globalSetup: ['./src/vitest-global-setup.ts'],
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
  },
});
