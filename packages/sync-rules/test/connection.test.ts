import { describe, expect, it } from 'vitest';
import {
  parseSyncConfig,
  serializeParameterLookup,
  type ConnectionRequest,
  type EvaluatedParameters,
  type SqliteRow,
  type SyncConfig,
} from '../src/index.js';

const table = (name: string) => ({ schema: 'public', name });

function compile(yaml: string): SyncConfig {
  const { config, diagnostics } = parseSyncConfig(yaml);
  expect(diagnostics.filter((d) => d.severity === 'fatal')).toEqual([]);
  return config!;
}

/** Resolves a connection, filling lookups from parameter rows as storage would. */
function buckets(config: SyncConfig, request: ConnectionRequest, rows: [string, SqliteRow][] = [], limits = {}) {
  const index = new Map<string, SqliteRow[]>();
  for (const [name, row] of rows) {
    for (const entry of config.evaluateParameterRow(table(name), row)) {
      if ('error' in entry) throw new Error(entry.error);
      const key = serializeParameterLookup(entry.lookup);
      index.set(key, [...(index.get(key) ?? []), ...entry.outputs]);
    }
  }
  const resolution = config.resolveConnection(request);
  return resolution.finish(index, limits);
}

const BUCKETS = `
bucket_definitions:
  by_user:
    parameters: SELECT request.user_id() AS user_id
    data: [SELECT * FROM todos WHERE owner_id = bucket.user_id]
  by_team:
    priority: 1
    parameters:
      - SELECT team_id FROM members WHERE members.user_id = request.user_id() AND active = 1
      - SELECT request.jwt() ->> 'home_team' AS team_id
    data:
      - SELECT * FROM tasks WHERE tasks.team_id = bucket.team_id
  by_org:
    parameters: SELECT value AS org FROM json_each(request.jwt() -> 'orgs') WHERE value != 'blocked'
    data: [SELECT * FROM orgs WHERE id = bucket.org]
  admins:
    parameters:
      - SELECT 0 AS _priority WHERE token_parameters.role = 'admin'
    data: [SELECT * FROM audit]
  projects:
    parameters: SELECT id AS project FROM projects WHERE request.user_id() IN members
    data: [SELECT * FROM tasks WHERE project_id = bucket.project]
  by_region:
    parameters: SELECT user_parameters.region AS region, request.user_id() AS u
    data: [SELECT * FROM regional WHERE region = bucket.region AND owner = bucket.u]
`;

describe('bucket_definitions: connection resolution', () => {
  const config = compile(BUCKETS);

  it('computes static, table-backed, json_each and filtered buckets with priorities', () => {
    const result = buckets(
      config,
      {
        claims: { sub: 'u1', home_team: 'home', orgs: ['o1', 'blocked', 'o2'], parameters: { role: 'admin' } },
        parameters: { region: 'eu' },
      },
      [
        ['members', { id: 'm1', user_id: 'u1', team_id: 't1', active: 1n }],
        ['members', { id: 'm2', user_id: 'u1', team_id: 't2', active: 0n }],
        ['members', { id: 'm3', user_id: 'u2', team_id: 't3', active: 1n }],
        ['projects', { id: 'p1', members: '["u1","u2"]' }],
        ['projects', { id: 'p2', members: '["u2"]' }],
      ],
    );
    expect(result.streamErrors).toEqual([]);
    expect(result.error).toBeUndefined();
    expect(result.buckets.map((b) => [b.bucket, b.priority])).toEqual([
      ['by_user["u1"]', 3],
      ['by_team["t1"]', 1],
      ['by_team["home"]', 1],
      ['by_org["o1"]', 3],
      ['by_org["o2"]', 3],
      ['admins[]', 0],
      ['projects["p1"]', 3],
      ['by_region["eu","u1"]', 3],
    ]);
  });

  it('lists the lookups to run, with a stable serialisation', () => {
    const resolution = config.resolveConnection({ claims: { sub: 'u1' }, parameters: {} });
    expect(resolution.lookups.map(serializeParameterLookup)).toEqual(['["by_team","0","u1"]', '["projects","0","u1"]']);
  });

  it('parameter rows: filters apply at index time; arrays index each element', () => {
    expect(config.tableHasParameterQueries(table('members'))).toBe(true);
    expect(config.tableHasParameterQueries(table('todos'))).toBe(false);
    expect(config.evaluateParameterRow(table('members'), { user_id: 'u1', team_id: 't1', active: 0n })).toEqual([]);
    const entries = config.evaluateParameterRow(table('projects'), {
      id: 'p',
      members: '["a","b"]',
    }) as EvaluatedParameters[];
    expect(entries.map((e) => [serializeParameterLookup(e.lookup), e.outputs])).toEqual([
      ['["projects","0","a"]', [{ project: 'p' }]],
      ['["projects","0","b"]', [{ project: 'p' }]],
    ]);
  });

  it('enforces max_buckets_per_connection and names the definitions', () => {
    const rows: [string, SqliteRow][] = Array.from({ length: 5 }, (_, i) => [
      'members',
      { user_id: 'u1', team_id: `t${i}`, active: 1n },
    ]);
    const result = buckets(config, { claims: { sub: 'u1' }, parameters: {} }, rows, { maxBuckets: 4 });
    expect(result.buckets).toEqual([]);
    expect(result.error).toBe(
      'Too many buckets for this connection: 6, more than max_buckets_per_connection (4). Buckets per definition: by_team (5), by_user (1). Narrow these definitions or raise max_buckets_per_connection.',
    );
  });

  it('enforces max_parameter_query_results and names the definitions', () => {
    const rows: [string, SqliteRow][] = Array.from({ length: 3 }, (_, i) => [
      'members',
      { user_id: 'u1', team_id: `t${i}`, active: 1n },
    ]);
    const result = buckets(config, { claims: { sub: 'u1' }, parameters: {} }, rows, { maxParameterQueryResults: 2 });
    expect(result.error).toBe(
      'Too many parameter query results for this connection: 3, more than max_parameter_query_results (2). Results per definition: by_team (3). Narrow these parameter queries or raise max_parameter_query_results.',
    );
  });
});

