import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isScalar, parseDocument, type Scalar } from 'yaml';
import { JsonSyntaxError, jsToJsonText, parseJsonValue, parseSyncConfig } from '../src/index.js';
import { MAX_NESTING_DEPTH } from '../src/nesting-limit.js';
import { scalarSourceText, type WorkCounter } from '../src/yaml-source.js';

const stream = (sql: string) => `streams:\n  s:\n    query: ${sql}\n`;
const QUERY_COLUMN = '    query: '.length + 1;

/** The only diagnostic of a config, which must be fatal. */
function only(yaml: string) {
  const { config, diagnostics } = parseSyncConfig(yaml);
  expect(config).toBeUndefined();
  expect(diagnostics).toHaveLength(1);
  expect(diagnostics[0]!.severity).toBe('fatal');
  return diagnostics[0]!;
}

describe('the nesting limit gives a positioned diagnostic, never a stack overflow', () => {
  it('2,000 nested function calls: points at the bracket that opens level 101', () => {
    const prefix = 'SELECT * FROM t WHERE id = ';
    const d = only(stream(`${prefix}${'upper('.repeat(2000)}x${')'.repeat(2000)}`));
    expect(d.message).toBe(
      'Brackets are nested more than 100 levels deep (the sync config nesting limit): simplify the expression, e.g. use x IN (a, b, c) instead of a long OR chain, split it into several queries, or compute the value in the source database.',
    );
    expect([d.line, d.column]).toEqual([3, QUERY_COLUMN + prefix.length + MAX_NESTING_DEPTH * 'upper('.length + 5]);
  });

  it('deep parentheses inside a block scalar: line and column of the offending bracket', () => {
    const yaml = `streams:\n  s:\n    query: |\n      SELECT *\n        FROM t\n       WHERE ${'('.repeat(150)}x${')'.repeat(150)} = 1\n`;
    const d = only(yaml);
    expect([d.line, d.column]).toEqual([6, 14 + MAX_NESTING_DEPTH]);
  });

  it('exactly the limit still compiles', () => {
    const depth = MAX_NESTING_DEPTH - 5; // the WHERE clause and = add levels of their own
    const { config, diagnostics } = parseSyncConfig(
      stream(`SELECT * FROM t WHERE id = ${'('.repeat(MAX_NESTING_DEPTH)}x${')'.repeat(MAX_NESTING_DEPTH)}`),
    );
    expect(diagnostics).toEqual([]);
    expect(config).toBeDefined();
    const calls = parseSyncConfig(stream(`SELECT * FROM t WHERE id = ${'upper('.repeat(depth)}x${')'.repeat(depth)}`));
    expect(calls.diagnostics).toEqual([]);
  });

  it('nesting without brackets (NOT chains, long AND chains, -> chains) is caught in the expression tree', () => {
    for (const where of [
      `${'NOT '.repeat(2000)}x`,
      Array.from({ length: 2000 }, (_, i) => `c${i} = 1`).join(' AND '),
      `x${" -> 'a'".repeat(2000)} = 1`,
    ]) {
      const d = only(stream(`SELECT * FROM t WHERE ${where}`));
      expect(d.message).toMatch(
        /^This expression is nested more than 100 levels deep \(the sync config nesting limit\): /,
      );
      expect(d.line).toBe(3);
      expect(d.column).toBeGreaterThan(QUERY_COLUMN);
    }
  });

  it('deep YAML collections are rejected before the YAML composer recurses', () => {
    const flow = only(`streams: ${'['.repeat(2000)}${']'.repeat(2000)}\n`);
    expect(flow.message).toMatch(/^YAML collections are nested more than 100 levels deep/);
    // The root mapping is level 1, so the 100th [ opens level 101.
    expect([flow.line, flow.column]).toEqual([1, 'streams: '.length + MAX_NESTING_DEPTH]);
    const block = only(`streams:\n  ${'- '.repeat(2000)}x\n`);
    expect(block.message).toMatch(/^YAML collections are nested more than 100 levels deep/);
    expect([block.line, block.column]).toEqual([2, 3 + 2 * (MAX_NESTING_DEPTH - 1)]);
  });

  it('parseSyncConfig never throws, whatever the input', () => {
    const piece = fc.constantFrom(
      '(',
      ')',
      '[',
      ']',
      '{',
      '}',
      "'",
      '"',
      '\\',
      '\n',
      ' ',
      '  ',
      '- ',
      ': ',
      '#',
      '|',
      '>',
      ',',
      'upper(',
      'NOT ',
      ' AND ',
      " -> 'a'",
      'x',
      '1',
      '$$',
      '--',
      '/*',
      'SELECT * FROM t WHERE ',
      'streams:\n  s:\n    query: ',
    );
    const text = fc.array(piece, { maxLength: 60 }).map((parts) => parts.join(''));
    const deep = fc
      .tuple(fc.constantFrom('upper(', '(', 'NOT ', '[', '- ', '{a: '), fc.integer({ min: 0, max: 3000 }))
      .map(([open, n]) => open.repeat(n));
    fc.assert(
      fc.property(fc.oneof(text, deep), fc.boolean(), (body, wrap) => {
        const yaml = wrap ? stream(`SELECT * FROM t WHERE id = ${body}`) : body;
        const result = parseSyncConfig(yaml);
        for (const d of result.diagnostics) {
          expect(d.line).toBeGreaterThanOrEqual(1);
          expect(d.column).toBeGreaterThanOrEqual(1);
        }
      }),
      { numRuns: 150 },
    );
  });
});

