/**
 * Defects the sync config fuzz suite (sync-config-fuzz.test.ts) found, each pinned by the
 * shrunk input that showed it.
 */
import { describe, expect, it } from 'vitest';
import { parseSyncConfig, type EvaluatedRow } from '../src/index.js';

const stream = (sql: string) => `streams:\n  s:\n    query: ${sql}\n`;

/** The only diagnostic of a config, which must be fatal. */
function only(yaml: string) {
  const { config, diagnostics } = parseSyncConfig(yaml);
  expect(config).toBeUndefined();
  expect(diagnostics).toHaveLength(1);
  expect(diagnostics[0]!.severity).toBe('fatal');
  return diagnostics[0]!;
}

describe('diagnostic positions stay inside the text', () => {
  it('a YAML error at the end of the input ends there, not one character past it', () => {
    const d = only("'");
    expect(d.message).toBe("YAML syntax error: Missing closing 'quote");
    expect([d.line, d.column, d.endLine, d.endColumn]).toEqual([1, 2, 1, 2]);
  });

  it('a SQL error at the end of a block scalar that ends the file without a line break ends at the end of the file', () => {
    const d = only('streams:\n  s:\n    query: |\n      SELECT * FROM t\n       WHERE (id =');
    expect(d.message).toMatch(/^SQL syntax error: the query ends too early/);
    expect([d.line, d.column, d.endLine, d.endColumn]).toEqual([5, 19, 5, 19]);
  });

  it('lines after a NUL character are counted (the YAML lexer skips their line breaks)', () => {
    const { diagnostics } = parseSyncConfig('*a: \u0000\nqueries: ');
    const error = diagnostics.find((d) => d.severity === 'fatal')!;
    expect(error.message).toBe('YAML syntax error: Unexpected scalar token');
    // The scalar runs from the NUL to the end of line 2, which has 9 characters.
    expect([error.line, error.column, error.endLine, error.endColumn]).toEqual([1, 5, 2, 8]);
  });
});

describe('syntax errors are found in time proportional to the query', () => {
  // Each of these took from seconds to hours before; a regression shows as a test timeout.
  it('a syntax error after nested prefix operators: 100 levels of (- then )', () => {
    const prefix = 'SELECT * FROM t WHERE x = ';
    const d = only(stream(`${prefix}${'(-'.repeat(100)})`));
    expect(d.message).toBe(
      'SQL syntax error: unexpected ")". Check the query against the supported SQL in docs/sync-config.md.',
    );
    expect([d.line, d.column]).toEqual([3, '    query: '.length + prefix.length + 200 + 1]);
  });

  it.each([
    ['$$', 'SQL syntax error: the $$ string starting here is never closed: add the closing $$.'],
    ["E'", "SQL syntax error: the E'...' string starting here is never closed: add the closing quote."],
    ["e'it''s", "SQL syntax error: the e'...' string starting here is never closed: add the closing quote."],
  ])('an unclosed %s string followed by many spaces is reported where it opens', (opening, message) => {
    const prefix = 'SELECT * FROM t WHERE x = ';
    const d = only(stream(`${prefix}${opening}${' a'.repeat(200)}`));
    expect(d.message).toBe(message);
    const column = '    query: '.length + prefix.length + 1;
    expect([d.line, d.column, d.endLine, d.endColumn]).toEqual([3, column, 3, column + 2]);
  });

  it('closed $$ and E strings, and strings in quotes and comments, are not reported', () => {
    for (const sql of ["SELECT * FROM t WHERE x = 'costs $$ and E''x' -- $$ E'", 'SELECT * FROM t WHERE x = "a$$b"']) {
      expect(parseSyncConfig(stream(JSON.stringify(sql))).diagnostics).toEqual([]);
    }
    // Parsed as before (pgsql-ast-parser does not support $$ strings in expressions): a plain syntax error.
    expect(only(stream("SELECT * FROM t WHERE x = E'a b' AND y = $$ok$$")).message).toBe(
      'SQL syntax error: unexpected "$$ok$$". Check the query against the supported SQL in docs/sync-config.md.',
    );
  });
});

describe('datetime() outside years 0000-9999 is NULL, as in SQLite', () => {
  const yaml = `bucket_definitions:
  g:
    data:
      - SELECT id, datetime(n, 'unixepoch') AS d FROM t
event_definitions:
  e:
    payloads:
      - SELECT datetime(n, 'unixepoch') AS d FROM t
`;
  const { config, diagnostics } = parseSyncConfig(yaml);
  const table = { schema: 'public', name: 't' };

  it.each([
    [8640000000001n, null], // beyond what a JavaScript Date can hold: this threw RangeError
    [253402300800n, null], // 10000-01-01
    [-62167219201n, null], // just before 0000-01-01
    [253402300799n, '9999-12-31 23:59:59'],
    [-62167219200n, '0000-01-01 00:00:00'],
  ])('datetime(%s, unixepoch) is %s', (n, expected) => {
    expect(diagnostics).toEqual([]);
    const rows = config!.evaluateRow(table, { id: '1', n });
    expect(rows).toHaveLength(1);
    expect((rows[0] as EvaluatedRow).data.d).toBe(expected);
    expect(config!.eventDefinitions[0]!.evaluatePayload(table, { n })).toEqual([{ d: expected }]);
  });
});
