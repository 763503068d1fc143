import { describe, expect, it } from 'vitest';
import type { FlakyOutcome } from '../src/flaky-client.js';
import type { FlakyPlan } from '../src/flaky-plan.js';
import { classifyStream, classifyWriteCheckpoint, FlakyTally } from '../src/flaky-tally.js';

const plan = (overrides: Partial<FlakyPlan> = {}): FlakyPlan => ({
  user: 3,
  encoding: 'ndjson',
  gzip: false,
  writeCheckpoint: false,
  drop: { kind: 'after-bytes', bytes: 100_000 },
  ...overrides,
});

const outcome = (overrides: Partial<FlakyOutcome> = {}): FlakyOutcome => {
  const o: FlakyOutcome = {
    plan: plan(),
    status: 200,
    bytes: 100_352,
    end: 'dropped',
    droppedAt: 'mid-data',
    answeredAsAsked: true,
    cappedByLifetime: false,
    headersMs: 40,
    durationMs: 90,
    ...overrides,
  };
  // A complete answer was not dropped.
  if (o.end !== 'dropped') delete o.droppedAt;
  return o;
};

describe('flaky outcomes', () => {
  it('count a planned drop, a 429 and a drop before an answer as fine or expected; 5xx, resets and streams the service ended as failures', () => {
    expect(classifyStream(outcome())).toBeUndefined();
    expect(
      classifyStream(outcome({ status: undefined, end: 'dropped', droppedAt: 'before-headers', bytes: 0 })),
    ).toBeUndefined();
    expect(classifyStream(outcome({ status: 429, code: 'PSYNC_S2304', end: 'answered' }))).toEqual({
      expected: 'stream: HTTP 429 PSYNC_S2304',
    });
    expect(classifyStream(outcome({ status: 503, code: 'PSYNC_S2302', end: 'answered' }))).toEqual({
      failure: 'stream: HTTP 503 PSYNC_S2302',
    });
    expect(classifyStream(outcome({ status: 401, end: 'answered' }))).toEqual({ failure: 'stream: HTTP 401' });
    expect(classifyStream(outcome({ status: undefined, end: 'error', error: 'ECONNREFUSED' }))).toEqual({
      failure: 'ECONNREFUSED before the response headers',
    });
    expect(classifyStream(outcome({ end: 'service-ended' }))).toEqual({ failure: 'stream: ended by the service' });
    expect(classifyStream(outcome({ end: 'error', error: 'ECONNRESET' }))).toEqual({
      failure: 'stream: ECONNRESET after the headers',
    });
    expect(classifyStream(outcome({ answeredAsAsked: false }))).toEqual({
      failure: 'stream: answered in another encoding than asked',
    });
  });

  it('count write checkpoints: 200 fine, 429 and no answer within the lifetime expected, anything else a failure', () => {
    expect(classifyWriteCheckpoint({ status: 200 })).toBeUndefined();
    expect(classifyWriteCheckpoint({ status: 429, code: 'BS5005' })).toEqual({
      expected: 'write checkpoint: HTTP 429 BS5005',
    });
    expect(classifyWriteCheckpoint({ status: undefined })).toEqual({
      expected: 'write checkpoint: no answer within the lifetime',
    });
    expect(classifyWriteCheckpoint({ status: 500, code: 'PSYNC_S2001' })).toEqual({
      failure: 'write checkpoint: HTTP 500 PSYNC_S2001',
    });
    expect(classifyWriteCheckpoint({ status: undefined, error: 'ECONNRESET' })).toEqual({
      failure: 'write checkpoint: ECONNRESET',
    });
  });
});

describe('flaky tally', () => {
  it('counts where drops happened per encoding and compression, bytes, statuses, expected answers and failures with an example', () => {
    const tally = new FlakyTally();
    tally.record(outcome());
    tally.record(outcome({ plan: plan({ encoding: 'bson', gzip: true }), bytes: 2048, headersMs: 60 }));
    tally.record(
      outcome({ plan: plan({ drop: { kind: 'after-headers' } }), bytes: 0, droppedAt: 'after-headers', headersMs: 20 }),
    );
    tally.record(
      outcome({
        plan: plan({ drop: { kind: 'before-headers', afterMs: 5 } }),
        status: undefined,
        bytes: 0,
        droppedAt: 'before-headers',
      }),
    );
    // Planned later, but the headers did not come within the lifetime.
    tally.record(outcome({ status: undefined, bytes: 0, droppedAt: 'before-headers' }));
    tally.record(
      outcome({
        plan: plan({ writeCheckpoint: true }),
        status: 429,
        code: 'PSYNC_S2304',
        end: 'answered',
        bytes: 0,
        writeCheckpoint: { status: 429, code: 'BS5005' },
      }),
    );
    tally.record(
      outcome({ status: 503, code: 'PSYNC_S2302', end: 'answered', bytes: 0, writeCheckpoint: { status: 200 } }),
    );
    tally.record(outcome({ cappedByLifetime: true, bytes: 70_000 }));

    const f = tally.summary();
    expect(f.connections).toBe(8);
    expect(f.planned['after-bytes']).toBe(6);
    expect(f.droppedAt).toEqual({ beforeHeaders: 2, afterHeaders: 1, midData: 3 });
    expect(f.headersLate).toBe(1);
    expect(f.midDataOver64KiB).toBe(2);
    expect(f.maxBytesBeforeDrop).toBe(100_352);
    expect(f.cappedByLifetime).toBe(1);
    expect(f.bytesRead).toBe(100_352 + 2048 + 70_000);
    expect(f.byEncoding.bson).toEqual({ streams: 1, answered: 1, midData: 1, bytes: 2048 });
    expect(f.byCompression.gzip.midData).toBe(1);
    expect(f.byEncoding.ndjson.midData).toBe(2);
    expect(f.statuses).toEqual({ '200': 4, none: 2, '429': 1, '503': 1 });
    expect(f.writeCheckpoints).toEqual({ calls: 2, ok: 1, limited: 1, unanswered: 0, failed: 0 });
    expect(f.expected).toEqual({ 'stream: HTTP 429 PSYNC_S2304': 1, 'write checkpoint: HTTP 429 BS5005': 1 });
    expect(f.errors).toEqual({ 'stream: HTTP 503 PSYNC_S2302': 1 });
    expect(f.failures).toBe(1);
    expect(f.failureExamples['stream: HTTP 503 PSYNC_S2302']).toMatch(/^u3, ndjson, drop .*after-bytes/);
    expect(f.headersMs).toMatchObject({ count: 4, p50: 40, max: 60 });
  });
});
