import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: '@bucketsync/test-client',
    // The CLI tests run the built bin/bucketsync-test-client; the setup builds it first.
    globalSetup: ['test/build-global-setup.ts'],
    include: ['test/**/*.test.ts'],
  },
});
