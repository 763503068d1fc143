import { defineProject } from 'vitest/config';

export default defineProject({
  test: { name: '@bucketsync/lint-rules', include: ['test/**/*.test.js'] },
});