const STREAMS = `
streams:
  my_lists:
    auto_subscribe: true
    query: SELECT * FROM lists WHERE owner_id = auth.user_id()
  list_todos:
    priority: 1
    query: SELECT * FROM todos WHERE list_id = subscription.parameter('list')
             AND list_id IN (SELECT id FROM lists WHERE owner_id = auth.user_id())
  tagged:
    query: SELECT * FROM posts WHERE tags && auth.parameter('tags')
  picked:
    query: SELECT * FROM items WHERE id IN subscription.parameter('ids') AND org = auth.parameter('org')
  admin_or_owner:
    query: SELECT * FROM docs WHERE owner = auth.user_id() OR team = connection.parameter('team')
    accept_potentially_dangerous_queries: true
  admin_only:
    auto_subscribe: true
    query: SELECT * FROM secrets WHERE auth.parameter('role') = 'admin'
`;

describe('streams', () => {
  const config = compile(STREAMS);
  const lists: [string, SqliteRow][] = [
    ['lists', { id: 'l1', owner_id: 'u1' }],
    ['lists', { id: 'l2', owner_id: 'u2' }],
  ];

  it('row evaluation: stream bucket ids are <stream>|<variant>[...]', () => {
    expect(config.evaluateRow(table('todos'), { id: 't', list_id: 'l1' })).toMatchObject([
      { bucket: 'list_todos|0["l1"]' },
    ]);
    expect(
      config.evaluateRow(table('posts'), { id: 'p', tags: '["a","b"]' }).map((r) => ('bucket' in r ? r.bucket : r)),
    ).toEqual(['tagged|0["a"]', 'tagged|0["b"]']);
    expect(
      config.evaluateRow(table('docs'), { id: 'd', owner: 'u1', team: 'x' }).map((r) => ('bucket' in r ? r.bucket : r)),
    ).toEqual(['admin_or_owner|0["u1"]', 'admin_or_owner|1["x"]']);
    expect(config.evaluateRow(table('secrets'), { id: 's' })).toMatchObject([{ bucket: 'admin_only|0[]' }]);
  });

  it('default streams, subscriptions, override_priority, reasons and per-subscription errors', () => {
    const result = buckets(
      config,
      {
        claims: { sub: 'u1', tags: ['a'], org: 'o', role: 'user' },
        parameters: { team: 'x' },
        streams: {
          subscriptions: [
            { stream: 'list_todos', parameters: { list: 'l1' } },
            { stream: 'list_todos', parameters: { list: 'l2' } },
            { stream: 'list_todos', parameters: {}, override_priority: 0 },
            { stream: 'picked', parameters: { ids: ['i1', 'i2', 'i1'] }, override_priority: 2 },
            { stream: 'tagged', parameters: null },
            { stream: 'my_lists', parameters: null, override_priority: 0 },
            { stream: 'admin_or_owner', parameters: null },
            { stream: 'missing', parameters: null },
          ],
        },
      },
      lists,
    );
    expect(result.buckets.map((b) => [b.bucket, b.priority, b.subscriptions])).toEqual([
      ['my_lists|0["u1"]', 0, [{ default: 0 }, { sub: 5 }]],
      ['list_todos|0["l1"]', 1, [{ sub: 0 }]],
      ['picked|0["i1","o"]', 2, [{ sub: 3 }]],
      ['picked|0["i2","o"]', 2, [{ sub: 3 }]],
      ['tagged|0["a"]', 3, [{ sub: 4 }]],
      ['admin_or_owner|0["u1"]', 3, [{ sub: 6 }]],
      ['admin_or_owner|1["x"]', 3, [{ sub: 6 }]],
    ]);
    expect(result.streamErrors).toEqual([
      {
        stream: 'list_todos',
        subscription: 2,
        message: 'The subscription parameter "list" is missing: pass it in the subscription\'s parameters.',
      },
      { stream: 'missing', subscription: 7, message: expect.stringContaining('Unknown stream "missing"') },
    ]);
  });

  it('include_defaults: false skips auto_subscribe streams; request filters gate buckets', () => {
    const none = buckets(config, {
      claims: { sub: 'u1' },
      parameters: {},
      streams: { include_defaults: false, subscriptions: [] },
    });
    expect(none.buckets).toEqual([]);
    const admin = buckets(config, { claims: { sub: 'u1', role: 'admin' }, parameters: {} });
    expect(admin.buckets.map((b) => b.bucket)).toEqual(['my_lists|0["u1"]', 'admin_only|0[]']);
    const resolution = config.resolveConnection({ claims: { sub: 'u1' }, parameters: {} });
    expect(resolution.streams).toEqual([
      { name: 'my_lists', isDefault: true },
      { name: 'admin_only', isDefault: true },
    ]);
  });

  it('subqueries become parameter-index lookups', () => {
    expect(config.tableHasParameterQueries(table('lists'))).toBe(true);
    expect(config.evaluateParameterRow(table('lists'), { id: 'l1', owner_id: 'u1' })).toEqual([
      { lookup: { definition: 'list_todos', queryId: '0', values: ['u1'] }, outputs: [{ id: 'l1' }] },
    ]);
  });
});

