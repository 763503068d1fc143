// Row evaluation throughput of the sync config engine (not a test): `pnpm run bench` in this
// package, after a build. Prints rows/s for one `by_user` definition and for 20 definitions
// that all read the same table. Targets: >= 1,000,000 and >= 100,000 rows/s on one core.
import { performance } from 'node:perf_hooks';
import { parseSyncConfig } from '../dist/index.js';

const table = { schema: 'public', name: 'todos' };

function compile(yaml) {
  const { config, diagnostics } = parseSyncConfig(yaml);
  if (!config) throw new Error(`bench config is invalid: ${JSON.stringify(diagnostics)}`);
  return config;
}

function measure(label, config, rows, minMs = 1500) {
  let sink = 0;
  // Warm up so the JIT has compiled the closures before timing.
  for (let i = 0; i < 20000; i++) sink += config.evaluateRow(table, rows[i % rows.length]).length;
  let count = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < minMs) {
    for (let i = 0; i < 10000; i++) sink += config.evaluateRow(table, rows[i % rows.length]).length;
    count += 10000;
    elapsed = performance.now() - start;
  }
  const perSecond = Math.round((count / elapsed) * 1000);
  console.log(`${label}: ${perSecond.toLocaleString('en-US')} rows/s (${count} rows, ${sink} bucket tuples)`);
  return perSecond;
}

const rows = Array.from({ length: 1024 }, (_, i) => ({
  id: `todo-${i}`,
  owner_id: `user-${i % 97}`,
  title: `Task number ${i}`,
  done: BigInt(i % 2),
  created_at: '2025-08-19 09:21:00Z',
}));

const single = compile(`
bucket_definitions:
  by_user:
    parameters: SELECT request.user_id() AS user_id
    data:
      - SELECT * FROM todos WHERE owner_id = bucket.user_id
`);

const definitions = [];
for (let i = 0; i < 20; i++) {
  switch (i % 4) {
    case 0:
      definitions.push(
        `  d${i}:\n    parameters: SELECT request.user_id() AS u\n    data:\n      - SELECT * FROM todos WHERE owner_id = bucket.u`,
      );
      break;
    case 1:
      definitions.push(
        `  d${i}:\n    parameters: SELECT request.user_id() AS u\n    data:\n      - SELECT id, title AS name, done FROM todos WHERE owner_id = bucket.u AND done = 0`,
      );
      break;
    case 2:
      definitions.push(
        `  d${i}:\n    parameters: SELECT request.jwt() ->> 'team' AS t, request.user_id() AS u\n    data:\n      - SELECT id, upper(title) AS title FROM todos WHERE owner_id = bucket.u AND done = bucket.t`,
      );
      break;
    default:
      definitions.push(`  d${i}:\n    data:\n      - SELECT id, title FROM todos WHERE done = 1`);
  }
}
const twenty = compile(`bucket_definitions:\n${definitions.join('\n')}\n`);

const a = measure('by_user, one definition, five-column row', single, rows);
const b = measure('20 definitions on the same table', twenty, rows);
console.log(
  `targets: >= 1,000,000 rows/s (${a >= 1_000_000 ? 'met' : 'NOT met'}), >= 100,000 rows/s (${b >= 100_000 ? 'met' : 'NOT met'})`,
);
