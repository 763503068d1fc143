import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectPostgres, loadPostgresTypes, PostgresTypeDecoder } from '../src/index.js';

const rawText = { getTypeParser: () => (value: string) => value };

describeIntegration('postgres', 'Postgres values decoded from a real server', (url) => {
  let client: pg.Client;
  beforeAll(async () => {
    client = await connectPostgres({ uri: url });
    await client.query(`
      DROP SCHEMA IF EXISTS type_decoding CASCADE;
      CREATE SCHEMA type_decoding;
      SET search_path = type_decoding;
      CREATE TYPE mood AS ENUM ('happy', 'sad');
      CREATE DOMAIN positive_int AS int8 CHECK (VALUE > 0);
      CREATE TABLE everything (
        id int8 PRIMARY KEY, i2 int2, r4 float4, r8 float8, n numeric, b bool, t text, v varchar(10),
        u uuid, j json, jb jsonb, d date, ts timestamp(3), tstz timestamptz, by bytea, m mood, p positive_int,
        ai int4[], at text[], am mood[], ajb jsonb[], pt point, iv interval
      );
      INSERT INTO everything VALUES (
        9223372036854775807, -3, 1.5, 0.1, 123456789012345678901234567890.12345, true, 'x"y', 'short',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"big": 12345678901234567890}', '{"b": [1, 2]}',
        '2025-08-19', '2025-08-19 09:21:00.123', '2025-08-19 11:21:00.123456+02', '\\x0102', 'sad', 7,
        '{1,NULL,3}', '{"a,b",NULL}', '{happy,sad}', ARRAY['{"k": 1}'::jsonb], '(1,2)', '1 day 2 hours'
      );
    `);
  });
  afterAll(async () => {
    await client.query('DROP SCHEMA type_decoding CASCADE');
    await client.end();
  });

  it('maps every column type as the sync config spec says', async () => {
    const result = await client.query({ text: 'SELECT * FROM type_decoding.everything', types: rawText });
    const decoder = new PostgresTypeDecoder({ edition: 1 });
    await loadPostgresTypes(
      client,
      decoder,
      result.fields.map((f) => f.dataTypeID),
    );
    const row = Object.fromEntries(
      result.fields.map((f) => [f.name, decoder.decoder(f.dataTypeID)(result.rows[0][f.name] as string)]),
    );
    expect(row).toEqual({
      id: 9223372036854775807n,
      i2: -3n,
      r4: 1.5,
      r8: 0.1,
      n: '123456789012345678901234567890.12345',
      b: 1n,
      t: 'x"y',
      v: 'short',
      u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      j: '{"big": 12345678901234567890}',
      jb: '{"b": [1, 2]}',
      d: '2025-08-19',
      ts: '2025-08-19 09:21:00.123',
      tstz: '2025-08-19 09:21:00.123456Z',
      by: new Uint8Array([1, 2]),
      m: 'sad',
      p: 7n,
      ai: '[1,null,3]',
      at: '["a,b",null]',
      am: '["happy","sad"]',
      ajb: '[{"k": 1}]',
      pt: '(1,2)',
      iv: 'P1DT2H',
    });
  });
});
