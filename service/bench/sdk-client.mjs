// One @powersync/node client in its own process, for sdk-bench.mjs: connects over HTTP with the
// SDK's defaults, waits for the first complete sync, and prints what it measured as one JSON line.
// Env: ENDPOINT, TOKEN, DB_DIR, EXPECT_ROWS.
import { column, PowerSyncDatabase, Schema, SyncStreamConnectionMethod, Table } from '@powersync/node';

// The same table as the web SDK's test page (scripts/browser-tests/src/main.ts).
const schema = new Schema({
  todos: new Table({ owner: column.text, description: column.text, done: column.integer, server_note: column.text }),
});
const db = new PowerSyncDatabase({
  schema,
  database: { dbFilename: `sdk-bench-${process.pid}.db`, dbLocation: process.env.DB_DIR },
  logger: { log: (r) => (r.level >= 50 ? process.stderr.write(`sdk: ${r.message} ${r.error ?? ''}\n`) : undefined) },
});
let maxRssKb = 0;
const rss = setInterval(() => (maxRssKb = Math.max(maxRssKb, process.memoryUsage.rss() / 1024)), 100);
const started = performance.now();
await db.connect(
  {
    fetchCredentials: async () => ({ endpoint: process.env.ENDPOINT, token: process.env.TOKEN }),
    uploadData: async () => {},
  },
  { connectionMethod: SyncStreamConnectionMethod.HTTP },
);
await db.waitForFirstSync();
const seconds = (performance.now() - started) / 1000;
const { count } = await db.get('SELECT count(*) AS count FROM todos');
clearInterval(rss);
process.stdout.write(`${JSON.stringify({ seconds, rows: count, maxRssKb: Math.round(maxRssKb) })}\n`);
await db.disconnectAndClear();
await db.close();
process.exit(Number(count) === Number(process.env.EXPECT_ROWS) ? 0 : 3);
