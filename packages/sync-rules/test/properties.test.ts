import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatBucketId,
  parseBucketId,
  parseSyncConfig,
  rowToJson,
  type SqliteRow,
  type SqliteValue,
} from '../src/index.js';

const sqliteValue: fc.Arbitrary<SqliteValue> = fc.oneof(
  fc.constant(null),
  fc.string(),
  fc.double(),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.uint8Array({ maxLength: 8 }),
  fc.constantFrom('[1,2,"a"]', '{"a":{"b":[1,2]}}', '2025-08-19 09:21:00', '["x",null]', 'not json', ''),
);

const columns = ['id', 'owner', 'n', 'j', 'tags', '_hidden', 'x'];
const row: fc.Arbitrary<SqliteRow> = fc.dictionary(fc.constantFrom(...columns), sqliteValue);

const CONFIG = `
bucket_definitions:
  by_user:
    parameters: SELECT request.user_id() AS u
    data:
      - SELECT * FROM t WHERE owner = bucket.u
      - SELECT id, n * 2 + 1 AS m, n / 0 AS z, j ->> 'a' AS a, upper(x) || '!' AS s, CAST(n AS text) AS nt FROM t WHERE bucket.u IN tags AND (n > 0 OR j -> '$.a.b' IS NOT NULL)
  members:
    parameters: SELECT n AS team FROM t WHERE owner = request.user_id() AND x IN tags
    data:
      - SELECT id, json_extract(j, '$.a.b[1]') AS b, substring(x, n, 2) AS sub, length(j) AS len, typeof(n) AS tn FROM t WHERE n = bucket.team
streams:
  s:
    query: SELECT * FROM t WHERE tags && auth.parameter('tags') AND id IN (SELECT x FROM t WHERE owner = auth.user_id())
`;

describe('properties', () => {
  const { config, diagnostics } = parseSyncConfig(CONFIG);

  it('the property config compiles', () => {
    expect(diagnostics).toEqual([]);
  });

  it('row evaluation never throws and is deterministic', () => {
    fc.assert(
      fc.property(row, (r) => {
        const table = { schema: 'public', name: 't' };
        const first = config!.evaluateRow(table, r);
        const second = config!.evaluateRow(table, { ...r });
        expect(second).toEqual(first);
        const params = config!.evaluateParameterRow(table, r);
        expect(config!.evaluateParameterRow(table, r)).toEqual(params);
        for (const item of first) {
          if ('error' in item) expect(item.error).toMatch(/^Could not evaluate row public\.t id=/);
          else {
            expect(() => parseBucketId(item.bucket)).not.toThrow();
            expect(typeof rowToJson(item.data)).toBe('string');
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('every generated bucket id round-trips through its parser', () => {
    const parameter = fc.oneof(
      fc.string(),
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Object.is(d, -0)),
    );
    const name = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_-]{0,10}$/);
    fc.assert(
      fc.property(
        fc.option(fc.stringMatching(/^[0-9a-z]{1,6}$/), { nil: undefined }),
        name,
        fc.option(fc.nat(20), { nil: undefined }),
        fc.array(parameter, { maxLength: 4 }),
        (configId, definition, variant, parameters) => {
          const id = formatBucketId({ configId, definition, variant, parameters });
          const parsed = parseBucketId(id);
          expect(formatBucketId(parsed)).toBe(id);
          expect(parsed.definition).toBe(definition);
          expect(parsed.variant).toBe(variant);
          expect(parsed.configId).toBe(configId);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('evaluated bucket ids round-trip', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.bigInt(), fc.double({ noNaN: true, noDefaultInfinity: true })), (owner) => {
        const rows = config!.evaluateRow({ schema: 'public', name: 't' }, { id: '1', owner });
        for (const r of rows) if ('bucket' in r) expect(formatBucketId(parseBucketId(r.bucket))).toBe(r.bucket);
      }),
    );
  });
});
