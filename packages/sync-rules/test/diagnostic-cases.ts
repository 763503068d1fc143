/** Sync configs with exactly one problem each, shared by the diagnostics test and the docs check. */
export interface DiagnosticCase {
  name: string;
  yaml: string;
}

const data = (sql: string): string => `bucket_definitions:\n  a:\n    data:\n      - ${sql}\n`;

export const DIAGNOSTIC_CASES: DiagnosticCase[] = [
  {
    name: 'unknown top-level key',
    yaml: `bucket_definitions:\n  a:\n    data: [SELECT * FROM t]\nbucket_definition:\n  b: {}\n`,
  },
  { name: 'no definitions', yaml: `config:\n  edition: 2\n` },
  { name: 'not a mapping', yaml: `- a\n- b\n` },
  { name: 'YAML syntax error', yaml: `bucket_definitions:\n  a:\n    data: [SELECT * FROM t\n` },
  {
    name: 'unknown bucket definition key',
    yaml: `bucket_definitions:\n  a:\n    parameter: SELECT request.user_id() AS u\n    data: [SELECT * FROM t]\n`,
  },
  { name: 'unknown stream key', yaml: `streams:\n  s:\n    query: SELECT * FROM t\n    auto_subscribed: true\n` },
  { name: 'several queries per stream', yaml: `streams:\n  s:\n    queries: [SELECT * FROM t]\n` },
  {
    name: 'unknown config option',
    yaml: `config:\n  edition: 2\n  timestamps: iso\nstreams:\n  s:\n    query: SELECT * FROM t\n`,
  },
  { name: 'bad edition', yaml: `config:\n  edition: 4\nstreams:\n  s:\n    query: SELECT * FROM t\n` },
  { name: 'with: needs edition 3', yaml: `with:\n  x: SELECT 1\nstreams:\n  s:\n    query: SELECT * FROM t\n` },
  {
    name: 'duplicate name across sections',
    yaml: `bucket_definitions:\n  lists:\n    data: [SELECT * FROM lists]\nstreams:\n  lists:\n    query: SELECT * FROM lists\n`,
  },
  {
    name: 'duplicate key',
    yaml: `bucket_definitions:\n  a:\n    data: [SELECT * FROM t]\n  a:\n    data: [SELECT * FROM u]\n`,
  },
  { name: 'invalid name', yaml: `bucket_definitions:\n  "a[1]":\n    data: [SELECT * FROM t]\n` },
  { name: 'missing data', yaml: `bucket_definitions:\n  a:\n    parameters: SELECT request.user_id() AS u\n` },
  { name: 'missing stream query', yaml: `streams:\n  s:\n    auto_subscribe: true\n` },
  { name: 'bad priority', yaml: `bucket_definitions:\n  a:\n    priority: 7\n    data: [SELECT * FROM t]\n` },
  { name: 'bad boolean', yaml: `streams:\n  s:\n    auto_subscribe: yes please\n    query: SELECT * FROM t\n` },
  { name: 'query is not a string', yaml: `bucket_definitions:\n  a:\n    data:\n      - [1, 2]\n` },
  { name: 'join in data query', yaml: data('SELECT t.* FROM t JOIN u ON t.id = u.id') },
  { name: 'comma join in data query', yaml: data('SELECT * FROM t, u') },
  { name: 'LIMIT', yaml: data('SELECT * FROM t LIMIT 10') },
  { name: 'OFFSET', yaml: data('SELECT * FROM t OFFSET 10') },
  { name: 'ORDER BY', yaml: data('SELECT * FROM t ORDER BY id') },
  { name: 'GROUP BY', yaml: data('SELECT id FROM t GROUP BY id') },
  { name: 'DISTINCT', yaml: data('SELECT DISTINCT id FROM t') },
  { name: 'several statements', yaml: data('SELECT * FROM t; SELECT * FROM u') },
  { name: 'not a SELECT', yaml: data('DELETE FROM t') },
  { name: 'UNION', yaml: data('SELECT id FROM t UNION SELECT id FROM u') },
  { name: 'unknown function', yaml: data('SELECT id, frobnicate(name) AS n FROM t') },
  { name: 'wrong argument count', yaml: data('SELECT id, upper(a, b) AS n FROM t') },
  { name: 'modulo operator', yaml: data('SELECT * FROM t WHERE n % 2 = 0') },
  { name: 'bitwise operator', yaml: data('SELECT * FROM t WHERE (n & 2) = 2') },
  { name: 'CASE expression', yaml: data('SELECT id, CASE WHEN a THEN 1 END AS x FROM t') },
  { name: 'missing id', yaml: data('SELECT name, title FROM t') },
  { name: 'expression without alias', yaml: data('SELECT id, upper(name) FROM t') },
  { name: 'unknown cast type', yaml: data('SELECT id, CAST(x AS date) AS d FROM t') },
  { name: 'unknown table qualifier', yaml: data('SELECT * FROM t WHERE u.x = 1') },
  { name: 'syntax error', yaml: data('SELECT * FROM t WHERE x = ') },
  {
    name: 'unknown bucket parameter',
    yaml: `bucket_definitions:\n  a:\n    parameters: SELECT request.user_id() AS user_id\n    data: [SELECT * FROM t WHERE owner = bucket.owner]\n`,
  },
  {
    name: 'bucket parameter not used',
    yaml: `bucket_definitions:\n  a:\n    parameters: SELECT request.user_id() AS user_id\n    data: [SELECT * FROM t WHERE archived = 0]\n`,
  },
  {
    name: 'OR sides bind different parameters',
    yaml: `bucket_definitions:\n  a:\n    parameters: SELECT request.user_id() AS u, request.jwt() ->> 'org' AS o\n    data: [SELECT * FROM t WHERE owner = bucket.u OR org = bucket.o]\n`,
  },
  {
    name: 'parameter queries output different columns',
    yaml: `bucket_definitions:\n  a:\n    parameters:\n      - SELECT request.user_id() AS user_id\n      - SELECT team_id FROM members WHERE user_id = request.user_id()\n    data: [SELECT * FROM t WHERE owner = bucket.user_id]\n`,
  },
  {
    name: 'bucket parameter in a non-equality',
    yaml: `bucket_definitions:\n  a:\n    parameters: SELECT request.user_id() AS u\n    data: [SELECT * FROM t WHERE owner > bucket.u]\n`,
  },
  { name: 'request value in data query', yaml: data('SELECT * FROM t WHERE owner = request.user_id()') },
  {
    name: 'priority twice',
    yaml: `bucket_definitions:\n  a:\n    priority: 1\n    parameters: SELECT request.user_id() AS u, 0 AS _priority\n    data: [SELECT * FROM t WHERE owner = bucket.u]\n`,
  },
  {
    name: '_priority not a literal',
    yaml: `bucket_definitions:\n  a:\n    parameters: SELECT request.user_id() AS u, 9 AS _priority\n    data: [SELECT * FROM t WHERE owner = bucket.u]\n`,
  },
  {
    name: 'star in parameter query',
    yaml: `bucket_definitions:\n  a:\n    parameters: SELECT * FROM members WHERE user_id = request.user_id()\n    data: [SELECT * FROM t]\n`,
  },
  {
    name: 'column in static parameter query',
    yaml: `bucket_definitions:\n  a:\n    parameters: SELECT team AS t\n    data: [SELECT * FROM t WHERE team = bucket.t]\n`,
  },
  {
    name: 'auth.* in bucket_definitions',
    yaml: `bucket_definitions:\n  a:\n    parameters: SELECT auth.user_id() AS u\n    data: [SELECT * FROM t WHERE owner = bucket.u]\n`,
  },
  {
    name: 'request.* in streams',
    yaml: `streams:\n  s:\n    query: SELECT * FROM t WHERE owner = request.user_id()\n`,
  },
  { name: 'subquery in bucket definition', yaml: data('SELECT * FROM t WHERE x IN (SELECT id FROM u)') },
  {
    name: 'subquery selecting two columns',
    yaml: `streams:\n  s:\n    query: SELECT * FROM t WHERE l IN (SELECT id, x FROM lists WHERE owner = auth.user_id())\n`,
  },
  {
    name: 'join in stream',
    yaml: `streams:\n  s:\n    query: SELECT t.* FROM t JOIN u ON t.x = u.x WHERE u.owner = auth.user_id()\n`,
  },
  { name: 'unknown request function', yaml: `streams:\n  s:\n    query: SELECT * FROM t WHERE owner = auth.email()\n` },
  {
    name: 'parameter name not a literal',
    yaml: `streams:\n  s:\n    query: SELECT * FROM t WHERE owner = subscription.parameter(x)\n`,
  },
  {
    name: 'mixed row and request values',
    yaml: `streams:\n  s:\n    query: SELECT * FROM t WHERE owner || 'x' > auth.user_id()\n`,
  },
  {
    name: 'potentially dangerous stream',
    yaml: `streams:\n  s:\n    query: SELECT * FROM t WHERE list = subscription.parameter('list')\n`,
  },
  {
    name: 'potentially dangerous parameter query',
    yaml: `bucket_definitions:\n  a:\n    parameters: SELECT request.parameter('project') AS p\n    data: [SELECT * FROM t WHERE project = bucket.p]\n`,
  },
  {
    name: 'unknown event definition key',
    yaml: `streams:\n  s:\n    query: SELECT * FROM t\nevent_definitions:\n  e:\n    payload: [SELECT * FROM t]\n`,
  },
];
