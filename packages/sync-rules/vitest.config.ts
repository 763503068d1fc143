import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: '@bucketsync/sync-rules',
    include: ['test/**/*.test.ts'],
  },
});
