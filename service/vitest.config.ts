import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: '@bucketsync/service',
    include: ['test/**/*.test.ts'],
  },
});