/** The query scalar of a config and the mapping's step count. */
function mappingSteps(yaml: string): number {
  const doc = parseDocument(yaml);
  const work: WorkCounter = { steps: 0 };
  const visit = (node: unknown): void => {
    if (isScalar(node)) {
      if (typeof node.value === 'string') scalarSourceText(node as Scalar, yaml, work);
      return;
    }
    const items = (node as { items?: unknown[] } | null)?.items ?? [];
    for (const item of items) {
      const pair = item as { key?: unknown; value?: unknown };
      if (pair && typeof pair === 'object' && 'value' in pair) visit(pair.value);
      else visit(item);
    }
  };
  visit(doc.contents);
  return work.steps;
}

describe('source positions are linear in the scalar size', () => {
  // One SQL string literal full of YAML escapes (\u00e9, \x41, \", \n) before the error.
  const escaped = (units: number) =>
    `"SELECT * FROM t WHERE a = '${'\\u00e9\\x41\\"\\n  '.repeat(units)}' AND nope(x) = 1"`;

  it('a 320 kB escaped scalar: the diagnostic inside it has the right line and column', () => {
    const yaml = stream(escaped(20_000));
    expect(yaml.length).toBeGreaterThan(320_000);
    const { diagnostics } = parseSyncConfig(yaml);
    expect(diagnostics).toHaveLength(1);
    expect(diagnostics[0]!.message).toMatch(/^Unknown function nope\(\)/);
    const line = yaml.split('\n')[2]!;
    expect([diagnostics[0]!.line, diagnostics[0]!.column]).toEqual([3, line.indexOf('nope(') + 1]);
    expect(diagnostics[0]!.endColumn).toBe(line.indexOf('nope(') + 1 + 'nope(x)'.length);
  });

  it('the mapping takes a bounded number of steps per character, at size n and 4n', () => {
    const small = stream(escaped(2_000));
    const large = stream(escaped(8_000));
    const smallSteps = mappingSteps(small);
    const largeSteps = mappingSteps(large);
    // Linear: at most two steps per YAML character, and 4x the input costs about 4x (quadratic would be 16x).
    expect(smallSteps).toBeLessThanOrEqual(2 * small.length);
    expect(largeSteps).toBeLessThanOrEqual(2 * large.length);
    expect(largeSteps / smallSteps).toBeLessThan(4.2);
  });

  it('a 1 MB config of many definitions maps in linear steps', () => {
    const definitions: string[] = [];
    for (let i = 0; i < 4_500; i++) {
      definitions.push(
        `  d${i}:\n    parameters: "SELECT id AS p FROM lists WHERE owner_id = request.user_id() AND name != '\\u00e9${i}'"\n    data:\n      - |\n        SELECT * FROM todos\n         WHERE list_id = bucket.p\n           AND title != 'x\\y ${i}'\n`,
      );
    }
    const yaml = `bucket_definitions:\n${definitions.join('')}`;
    expect(yaml.length).toBeGreaterThan(1_000_000);
    expect(mappingSteps(yaml)).toBeLessThanOrEqual(2 * yaml.length);
    // Compiling it all is linear too but takes seconds in the SQL parser; a slice checks the queries are valid.
    const { config, diagnostics } = parseSyncConfig(`bucket_definitions:\n${definitions.slice(0, 20).join('')}`);
    expect(diagnostics).toEqual([]);
    expect(config).toBeDefined();
  });
});

describe('JSON handling does not recurse without bound', () => {
  it('JSON text nested deeper than 1000 levels is malformed, not a stack overflow', () => {
    expect(() => parseJsonValue('['.repeat(100_000) + ']'.repeat(100_000))).toThrow(JsonSyntaxError);
    expect(() => parseJsonValue('['.repeat(1000) + ']'.repeat(1000))).not.toThrow();
  });

  it('deeply nested JavaScript values (client parameters) serialise iteratively', () => {
    let value: unknown = 1;
    for (let i = 0; i < 50_000; i++) value = i % 2 ? [value] : { a: value, skip: undefined };
    const text = jsToJsonText(value);
    expect(text.length).toBe(1 + 25_000 * 2 + 25_000 * '{"a":}'.length);
    expect(jsToJsonText({ b: [1n, 'x', null, undefined, true], c: 1.5 })).toBe('{"b":[1,"x",null,null,true],"c":1.5}');
  });
});
