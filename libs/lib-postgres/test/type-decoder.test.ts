import { describe, expect, it } from 'vitest';
import { parseArrayLiteral, PgOid, PostgresTypeDecoder } from '../src/index.js';

describe('array literals', () => {
  it.each([
    ['{}', []],
    ['{1,2,3}', ['1', '2', '3']],
    ['{NULL,"NULL",x}', [null, 'NULL', 'x']],
    ['{"a b","c\\"d","e\\\\f",""}', ['a b', 'c"d', 'e\\f', '']],
    [
      '{{1,2},{3,4}}',
      [
        ['1', '2'],
        ['3', '4'],
      ],
    ],
    ['[0:1]={7,8}', ['7', '8']],
    ['{"{x}",y}', ['{x}', 'y']],
  ])('parses %s', (literal, expected) => {
    expect(parseArrayLiteral(literal)).toEqual(expected);
  });

  it('parses box arrays with their ";" delimiter', () => {
    expect(parseArrayLiteral('{(1,1),(0,0);(2,2),(1,1)}', ';')).toEqual(['(1,1),(0,0)', '(2,2),(1,1)']);
  });

  it.each(['{1,2', '1,2}', '{"a}', '{1}x'])('rejects %s with the offset', (literal) => {
    expect(() => parseArrayLiteral(literal)).toThrow(/invalid array literal at offset \d+/);
  });
});

describe('Postgres type decoding', () => {
  const edition1 = new PostgresTypeDecoder({ edition: 1 });
  const edition2 = new PostgresTypeDecoder({ edition: 2 });
  const decode = (oid: number, text: string, decoder = edition1) => decoder.decoder(oid)(text);

  it('maps integers to exact INTEGER (bigint), including beyond 2^53', () => {
    expect(decode(PgOid.int2, '-5')).toBe(-5n);
    expect(decode(PgOid.int4, '2147483647')).toBe(2147483647n);
    expect(decode(PgOid.int8, '9223372036854775807')).toBe(9223372036854775807n);
  });

  it('maps floats to REAL, NaN to NULL, keeps infinities', () => {
    expect(decode(PgOid.float8, '3')).toBe(3);
    expect(decode(PgOid.float4, '1.5')).toBe(1.5);
    expect(decode(PgOid.float8, 'NaN')).toBeNull();
    expect(decode(PgOid.float8, '-Infinity')).toBe(-Infinity);
  });

  it('keeps numeric exact as TEXT', () => {
    expect(decode(PgOid.numeric, '12345678901234567890.000000000000000001')).toBe(
      '12345678901234567890.000000000000000001',
    );
  });

  it('maps booleans to 1 / 0', () => {
    expect(decode(PgOid.bool, 't')).toBe(1n);
    expect(decode(PgOid.bool, 'f')).toBe(0n);
  });

  it('maps bytea (hex output) to BLOB', () => {
    expect(decode(PgOid.bytea, '\\x00ff10')).toEqual(new Uint8Array([0, 255, 16]));
  });

  it('keeps json, jsonb, uuid, text, date and enums as text, unchanged', () => {
    expect(decode(PgOid.jsonb, '{"a": 12345678901234567890}')).toBe('{"a": 12345678901234567890}');
    expect(decode(PgOid.uuid, '6f1c1e3a-0000-4000-8000-000000000001')).toBe('6f1c1e3a-0000-4000-8000-000000000001');
    expect(decode(PgOid.date, '2025-08-19')).toBe('2025-08-19');
    expect(decode(99999, 'happy')).toBe('happy');
  });

  it('formats timestamptz per edition, keeping microseconds', () => {
    expect(decode(PgOid.timestamptz, '2025-08-19 09:21:00.123456+00')).toBe('2025-08-19 09:21:00.123456Z');
    expect(decode(PgOid.timestamptz, '2025-08-19 09:21:00+00', edition2)).toBe('2025-08-19T09:21:00Z');
    expect(decode(PgOid.timestamp, '2025-08-19 09:21:00.5', edition2)).toBe('2025-08-19T09:21:00.5');
  });

  it('renders arrays as JSON text with typed elements', () => {
    expect(decode(1007, '{1,NULL,3}')).toBe('[1,null,3]');
    expect(decode(1016, '{9223372036854775807}')).toBe('[9223372036854775807]');
    expect(decode(1000, '{t,f}')).toBe('[true,false]');
    expect(decode(1009, '{"a b",c}')).toBe('["a b","c"]');
    expect(decode(1231, '{1.50,NaN}')).toBe('[1.50,"NaN"]');
    expect(decode(3807, '{"{\\"a\\": 1}"}')).toBe('[{"a": 1}]');
    expect(decode(1007, '{{1,2},{3,4}}')).toBe('[[1,2],[3,4]]');
    expect(decode(1185, '{"2025-08-19 09:21:00+00"}', edition2)).toBe('["2025-08-19T09:21:00Z"]');
  });

  it('decodes a domain as its base type and an array of enums as strings once registered', () => {
    const decoder = new PostgresTypeDecoder({ edition: 1 });
    expect(decoder.unknownOids([PgOid.int4, 50001, 50002, 50003])).toEqual([50001, 50002, 50003]);
    decoder.registerTypes([
      {
        oid: 50001,
        name: 'positive_int',
        kind: 'd',
        category: 'N',
        elementOid: 0,
        baseOid: PgOid.int8,
        delimiter: ',',
      },
      { oid: 50002, name: 'mood', kind: 'e', category: 'E', elementOid: 0, baseOid: 0, delimiter: ',' },
      { oid: 50003, name: '_mood', kind: 'b', category: 'A', elementOid: 50002, baseOid: 0, delimiter: ',' },
    ]);
    expect(decoder.decoder(50001)('42')).toBe(42n);
    expect(decoder.decoder(50003)('{happy,sad}')).toBe('["happy","sad"]');
  });

  it('does not mistake a type with an element type for an array (point)', () => {
    const decoder = new PostgresTypeDecoder({ edition: 1 });
    decoder.registerTypes([
      { oid: 600, name: 'point', kind: 'b', category: 'G', elementOid: PgOid.float8, baseOid: 0, delimiter: ',' },
    ]);
    expect(decoder.decoder(600)('(1,2)')).toBe('(1,2)');
  });
});
