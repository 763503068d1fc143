import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Linter } from 'eslint';
import { describe, expect, it } from 'vitest';
import { boundaryProblem, packageBoundariesRule } from '../package-boundaries.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe('package boundaries', () => {
  it('refuses relative imports that leave the package, and deep imports of another package', () => {
    const inModule = { packageDir: 'modules/module-mysql', file: 'modules/module-mysql/src/a/b.ts' };
    expect(boundaryProblem({ ...inModule, specifier: '../c.js' })).toBeUndefined();
    expect(boundaryProblem({ ...inModule, specifier: '../../test/x.js' })).toBeUndefined();
    expect(boundaryProblem({ ...inModule, specifier: '../../../module-postgres/src/x.js' })).toContain(
      'reaches outside modules/module-mysql',
    );
    expect(boundaryProblem({ ...inModule, specifier: '@bucketsync/service-core/src/storage/x.js' })).toContain(
      "use its public entry point ('@bucketsync/service-core')",
    );
    // Declared entry points other than the main one are fine.
    expect(
      boundaryProblem({
        packageDir: 'service',
        file: 'service/test/a.ts',
        specifier: '@bucketsync/dev-databases/vitest',
      }),
    ).toBeUndefined();
  });

  it('keeps the layers: libraries < core < modules < service', () => {
    const lib = { packageDir: 'libs/lib-postgres', file: 'libs/lib-postgres/src/x.ts' };
    expect(boundaryProblem({ ...lib, specifier: '@bucketsync/service-errors' })).toBeUndefined();
    expect(boundaryProblem({ ...lib, specifier: '@bucketsync/service-core' })).toContain('a library');
    const core = { packageDir: 'packages/service-core', file: 'packages/service-core/src/x.ts' };
    expect(boundaryProblem({ ...core, specifier: '@bucketsync/sync-rules' })).toBeUndefined();
    expect(boundaryProblem({ ...core, specifier: '@bucketsync/module-postgres-storage' })).toContain('the core');
    expect(boundaryProblem({ ...core, specifier: '@bucketsync/service' })).toContain('the core');
    const moduleSrc = { packageDir: 'modules/module-postgres', file: 'modules/module-postgres/src/x.ts' };
    expect(boundaryProblem({ ...moduleSrc, specifier: '@bucketsync/service-core' })).toBeUndefined();
    expect(boundaryProblem({ ...moduleSrc, specifier: '@bucketsync/module-postgres-storage' })).toContain(
      "a module's sources",
    );
    // A source module's tests replicate into a real storage module.
    const moduleTest = { packageDir: 'modules/module-postgres', file: 'modules/module-postgres/test/x.ts' };
    expect(boundaryProblem({ ...moduleTest, specifier: '@bucketsync/module-postgres-storage' })).toBeUndefined();
    // The service puts it all together.
    expect(
      boundaryProblem({ packageDir: 'service', file: 'service/src/x.ts', specifier: '@bucketsync/module-postgres' }),
    ).toBeUndefined();
  });

  it('reports through ESLint on the import, export and dynamic import that cross a boundary', () => {
    const linter = new Linter({ configType: 'flat' });
    const config = [
      {
        plugins: { bucketsync: { rules: { 'package-boundaries': packageBoundariesRule(root) } } },
        rules: { 'bucketsync/package-boundaries': 'error' },
        languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
      },
    ];
    const code = [
      "import { x } from '@bucketsync/module-postgres';",
      "export * from '../../../modules/module-postgres/src/index.js';",
      "const y = await import('@bucketsync/service');",
      "import { z } from '@bucketsync/sync-rules';",
    ].join('\n');
    const messages = linter.verify(code, config, { filename: path.join(root, 'packages/service-core/src/x.js') });
    expect(messages.map((m) => m.line)).toEqual([1, 2, 3]);
    expect(messages[0].message).toContain(
      "the core (packages/service-core) must not import '@bucketsync/module-postgres'",
    );
  });
});
