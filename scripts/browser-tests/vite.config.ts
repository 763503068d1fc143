/**
 * Builds the test page (src/index.html) into dist/page. The two settings every app using
 * `@powersync/web` with vite needs (docs/client-setup.md): keep the SDK out of dependency
 * pre-bundling, so its worker and WASM files are found beside it, and build workers as ES modules.
 */
import { defineConfig } from 'vite';

export default defineConfig({
  root: 'src',
  base: './',
  build: { outDir: '../dist/page', emptyOutDir: true, target: 'es2022' },
  optimizeDeps: { exclude: ['@powersync/web'] },
  worker: { format: 'es' },
});
