// Row evaluation throughput of the sync config engine (not a test): `pnpm run bench` in this
// package, after a build. Prints rows/s for one `by_user` definition and for 20 definitions
// that all read the same table. Targets: >= 1,000,000 and >= 100,000 rows/s on one core.
// Knobs: BENCH_SYNC_RULES_MS (how long each scenario measures, default 1,500 ms), BENCH_SAMPLE_MS.
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseSyncConfig } from '../dist/index.js';

const MEASURE_MS = Number(process.env.BENCH_SYNC_RULES_MS ?? 1500);
const SAMPLE_MS = Number(process.env.BENCH_SAMPLE_MS ?? 250);
const WARMUP_ROWS = 20_000;
const table = { schema: 'public', name: 'todos' };
const mb = (bytes) => Math.round(bytes / 1048576);

function compile(yaml) {
  const { config, diagnostics } = parseSyncConfig(yaml);
  if (!config) throw new Error(`bench config is invalid: ${JSON.stringify(diagnostics)}`);
  return config;
}

// Results for scripts/bench.mjs (the format is described there), saved after each scenario.
const report = { bench: 'sync-rules', environment: {}, scenarios: [] };
function saveReport() {
  if (process.env.BENCH_RESULTS_FILE)
    writeFileSync(process.env.BENCH_RESULTS_FILE, `${JSON.stringify(report, null, 2)}\n`);
}

/** Evaluates `rows` round-robin for at least MEASURE_MS after a warm-up; records rows/s and RSS. */
function measure({ id, title, yaml, definitions, target }, config, rows) {
  const entry = { id, title, startedAt: new Date().toISOString(), figures: [], series: [] };
  entry.workload = {
    syncConfig: yaml.trim(),
    definitions,
    table: 'public.todos',
    rowShape: ROW_SHAPE,
    distinctRows: rows.length,
    warmUpRows: WARMUP_ROWS,
    measuredMs: `at least ${MEASURE_MS}, in rounds of 10,000 evaluateRow calls, one thread`,
  };
  let sink = 0;
  // Warm up so the JIT has compiled the closures before timing.
  for (let i = 0; i < WARMUP_ROWS; i++) sink += config.evaluateRow(table, rows[i % rows.length]).length;
  let count = 0;
  const start = performance.now();
  let elapsed = 0;
  const rss = [[0, mb(process.memoryUsage.rss())]];
  let peak = process.memoryUsage.rss();
  while (elapsed < MEASURE_MS) {
    for (let i = 0; i < 10000; i++) sink += config.evaluateRow(table, rows[i % rows.length]).length;
    count += 10000;
    elapsed = performance.now() - start;
    // Sampled between rounds: the evaluation is synchronous, a timer would never fire.
    const now = process.memoryUsage.rss();
    peak = Math.max(peak, now);
    if (elapsed - rss[rss.length - 1][0] >= SAMPLE_MS) rss.push([Math.round(elapsed), mb(now)]);
  }
  const perSecond = Math.round((count / elapsed) * 1000);
  console.log(`${title}: ${perSecond.toLocaleString('en-US')} rows/s (${count} rows, ${sink} bucket tuples)`);
  entry.figures.push(
    {
      name: 'rowsPerSecond',
      label: 'rows evaluated per second',
      value: perSecond,
      unit: 'rows/s',
      target: { min: target },
    },
    { name: 'rows', label: 'rows evaluated', value: count, unit: 'rows' },
    {
      name: 'bucketTuplesPerRow',
      label: 'bucket tuples per evaluated row',
      value: Math.round((sink / (count + WARMUP_ROWS)) * 100) / 100,
      unit: 'tuples',
    },
    { name: 'peakRssMB', label: 'peak RSS of the bench process', value: mb(peak), unit: 'MB' },
  );
  entry.series.push({ name: 'rss', label: 'RSS of the bench process', unit: 'MB', points: rss });
  entry.seconds = Math.round(elapsed) / 1000;
  report.scenarios.push(entry);
  saveReport();
  return perSecond;
}

const ROW_SHAPE = {
  id: "'todo-<i>'",
  owner_id: "'user-<i % 97>'",
  title: "'Task number <i>'",
  done: 'bigint, i % 2',
  created_at: "'2025-08-19 09:21:00Z'",
};
const rows = Array.from({ length: 1024 }, (_, i) => ({
  id: `todo-${i}`,
  owner_id: `user-${i % 97}`,
  title: `Task number ${i}`,
  done: BigInt(i % 2),
  created_at: '2025-08-19 09:21:00Z',
}));

const SINGLE = `
bucket_definitions:
  by_user:
    parameters: SELECT request.user_id() AS user_id
    data:
      - SELECT * FROM todos WHERE owner_id = bucket.user_id
`;
const single = compile(SINGLE);

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
const TWENTY = `bucket_definitions:\n${definitions.join('\n')}\n`;
const twenty = compile(TWENTY);

const a = measure(
  {
    id: 'sync-rules-one-definition',
    title: 'by_user, one definition, five-column row',
    yaml: SINGLE,
    definitions: 1,
    target: 1_000_000,
  },
  single,
  rows,
);
const b = measure(
  {
    id: 'sync-rules-twenty-definitions',
    title: '20 definitions on the same table',
    yaml: TWENTY,
    definitions: 20,
    target: 100_000,
  },
  twenty,
  rows,
);
console.log(
  `targets: >= 1,000,000 rows/s (${a >= 1_000_000 ? 'met' : 'NOT met'}), >= 100,000 rows/s (${b >= 100_000 ? 'met' : 'NOT met'})`,
);
