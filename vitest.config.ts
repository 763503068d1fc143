import { defineConfig } from 'vitest/config';

// One run over every package: each package folder has its own vitest.config.ts.
export default defineConfig({
  test: {
    projects: ['*/vitest.config.ts', '*/*/vitest.config.ts'],
  },
});
