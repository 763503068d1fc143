import { execFile } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GOOD_TOKEN, startSyncStreamFixture, type SyncStreamFixture } from './sync-stream-fixture.js';

const bin = path.resolve(import.meta.dirname, '../bin/bucketsync-test-client');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI asynchronously (the fixture server lives in this process). */
function run(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('bucketsync-test-client fetch (built CLI against a canned sync stream)', () => {
  let fixture: SyncStreamFixture;
  beforeAll(async () => {
    fixture = await startSyncStreamFixture();
  });
  afterAll(async () => {
    await fixture.close();
  });
  const fetchArgs = (...extra: string[]) => ['fetch', '--endpoint', fixture.endpoint, '--token', GOOD_TOKEN, ...extra];

  it('syncs NDJSON to the first checkpoint_complete, verifies checksums and prints rows per table', async () => {
    const result = await run(fetchArgs());
    expect(result.stderr).toContain('warning: stream "shared" subscription 0: parameter list_id is missing');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      [
        'checkpoint 7, write checkpoint 3: 2 buckets, 7 ops, all checksums verified',
        'table  rows',
        'lists  2',
        'todos  1',
        '',
      ].join('\n'),
    );
  });

  it('sends the request body and headers of a fresh PowerSync client', async () => {
    const streams = '[{"stream":"shared","parameters":{"list_id":"l1"}}]';
    const result = await run(fetchArgs('--params', '{"scenario":"default","team":"t1"}', '--streams', streams));
    expect(result.code).toBe(0);
    const request = fixture.requests.at(-1)!;
    expect(request.headers.authorization).toBe(`Token ${GOOD_TOKEN}`);
    expect(request.headers.accept).toBe('application/x-ndjson');
    expect(request.body).toEqual({
      buckets: [],
      include_checksum: true,
      raw_data: true,
      binary_data: false,
      client_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      parameters: { scenario: 'default', team: 't1' },
      streams: {
        include_defaults: true,
        subscriptions: [{ stream: 'shared', parameters: { list_id: 'l1' }, override_priority: null }],
      },
    });
  });

  it('syncs the BSON stream and prints the full state with --json', async () => {
    const result = await run(fetchArgs('--bson', '--json'));
    expect(result.code).toBe(0);
    expect(fixture.requests.at(-1)!.headers.accept).toContain('application/vnd.powersync.bson-stream');
    expect(fixture.requests.at(-1)!.body.binary_data).toBe(true);
    const state = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(state).toMatchObject({
      last_op_id: '7',
      write_checkpoint: '3',
      complete: true,
      checksums_verified: true,
      buckets: [
        { bucket: 'lists["u1"]', priority: 1, checksum: -2147483634, computed_checksum: -2147483634, verified: true },
        { bucket: 'todos["u1"]', priority: 3, checksum: 50, computed_checksum: 50, ops_received: 4, last_op_id: '7' },
      ],
      row_counts: { lists: 2, todos: 1 },
      tables: {
        lists: { l1: { name: 'first, renamed' }, l2: { name: 'second' } },
        todos: { t1: { title: 'a', list_id: 'l1' } },
      },
      stream_errors: [{ stream: 'shared', subscription: 0, message: 'parameter list_id is missing' }],
      partial_completions: [1],
      token_expires_in: 3600,
      abandoned_checkpoints: 0,
    });
  });

  it('restarts its accounting when a new checkpoint arrives before completion', async () => {
    const result = await run(fetchArgs('--params', '{"scenario":"restart"}', '--json'));
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      last_op_id: '7',
      checkpoints_received: 2,
      abandoned_checkpoints: 1,
      row_counts: { lists: 2, todos: 1 },
    });
  });

  it('exits 1 naming the bucket whose checksum does not match, in both formats', async () => {
    for (const format of [[], ['--bson']]) {
      const result = await run(fetchArgs('--params', '{"scenario":"mismatch"}', ...format));
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        'checksum mismatch in bucket "todos["u1"]" at checkpoint 7: the checkpoint says 51, the 4 ops received sum to 50',
      );
      expect(result.stderr).not.toContain('lists["u1"]');
      expect(result.stdout).toContain('CHECKSUM MISMATCH');
    }
  });

  it("exits 1 with the server's error code and description on an HTTP error", async () => {
    const result = await run(['fetch', '--endpoint', fixture.endpoint, '--token', 'forged']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('HTTP 401 PSYNC_S2102: The token signature does not verify.');
  });

  it('exits 1 when the stream ends before checkpoint_complete because the token expired', async () => {
    const result = await run(fetchArgs('--params', '{"scenario":"expired"}'));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('the stream ended before checkpoint_complete (the token expired');
  });

  it('exits 1 after --timeout when checkpoint_complete never arrives', async () => {
    const result = await run(fetchArgs('--params', '{"scenario":"stall"}', '--timeout', '0.5'));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('timed out after 0.5 s before checkpoint_complete (received 0/3 ops)');
  });

  it('exits 2 with the usage on bad arguments', async () => {
    const cases: [string[], string][] = [
      [['fetch', '--token', 'x'], '--endpoint is required'],
      [['fetch', '--endpoint', 'localhost:8080', '--token', 'x'], '--endpoint must be an http:// or https:// URL'],
      [fetchArgs('--params', '{oops'), '--params is not valid JSON'],
      [fetchArgs('--params', '[1]'), '--params must be a JSON object'],
      [fetchArgs('--streams', '[{"parameters":{}}]'), '--streams[0] must be an object with a "stream" name'],
      [fetchArgs('--timeout', '-1'), '--timeout must be a positive number'],
      [fetchArgs('--verbose'), 'unknown option --verbose'],
    ];
    for (const [args, message] of cases) {
      const result = await run(args);
      expect(result, args.join(' ')).toMatchObject({ code: 2 });
      expect(result.stderr).toContain(message);
      expect(result.stderr).toContain('Usage: bucketsync-test-client fetch');
    }
  });
});
