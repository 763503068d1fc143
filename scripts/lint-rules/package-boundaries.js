/**
 * ESLint rule `bucketsync/package-boundaries`: which package of the workspace may import which.
 *
 * - A package is used through its name and its declared entry points, never by path: no
 *   relative import that leaves the package's folder, no `@bucketsync/<name>/src/...`.
 * - Libraries (`libs/*`) never import the core (`@bucketsync/service-core`, its test kit), a
 *   module, the service or the test client.
 * - The core (`packages/*`) never imports a module, the service or the test client.
 * - A module's sources (`modules/<name>/src`) never import another module. Its tests may: a
 *   source module's tests replicate into a real storage module.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

const SCOPE = '@bucketsync/';

/** What each layer's files may not import, by package name (`*` ends a prefix). */
const FORBIDDEN = {
  lib: ['service-core', 'service-core-tests', 'module-*', 'service', 'test-client'],
  core: ['module-*', 'service', 'test-client'],
  'module-src': ['module-*', 'service', 'test-client'],
};

/** The layer of a file, from its package folder relative to the workspace root. */
export function layerOf(packageDir, file) {
  const [group] = packageDir.split('/');
  if (group === 'libs') return 'lib';
  if (group === 'packages') return 'core';
  if (group === 'modules') return file.startsWith(`${packageDir}/src/`) ? 'module-src' : 'module-test';
  return 'app';
}

/** The nearest folder holding a package.json, relative to `root` (posix separators). */
function packageDirOf(root, absoluteFile, cache) {
  let dir = path.dirname(absoluteFile);
  const seen = [];
  while (dir.startsWith(root) && dir !== root) {
    if (cache.has(dir)) {
      const found = cache.get(dir);
      for (const d of seen) cache.set(d, found);
      return found;
    }
    seen.push(dir);
    if (existsSync(path.join(dir, 'package.json'))) {
      const found = path.relative(root, dir).split(path.sep).join('/');
      for (const d of seen) cache.set(d, found);
      return found;
    }
    dir = path.dirname(dir);
  }
  return undefined;
}

/**
 * What is wrong with importing `specifier` from `file` (both relative to the workspace root, posix
 * separators) in the package at `packageDir`, or undefined. Pure, for tests.
 */
export function boundaryProblem({ packageDir, file, specifier }) {
  if (specifier.startsWith('.')) {
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
    if (target !== packageDir && !target.startsWith(`${packageDir}/`)) {
      return `'${specifier}' reaches outside ${packageDir}: import the other package by its name (@bucketsync/...) and its public entry point`;
    }
    return undefined;
  }
  if (!specifier.startsWith(SCOPE)) return undefined;
  const [name, ...rest] = specifier.slice(SCOPE.length).split('/');
  if (rest[0] === 'src') {
    return `'${specifier}' imports another package's sources: use its public entry point ('${SCOPE}${name}') and export what you need there`;
  }
  const layer = layerOf(packageDir, file);
  const own = packageDir.split('/').at(-1);
  for (const pattern of FORBIDDEN[layer] ?? []) {
    const matches = pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
    if (matches && name !== own) {
      return `${describe(layer, packageDir)} must not import '${SCOPE}${name}' (layers: libraries < core < modules < service; CONTRIBUTING.md, "Package boundaries")`;
    }
  }
  return undefined;
}

function describe(layer, packageDir) {
  if (layer === 'lib') return `a library (${packageDir})`;
  if (layer === 'core') return `the core (${packageDir})`;
  return `a module's sources (${packageDir}/src)`;
}

/** Creates the rule for a workspace rooted at `root`. */
export function packageBoundariesRule(root) {
  const cache = new Map();
  return {
    meta: {
      type: 'problem',
      docs: { description: 'which package of the workspace may import which' },
      schema: [],
      messages: { boundary: '{{problem}}' },
    },
    create(context) {
      const absolute = context.filename;
      const packageDir = packageDirOf(root, absolute, cache);
      if (!packageDir) return {};
      const file = path.relative(root, absolute).split(path.sep).join('/');
      const check = (source) => {
        if (!source || typeof source.value !== 'string') return;
        const problem = boundaryProblem({ packageDir, file, specifier: source.value });
        if (problem) context.report({ node: source, messageId: 'boundary', data: { problem } });
      };
      return {
        ImportDeclaration: (node) => check(node.source),
        ExportNamedDeclaration: (node) => check(node.source),
        ExportAllDeclaration: (node) => check(node.source),
        ImportExpression: (node) => check(node.source.type === 'Literal' ? node.source : undefined),
      };
    },
  };
}
