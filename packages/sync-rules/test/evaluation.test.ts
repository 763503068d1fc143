import { describe, expect, it } from 'vitest';
import { parseSyncConfig, type EvaluatedRow, type SqliteRow, type SqliteValue } from '../src/index.js';

const todos = { schema: 'public', name: 't' };

/** Evaluates `expr` as the column v of a global bucket's data query. */
function evaluate(expr: string, row: SqliteRow = {}, edition = 1): SqliteValue | undefined {
  const yaml = `config:\n  edition: ${edition}\nbucket_definitions:\n  g:\n    data:\n      - "SELECT id, ${expr.replace(/"/g, '\\"')} AS v FROM t"\n`;
  const { config, diagnostics } = parseSyncConfig(yaml);
  expect(diagnostics).toEqual([]);
  const rows = config!.evaluateRow(todos, { id: 'r1', ...row });
  expect(rows).toHaveLength(1);
  return (rows[0] as EvaluatedRow).data.v;
}

const json = '{"a":{"b.c":1,"b":{"c":2}},"arr":[1,2.5,"x",null,true,{"k":[]}],"big":12345678901234567890}';

// [expression, row, expected value]
const CASES: [string, SqliteRow, SqliteValue | undefined][] = [
  // literals and types
  ['1', {}, 1n],
  ['1.5', {}, 1.5],
  ["'text'", {}, 'text'],
  ['NULL', {}, null],
  ['true', {}, 1n],
  ['9223372036854775807', {}, 9223372036854775807n],
  ['-9223372036854775807', {}, -9223372036854775807n],
  // comparison: SQLite classes, NULL rules
  ["'1' = 1", {}, 0n],
  ['1 = 1.0', {}, 1n],
  ['x = 3', { x: 3 }, 1n],
  ['NULL = NULL', {}, null],
  ['x = 1', { x: null }, null],
  ['x != 1', { x: 2n }, 1n],
  ['x <> 1', { x: 1n }, 0n],
  ["1 < 'a'", {}, 1n],
  ["'b' > 'a'", {}, 1n],
  ['x < 2', { x: 1.5 }, 1n],
  ['x >= 9007199254740993', { x: 9007199254740993n }, 1n],
  ['x > 9007199254740992', { x: 9007199254740993n }, 1n],
  ['x IS NULL', { x: null }, 1n],
  ['x IS NOT NULL', { x: 'a' }, 1n],
  ['NOT x', { x: 0n }, 1n],
  ['NOT x', { x: null }, null],
  ['x AND y', { x: 1n, y: null }, null],
  ['x AND y', { x: 0n, y: null }, 0n],
  ['x OR y', { x: 1n, y: null }, 1n],
  ['x OR y', { x: 0n, y: null }, null],
  // arithmetic
  ['5 / 2', {}, 2n],
  ['-5 / 2', {}, -2n],
  ['5.0 / 2', {}, 2.5],
  ['1 / 0', {}, null],
  ['1.5 / 0', {}, null],
  ['x + 1', { x: 9007199254740993n }, 9007199254740994n],
  ['x * 2', { x: 1.5 }, 3],
  ["'3' + 4", {}, 7n],
  ["'abc' + 1", {}, 1n],
  ['x - 1', { x: null }, null],
  ['9223372036854775807 + 1', {}, 9223372036854775808],
  // text
  ["'a' || 'b'", {}, 'ab'],
  ["x || 'b'", { x: null }, null],
  ['1 || 2', {}, '12'],
  ['x || 1.0', { x: 'v' }, 'v1.0'],
  ['upper(x)', { x: 'aé' }, 'AÉ'],
  ['lower(x)', { x: 'AB' }, 'ab'],
  ['length(x)', { x: 'héllo' }, 5n],
  ['length(x)', { x: null }, null],
  ['substring(x, 2, 3)', { x: 'abcdef' }, 'bcd'],
  ['substring(x, -2)', { x: 'abcdef' }, 'ef'],
  ["instr(x, 'c')", { x: 'abcabc' }, 3n],
  ["instr(x, 'z')", { x: 'abc' }, 0n],
  ['hex(x)', { x: 'ab' }, '6162'],
  ['hex(x)', { x: new Uint8Array([1, 255]) }, '01FF'],
  ['base64(x)', { x: 'hi' }, 'aGk='],
  ["typeof(uuid_blob('6ba7b810-9dad-11d1-80b4-00c04fd430c8'))", {}, 'blob'],
  ["hex(uuid_blob('6ba7b810-9dad-11d1-80b4-00c04fd430c8'))", {}, '6BA7B8109DAD11D180B400C04FD430C8'],
  ['typeof(x)', { x: 1n }, 'integer'],
  ['typeof(x)', { x: 1 }, 'real'],
  ['typeof(x)', { x: 'a' }, 'text'],
  ['typeof(x)', { x: null }, 'null'],
  ["ifnull(x, 'd')", { x: null }, 'd'],
  ["iif(x > 1, 'big', 'small')", { x: 2n }, 'big'],
  // casts
  ['CAST(x AS text)', { x: 12n }, '12'],
  ['CAST(x AS text)', { x: 2.0 }, '2.0'],
  ['CAST(x AS integer)', { x: '12abc' }, 12n],
  ['CAST(x AS integer)', { x: -2.7 }, -2n],
  ['CAST(x AS real)', { x: '2.5' }, 2.5],
  ['CAST(x AS numeric)', { x: '42' }, 42n],
  ['CAST(x AS numeric)', { x: '4.5' }, 4.5],
  ['typeof(CAST(x AS blob))', { x: 'a' }, 'blob'],
  ['x::integer', { x: '7' }, 7n],
  ["typeof(X'01ff')", {}, 'blob'],
  // JSON
  ["j -> 'a'", { j: json }, '{"b.c":1,"b":{"c":2}}'],
  ["j ->> 'a.b.c'", { j: json }, 2n],
  ["j ->> '$.a.b.c'", { j: json }, 2n],
  ['j ->> \'$.a."b.c"\'', { j: json }, 1n],
  ["j -> '$.arr[1]'", { j: json }, '2.5'],
  ["j ->> '$.arr[2]'", { j: json }, 'x'],
  ["j ->> '$.arr[4]'", { j: json }, 1n],
  ["j ->> '$.arr[5]'", { j: json }, '{"k":[]}'],
  ["j ->> '$.big'", { j: json }, 12345678901234567890n],
  ["j ->> 'missing'", { j: json }, null],
  ["j ->> 'a'", { j: 'not json' }, null],
  ["json_extract(j, '$.a.b.c')", { j: json }, 2n],
  ["json_extract(j, '$.a.b.c', '$.arr[0]')", { j: json }, '[2,1]'],
  ["json_array_length(j, '$.arr')", { j: json }, 6n],
  ['json_array_length(x)', { x: '[1,2]' }, 2n],
  ["json_keys(j -> 'a')", { j: json }, '["b.c","b"]'],
  ['json_valid(x)', { x: '{"a":1}' }, 1n],
  ['json_valid(x)', { x: '{a:1}' }, 0n],
  ['x IN \'["a","b"]\'', { x: 'b' }, 1n],
  ['x IN \'["a","b"]\'', { x: 'c' }, 0n],
  ['x IN (1, 2, 3)', { x: 2n }, 1n],
  ['x NOT IN (1, 2)', { x: 3n }, 1n],
  ['x IN (1, NULL)', { x: 3n }, null],
  // time
  ["datetime(x, 'unixepoch')", { x: 1755595260n }, '2025-08-19 09:21:00'],
  ['datetime(x)', { x: '2025-08-19T09:21:00.123+02:00' }, '2025-08-19 07:21:00'],
  ['unixepoch(x)', { x: '2025-08-19 09:21:00Z' }, 1755595260n],
  ["unixepoch(x, 'subsec')", { x: '2025-08-19 09:21:00.5' }, 1755595260.5],
  ["datetime('now')", {}, null],
  ['now()', {}, null],
  // geometry (PostGIS hex EWKB, SRID 4326)
  ['st_astext(g)', { g: '0101000020E6100000000000000000F03F0000000000000040' }, 'POINT(1 2)'],
  [
    'st_asgeojson(g)',
    { g: '0101000020E6100000000000000000F03F0000000000000040' },
    '{"type":"Point","coordinates":[1,2]}',
  ],
  ['st_x(g)', { g: '0101000020E6100000000000000000F03F0000000000000040' }, 1],
  ['st_y(g)', { g: '0101000020E6100000000000000000F03F0000000000000040' }, 2],
  ['st_x(g)', { g: 'zz' }, null],
];

