import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: '@bucketsync/service-errors',
    include: ['test/**/*.test.ts'],
  },
});