describe('hostile subscriptions cost linear time and bounded memory', () => {
  const LISTS = `
streams:
  tagged:
    query: SELECT * FROM items WHERE list_id IN subscription.parameter('a') AND tag IN subscription.parameter('b') AND owner_id = auth.user_id()
`;
  const request = (a: unknown[], b: unknown[]): ConnectionRequest => ({
    claims: { sub: 'u1' },
    parameters: {},
    streams: { subscriptions: [{ stream: 'tagged', parameters: { a, b } }] },
  });

  it('refuses the combinations of two 3,500-value lists by counting them, without building 12 million buckets', () => {
    const config = compile(LISTS);
    const values = Array.from({ length: 3500 }, (_, i) => `v${i}`);
    const heapBefore = process.memoryUsage().heapUsed;
    const result = buckets(config, request(values, values));
    expect(result.buckets).toEqual([]);
    expect(result.error).toContain('Too many buckets for this connection: more than max_buckets_per_connection (1000)');
    expect(result.error).toContain('tagged (12250000)');
    // Building them took gigabytes; counting takes a few megabytes at most.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(200 * 1024 * 1024);
  });

  it('de-duplicates a list with a set (1 and 1.0 are one value) and caps its length', () => {
    const config = compile(LISTS);
    const dup = buckets(config, request([1, 1.0, '1', 2n, 2], ['x']));
    expect(dup.buckets.map((b) => b.bucket).sort()).toHaveLength(3); // 1, '1', 2
    const huge = config.resolveConnection(
      request(
        Array.from({ length: 10_001 }, (_, i) => i),
        ['x'],
      ),
    );
    expect(huge.finish(new Map()).streamErrors[0]?.message).toContain(
      'A list parameter has 10001 values, more than 10000',
    );
  });
});
