// The CLI tests run bin/bucketsync-test-client, which imports dist/: build it (tsc -b is a
// no-op when dist is current) so a test never exercises stale output.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

export default function setup(): void {
  const packageDir = path.resolve(import.meta.dirname, '..');
  const tsc = createRequire(path.join(packageDir, 'package.json')).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-b', packageDir], { stdio: 'inherit' });
}
