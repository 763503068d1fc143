import { describe, expect, it } from 'vitest';
import { parseSyncConfig } from '../src/index.js';

/** Position of the only diagnostic of a config whose query calls the unknown function nope(). */
function position(yaml: string): [number, number, number, number] {
  const { diagnostics } = parseSyncConfig(yaml);
  expect(diagnostics).toHaveLength(1);
  expect(diagnostics[0]!.message).toBe(
    'Unknown function nope(): see the list of supported functions in docs/sync-config.md.',
  );
  const d = diagnostics[0]!;
  return [d.line, d.column, d.endLine, d.endColumn];
}

describe('SQL positions map back into the YAML text', () => {
  it('plain scalar', () => {
    expect(position('streams:\n  s:\n    query: SELECT * FROM t WHERE nope(x) = 1\n')).toEqual([3, 34, 3, 41]);
  });

  it('plain scalar folded over lines', () => {
    const yaml = 'streams:\n  s:\n    query: SELECT * FROM t\n      WHERE a = 1\n        AND nope(x) = 1\n';
    expect(position(yaml)).toEqual([5, 13, 5, 20]);
  });

  it('literal block scalar (|)', () => {
    const yaml = 'streams:\n  s:\n    query: |\n      SELECT *\n        FROM t\n       WHERE nope(x) = 1\n';
    expect(position(yaml)).toEqual([6, 14, 6, 21]);
  });

  it('folded block scalar (>) with a keep indicator', () => {
    const yaml = 'streams:\n  s:\n    query: >+\n      SELECT * FROM t\n      WHERE\n        nope(x) = 1\n';
    expect(position(yaml)).toEqual([6, 9, 6, 16]);
  });

  it('double-quoted string with escapes before the error', () => {
    const yaml = 'streams:\n  s:\n    query: "SELECT * FROM t WHERE \\"Name\\" = \'a\\tb\' AND nope(x) = 1"\n';
    expect(position(yaml)).toEqual([3, 57, 3, 64]);
  });

  it("single-quoted string with '' escapes", () => {
    const yaml = "streams:\n  s:\n    query: 'SELECT * FROM t WHERE a = ''it''''s'' AND nope(x) = 1'\n";
    expect(position(yaml)).toEqual([3, 55, 3, 62]);
  });

  it('list item inside a flow sequence', () => {
    const yaml = 'bucket_definitions:\n  a:\n    data: ["SELECT * FROM t", "SELECT id, nope(x) AS y FROM u"]\n';
    expect(position(yaml)).toEqual([3, 43, 3, 50]);
  });
});
