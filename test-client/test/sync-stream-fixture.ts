// A tiny node:http stand-in for the service's POST /sync/stream: canned, protocol-correct
// lines as NDJSON or BSON (by Accept), chosen by the request's `parameters.scenario`. Like
// the real service it keeps the response open after checkpoint_complete.
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serialize } from 'bson';

export const GOOD_TOKEN = 'good-token';

/** One request the fixture received. */
export interface RecordedRequest {
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

export interface SyncStreamFixture {
  endpoint: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

const put = (op_id: string, object_type: string, object_id: string, checksum: number | bigint, row: object) => ({
  op_id,
  op: 'PUT',
  object_type,
  object_id,
  checksum,
  data: JSON.stringify(row),
});

// lists["u1"]: 2147483647 + 10 + 5 wraps to -2147483634. todos["u1"]: -1 + 20 + 30 + 1 = 50.
const LISTS = { bucket: 'lists["u1"]', checksum: -2147483634, count: 3, priority: 1 };
const TODOS = { bucket: 'todos["u1"]', checksum: 50, count: 4, priority: 3 };
const STREAMS = [
  { name: 'lists', is_default: true, errors: [] },
  { name: 'shared', is_default: false, errors: [{ subscription: 0, message: 'parameter list_id is missing' }] },
];
const LISTS_DATA = {
  data: {
    bucket: LISTS.bucket,
    after: '0',
    next_after: '3',
    has_more: false,
    data: [
      put('1', 'lists', 'l1', 2147483647, { name: 'first' }),
      put('2', 'lists', 'l2', 10, { name: 'second' }),
      put('3', 'lists', 'l1', 5, { name: 'first, renamed' }),
    ],
  },
};
// 4294967295 is -1 in its unsigned form; the bigint goes out as a BSON int64.
const TODOS_DATA_1 = {
  data: {
    bucket: TODOS.bucket,
    after: '0',
    next_after: '5',
    has_more: true,
    data: [put('4', 'todos', 't1', 4294967295, { title: 'a', list_id: 'l1' }), put('5', 'todos', 't2', 20n, {})],
  },
};
const TODOS_DATA_2 = {
  data: {
    bucket: TODOS.bucket,
    after: '5',
    next_after: '7',
    has_more: false,
    data: [
      { op_id: '6', op: 'REMOVE', object_type: 'todos', object_id: 't2', checksum: 30 },
      { op_id: '7', op: 'MOVE', checksum: 1 },
    ],
  },
};

function scenario(name: unknown): object[] | 'stall' {
  const checkpoint = (last_op_id: string, buckets: object[]) => ({
    checkpoint: { last_op_id, write_checkpoint: '3', buckets, streams: STREAMS },
  });
  switch (name) {
    case 'mismatch':
      return [
        checkpoint('7', [LISTS, { ...TODOS, checksum: 51 }]),
        LISTS_DATA,
        TODOS_DATA_1,
        TODOS_DATA_2,
        { checkpoint_complete: { last_op_id: '7' } },
      ];
    case 'restart':
      // The first checkpoint is abandoned for a newer one after part of its data.
      return [
        checkpoint('3', [LISTS]),
        LISTS_DATA,
        checkpoint('7', [LISTS, TODOS]),
        TODOS_DATA_1,
        TODOS_DATA_2,
        { checkpoint_complete: { last_op_id: '7' } },
      ];
    case 'expired':
      return [checkpoint('7', [LISTS, TODOS]), LISTS_DATA, { token_expires_in: 0 }];
    case 'stall':
      return 'stall';
    default:
      return [
        { token_expires_in: 3600 },
        checkpoint('7', [LISTS, TODOS]),
        LISTS_DATA,
        { partial_checkpoint_complete: { last_op_id: '7', priority: 1 } },
        TODOS_DATA_1,
        TODOS_DATA_2,
        { checkpoint_complete: { last_op_id: '7' } },
      ];
  }
}

/** Writes each line as its own chunk(s); BSON documents are split in two to exercise framing. */
function writeLines(res: ServerResponse, lines: object[], bson: boolean): void {
  for (const line of lines) {
    if (bson) {
      const doc = serialize(line);
      res.write(doc.subarray(0, 3));
      res.write(doc.subarray(3));
    } else {
      res.write(`${JSON.stringify(line, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))}\n`);
    }
  }
}

/** Starts the fixture on a free port of 127.0.0.1. */
export async function startSyncStreamFixture(): Promise<SyncStreamFixture> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/sync/stream') {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      requests.push({ headers: req.headers, body });
      if (req.headers.authorization !== `Token ${GOOD_TOKEN}`) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: { code: 'PSYNC_S2102', status: 401, description: 'The token signature does not verify.' },
          }),
        );
        return;
      }
      const bson = (req.headers.accept ?? '').includes('application/vnd.powersync.bson-stream');
      res.writeHead(200, {
        'content-type': bson ? 'application/vnd.powersync.bson-stream' : 'application/x-ndjson',
      });
      const params = body.parameters as { scenario?: unknown } | undefined;
      const lines = scenario(params?.scenario);
      if (lines === 'stall') {
        writeLines(res, [{ checkpoint: { last_op_id: '1', buckets: [LISTS] } }], bson);
        return;
      }
      writeLines(res, lines, bson);
      if (params?.scenario === 'expired') res.end();
      // Otherwise stay open, as the service does while it waits for the next checkpoint.
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
