import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: '@bucketsync/lib-services',
    include: ['test/**/*.test.ts'],
  },
});
