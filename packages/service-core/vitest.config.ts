import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: '@bucketsync/service-core',
    include: ['test/**/*.test.ts'],
  },
});
