/**
 * `describeIntegration`: an integration suite that runs when its database is available and
 * is otherwise skipped with the reason printed and carried in the suite's name.
 */
import { describe } from 'vitest';
import { integrationTarget, type TestDatabaseKind } from './test-databases.js';

export function describeIntegration(kind: TestDatabaseKind, name: string, body: (url: string) => void): void {
  const target = integrationTarget(kind);
  if (target.url !== undefined) {
    describe(name, () => body(target.url));
    return;
  }
  console.log(`[skipped] ${name}: ${target.skipReason}`);
  describe.skip(`${name} (skipped: ${target.skipReason})`, () => body(''));
}
