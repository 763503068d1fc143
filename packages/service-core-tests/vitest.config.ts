import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: '@bucketsync/service-core-tests',
    include: ['test/**/*.test.ts'],
  },
});