describe('expressions evaluate with SQLite semantics', () => {
  it.each(CASES)('%s with %o', (expr, row, expected) => {
    expect(evaluate(expr, row)).toEqual(expected === undefined ? null : expected);
  });

  it('edition 1 reads dots in ->> keys as a path, edition 2 as a literal key', () => {
    expect(evaluate("j ->> 'a.b.c'", { j: json }, 1)).toBe(2n);
    expect(evaluate("j ->> 'a.b.c'", { j: json }, 2)).toBeNull();
    expect(evaluate("j ->> 'a.b'", { j: json }, 1)).toBe('{"c":2}');
    expect(evaluate("j -> 'a' ->> 'b.c'", { j: json }, 2)).toBe(1n);
    expect(evaluate("j -> 'a' ->> 'b.c'", { j: json }, 1)).toBe(2n);
  });
});

describe('data queries', () => {
  const config = (yaml: string, options = {}) => {
    const result = parseSyncConfig(yaml, options);
    expect(result.diagnostics).toEqual([]);
    return result.config!;
  };

  it('* skips columns starting with _ and drops BLOBs; data keeps INTEGER and REAL apart', () => {
    const c = config('bucket_definitions:\n  g:\n    data: [SELECT * FROM t]\n');
    expect(c.evaluateRow(todos, { id: 'a', n: 1n, r: 1.0, _hidden: 'x', b: new Uint8Array([1]), s: null })).toEqual([
      { bucket: 'g[]', table: 't', id: 'a', data: { id: 'a', n: 1n, r: 1.0, s: null } },
    ]);
  });

  it('aliases name output columns and the output table; ids are stringified', () => {
    const c = config(
      'bucket_definitions:\n  g:\n    data:\n      - SELECT n AS id, title AS name, _x FROM todos AS tasks\n',
    );
    expect(c.evaluateRow({ schema: 'public', name: 'todos' }, { n: 42n, title: 'T', _x: 1n })).toEqual([
      { bucket: 'g[]', table: 'tasks', id: '42', data: { id: 42n, name: 'T', _x: 1n } },
    ]);
  });

  it('unquoted identifiers are lower-cased, quoted ones keep their case', () => {
    const c = config('bucket_definitions:\n  g:\n    data: [\'SELECT id, "Title", Name FROM "Todos"\']\n');
    expect(c.evaluateRow({ schema: 'public', name: 'Todos' }, { id: '1', Title: 'A', name: 'b', Name: 'c' })).toEqual([
      { bucket: 'g[]', table: 'Todos', id: '1', data: { id: '1', Title: 'A', name: 'b' } },
    ]);
    expect(c.tableIsRelevant({ schema: 'public', name: 'todos' })).toBe(false);
  });

  it('schema-qualified names and the default schema', () => {
    const c = config('bucket_definitions:\n  g:\n    data:\n      - SELECT * FROM other.t\n      - SELECT * FROM u\n', {
      defaultSchema: 'app',
    });
    expect(c.sourceTables).toEqual([
      { schema: 'other', name: 't', isWildcard: false },
      { schema: 'app', name: 'u', isWildcard: false },
    ]);
    expect(c.evaluateRow({ schema: 'other', name: 't' }, { id: '1' })).toHaveLength(1);
    expect(c.evaluateRow({ schema: 'public', name: 't' }, { id: '1' })).toHaveLength(0);
  });

  it('wildcard tables expose _table_suffix and use the real table name', () => {
    const c = config(
      'bucket_definitions:\n  g:\n    parameters: SELECT request.user_id() AS u\n    data: [\'SELECT id, _table_suffix AS region FROM "todos_%" WHERE owner = bucket.u\']\n',
    );
    expect(c.sourceTables).toEqual([{ schema: 'public', name: 'todos_', isWildcard: true }]);
    expect(c.evaluateRow({ schema: 'public', name: 'todos_eu' }, { id: '1', owner: 'u1' })).toEqual([
      { bucket: 'g["u1"]', table: 'todos_eu', id: '1', data: { id: '1', region: 'eu' } },
    ]);
    expect(c.tableIsRelevant({ schema: 'public', name: 'todo' })).toBe(false);
  });

  it('WHERE bindings: =, IN over a JSON array, AND, OR, filters; NULL binds nothing', () => {
    const c = config(
      [
        'bucket_definitions:',
        '  g:',
        '    parameters: SELECT request.user_id() AS u',
        '    data:',
        '      - SELECT id FROM t WHERE (owner = bucket.u OR bucket.u IN shared_with) AND archived = 0',
      ].join('\n'),
    );
    const buckets = (row: SqliteRow) =>
      c.evaluateRow(todos, { id: 'x', archived: 0n, ...row }).map((r) => (r as EvaluatedRow).bucket);
    expect(buckets({ owner: 'a', shared_with: '["b","a",null,"c"]' })).toEqual(['g["a"]', 'g["b"]', 'g["c"]']);
    expect(buckets({ owner: null, shared_with: null })).toEqual([]);
    expect(buckets({ owner: 'a', shared_with: null, archived: 1n })).toEqual([]);
  });

  it('several parameters keep the first parameter query order', () => {
    const c = config(
      [
        'bucket_definitions:',
        '  b:',
        '    parameters: SELECT org_id AS org, user_id AS u FROM members WHERE user_id = request.user_id()',
        '    data:',
        '      - SELECT id FROM t WHERE t.u = bucket.u AND t.o = bucket.org',
      ].join('\n'),
    ).evaluateRow(todos, { id: 'x', u: 'u1', o: 3n });
    expect(c).toMatchObject([{ bucket: 'b[3,"u1"]' }]);
  });

  it('bucket ids render REAL integral values like integers', () => {
    const c = config(
      'bucket_definitions:\n  b:\n    parameters: SELECT 314 AS a, 3.14 AS b\n    data: [SELECT id FROM t WHERE x = bucket.a AND y = bucket.b]\n',
    );
    expect(c.evaluateRow(todos, { id: '1', x: 314, y: 3.14 })).toMatchObject([{ bucket: 'b[314,3.14]' }]);
    expect(c.evaluateRow(todos, { id: '1', x: 314n, y: 3.14 })).toMatchObject([{ bucket: 'b[314,3.14]' }]);
  });

  it('a row without an id yields an error naming table, row and definition', () => {
    const c = config('bucket_definitions:\n  g:\n    data: [SELECT * FROM t]\n');
    expect(c.evaluateRow(todos, { name: 'x' })).toEqual([
      {
        error:
          'Could not evaluate row public.t id=(no id) for "g": the query output has no id (select an id column, or name an expression AS id)',
      },
    ]);
  });

  it('versioned ids get the config id prefix in edition 2 only', () => {
    const yaml = (edition: number) =>
      `config:\n  edition: ${edition}\nbucket_definitions:\n  g:\n    data: [SELECT * FROM t]\n`;
    expect(config(yaml(2), { configId: '7' }).evaluateRow(todos, { id: '1' })).toMatchObject([{ bucket: '7#g[]' }]);
    expect(config(yaml(1), { configId: '7' }).evaluateRow(todos, { id: '1' })).toMatchObject([{ bucket: 'g[]' }]);
  });

  it('event definitions evaluate payloads', () => {
    const c = config(
      'streams:\n  s:\n    query: SELECT * FROM t\nevent_definitions:\n  write_checkpoints:\n    payloads:\n      - SELECT user_id, checkpoint FROM checkpoints WHERE checkpoint > 0\n',
    );
    const event = c.eventDefinitions[0]!;
    expect(event.firesFor({ schema: 'public', name: 'checkpoints' })).toBe(true);
    expect(c.tableIsRelevant({ schema: 'public', name: 'checkpoints' })).toBe(false);
    expect(c.sourceTables.map((t) => t.name)).toEqual(['t', 'checkpoints']);
    expect(
      event.evaluatePayload({ schema: 'public', name: 'checkpoints' }, { user_id: 'u', checkpoint: 5n, x: 1n }),
    ).toEqual([{ user_id: 'u', checkpoint: 5n }]);
  });
});

describe('valueKey', () => {
  it('is equal for two values exactly when sameValue holds', async () => {
    const fc = (await import('fast-check')).default;
    const { sameValue, valueKey } = await import('../src/sqlite-value.js');
    const value = fc.oneof(
      fc.constant(null),
      fc.integer({ min: -5, max: 5 }),
      fc.integer({ min: -5, max: 5 }).map((n) => BigInt(n)),
      fc.double({ noNaN: true, min: -5, max: 5 }),
      fc.constantFrom('1', '', 'a', 'n:1'),
      fc.uint8Array({ maxLength: 2 }),
    );
    fc.assert(
      fc.property(value, value, (a, b) => (valueKey(a) === valueKey(b)) === sameValue(a, b)),
      { numRuns: 2000 },
    );
  });
});
