import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const bin = path.resolve(import.meta.dirname, '../bin/bucketsync');
const fixture = (name: string) => path.resolve(import.meta.dirname, 'fixtures', name);
const config = fixture('sync-config.yaml');

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(args: string[]): Promise<Outcome> {
  try {
    const { stdout, stderr } = await exec(bin, args);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as Outcome;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

describe('bucketsync validate (built CLI)', () => {
  it('prints warnings as file:line:col severity message and exits 0', async () => {
    const { code, stdout } = await run(['validate', config]);
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([
      `${config}:14:12 warning Potentially dangerous query: stream "list_todos" selects rows using only client-supplied parameters, which any user can change. Also filter on an authenticated value (the user id or a token claim), or set accept_potentially_dangerous_queries: true if every user may see this data.`,
    ]);
  });

  it('exits 1 on a fatal error, with its position inside the block scalar', async () => {
    const file = fixture('invalid-sync-config.yaml');
    const { code, stdout } = await run(['validate', file]);
    expect(code).toBe(1);
    expect(lines(stdout)).toEqual([
      `${file}:8:11 fatal LIMIT is not supported: a sync query selects every matching row; filter with WHERE instead.`,
    ]);
  });

  it('exits 1 with a positioned message, not a stack trace, on 2,000 nested function calls', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bucketsync-validate-'));
    const file = path.join(dir, 'deep.yaml');
    const prefix = 'SELECT * FROM t WHERE id = ';
    writeFileSync(file, `streams:\n  s:\n    query: ${prefix}${'upper('.repeat(2000)}x${')'.repeat(2000)}\n`);
    try {
      const { code, stdout, stderr } = await run(['validate', file]);
      expect(code).toBe(1);
      const column = '    query: '.length + 1 + prefix.length + 100 * 'upper('.length + 5;
      expect(lines(stdout)).toEqual([
        `${file}:3:${column} fatal Brackets are nested more than 100 levels deep (the sync config nesting limit): simplify the expression, e.g. use x IN (a, b, c) instead of a long OR chain, split it into several queries, or compute the value in the source database.`,
      ]);
      expect(stderr).not.toContain('RangeError');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits 2 with usage on bad arguments', async () => {
    const missing = await run(['validate']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('bucketsync validate: missing the sync config file.');
    expect(missing.stderr).toContain('Usage: bucketsync validate <sync-config.yaml>');
    const unreadable = await run(['validate', fixture('nope.yaml')]);
    expect(unreadable.code).toBe(2);
    expect(unreadable.stderr).toContain('cannot read');
  });
});

describe('bucketsync eval-row (built CLI)', () => {
  it('prints bucket tuples with exact integers and REAL kept apart', async () => {
    const row = '{"id":"t1","owner_id":"u1","list_id":"l1","n":12345678901234567890,"r":1.0,"_x":1}';
    const { code, stdout } = await run(['eval-row', config, '--table', 'todos', '--row', row]);
    expect(code).toBe(0);
    const data = '{"id":"t1","owner_id":"u1","list_id":"l1","n":12345678901234567890,"r":1.0}';
    expect(lines(stdout)).toEqual([
      `{"bucket":"by_user[\\"u1\\"]","table":"todos","id":"t1","data":${data}}`,
      `{"bucket":"list_todos|0[\\"l1\\"]","table":"todos","id":"t1","data":${data}}`,
    ]);
  });

  it('prints parameter-index entries for schema-qualified tables', async () => {
    const { code, stdout } = await run([
      'eval-row',
      config,
      '--table=public.members',
      '--row={"id":1,"user_id":"u1","team_id":"t1"}',
    ]);
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual(['{"lookup":["by_team","0","u1"],"outputs":[{"team_id":"t1"}]}']);
  });

  it.each([
    [['eval-row', config, '--row', '{}'], 'missing --table'],
    [['eval-row', config, '--table', 't'], 'missing --row'],
    [['eval-row', config, '--table', 'a.b.c', '--row', '{}'], '--table "a.b.c" is not schema.table or table'],
    [['eval-row', config, '--table', 't', '--row', '{bad'], '--row is not valid JSON'],
    [['eval-row', config, '--tabel', 't'], 'unknown option --tabel'],
  ])('%j -> exit 2: %s', async (args, message) => {
    const { code, stderr } = await run(args);
    expect(code).toBe(2);
    expect(stderr).toContain(message);
    expect(stderr).toContain('Usage: bucketsync eval-row');
  });
});

describe('bucketsync buckets (built CLI)', () => {
  it('prints buckets with priorities and reasons, then stream errors', async () => {
    const { code, stdout, stderr } = await run([
      'buckets',
      config,
      '--claims',
      '{"sub":"u1"}',
      '--streams',
      '{"subscriptions":[{"stream":"list_todos","parameters":{"list":"l1"}},{"stream":"list_todos","parameters":{}}]}',
      '--lookup',
      '{"[\\"by_team\\", \\"0\\", \\"u1\\"]":[{"team_id":"t1"}]}',
    ]);
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([
      '{"bucket":"by_user[\\"u1\\"]","priority":3,"subscriptions":[]}',
      '{"bucket":"by_team[\\"t1\\"]","priority":1,"subscriptions":[]}',
      '{"bucket":"list_todos|0[\\"l1\\"]","priority":3,"subscriptions":[{"sub":0}]}',
      '{"stream":"list_todos","subscription":1,"error":"The subscription parameter \\"list\\" is missing: pass it in the subscription\'s parameters."}',
    ]);
    expect(stderr).not.toContain('no --lookup results');
  });

  it('notes lookups without results', async () => {
    const { code, stdout, stderr } = await run(['buckets', config, '--claims', '{"sub":"u2"}', '--params', '{}']);
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual(['{"bucket":"by_user[\\"u2\\"]","priority":3,"subscriptions":[]}']);
    expect(stderr).toContain('note: no --lookup results for ["by_team","0","u2"]');
  });

  it.each([
    [['buckets', config], 'missing --claims'],
    [['buckets', config, '--claims', '[1]'], '--claims must be a JSON object'],
    [['buckets', config, '--claims', '{}', '--lookup', '{"x":[]}'], '--lookup is not valid JSON'],
    [['buckets', config, '--claims', '{}', '--lookup', '{"[1]":[]}'], '--lookup key [1] is not a lookup'],
  ])('%j -> exit 2: %s', async (args, message) => {
    const { code, stderr } = await run(args);
    expect(code).toBe(2);
    expect(stderr).toContain(message);
    expect(stderr).toContain('Usage: bucketsync buckets');
  });
});
