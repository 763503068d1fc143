import { describe, expect, it } from 'vitest';
import type { CheckpointChanges, OpId } from '../src/index.js';
import {
  mayHaveChanged,
  noChanges,
  planBucketReads,
  SharedCheckpointChanges,
  type SentCheckpoint,
} from '../src/sync/checkpoint-changes.js';

function changes(from: OpId, to: OpId, buckets: string[] | undefined): CheckpointChanges {
  return {
    from,
    to,
    buckets: buckets && new Set(buckets),
    parameterLookups: new Set(),
    customWriteCheckpointUsers: new Set(),
  };
}

/** A loader that records its calls and answers when told to. */
function recordingLoader() {
  const calls: [OpId, OpId][] = [];
  const pending: { resolve: (c: CheckpointChanges) => void; reject: (e: unknown) => void; from: OpId; to: OpId }[] = [];
  const load = (from: OpId, to: OpId) =>
    new Promise<CheckpointChanges>((resolve, reject) => {
      calls.push([from, to]);
      pending.push({ resolve, reject, from, to });
    });
  const answerAll = (buckets: string[]) => {
    for (const p of pending.splice(0)) p.resolve(changes(p.from, p.to, buckets));
  };
  return { calls, pending, load, answerAll };
}

describe('shared checkpoint changes', () => {
  it('answers every connection moving from the same checkpoint with one lookup', async () => {
    const loader = recordingLoader();
    const shared = new SharedCheckpointChanges(loader.load);
    const answers = Array.from({ length: 500 }, () => shared.get(10n, 20n));
    loader.answerAll(['a']);
    const results = await Promise.all(answers);
    expect(loader.calls).toEqual([[10n, 20n]]);
    expect(results.every((r) => r.buckets?.has('a'))).toBe(true);
  });

  it('reuses an answer for a later checkpoint for an earlier one, and looks up again for a later one', async () => {
    const loader = recordingLoader();
    const shared = new SharedCheckpointChanges(loader.load);
    const first = shared.get(10n, 30n);
    loader.answerAll(['a']);
    await first;
    expect(await shared.get(10n, 20n)).toBe(await first);
    const later = shared.get(10n, 40n);
    const other = shared.get(30n, 40n);
    loader.answerAll(['b']);
    await Promise.all([later, other]);
    expect(loader.calls).toEqual([
      [10n, 30n],
      [10n, 40n],
      [30n, 40n],
    ]);
    // The entry for 10 now answers up to 40.
    expect(await shared.get(10n, 35n)).toBe(await later);
    expect(loader.calls).toHaveLength(3);
  });

  it('answers "nothing changed" without a lookup when the checkpoint did not move', async () => {
    const loader = recordingLoader();
    const shared = new SharedCheckpointChanges(loader.load);
    const same = await shared.get(20n, 20n);
    expect(same.buckets?.size).toBe(0);
    expect(loader.calls).toHaveLength(0);
  });

  it('forgets a failed lookup so the next connection asks again', async () => {
    const loader = recordingLoader();
    const shared = new SharedCheckpointChanges(loader.load);
    const failing = shared.get(1n, 2n);
    loader.pending.splice(0)[0]!.reject(new Error('storage down'));
    await expect(failing).rejects.toThrow('storage down');
    const retry = shared.get(1n, 2n);
    loader.answerAll([]);
    await retry;
    expect(loader.calls).toHaveLength(2);
  });

  it('keeps a bounded number of entries', async () => {
    const loader = recordingLoader();
    const shared = new SharedCheckpointChanges(loader.load, 4);
    for (let from = 0n; from < 10n; from++) void shared.get(from, 100n);
    loader.answerAll([]);
    void shared.get(0n, 100n); // evicted: looked up again
    void shared.get(9n, 100n); // kept
    expect(loader.calls).toHaveLength(11);
  });
});

describe('mayHaveChanged', () => {
  it('is true for an unknown set, and for a set naming any of the names', () => {
    expect(mayHaveChanged(undefined, [])).toBe(true);
    expect(mayHaveChanged(new Set(['a']), ['b', 'a'])).toBe(true);
    expect(mayHaveChanged(new Set(['a']), ['b'])).toBe(false);
    expect(mayHaveChanged(new Set(), [])).toBe(false);
  });
});

describe('bucket reads of a checkpoint', () => {
  const bucket = (name: string, priority = 3) => ({ bucket: name, priority, subscriptions: [], definition: 'd' });
  const sentAt = (opId: OpId, names: string[], compactedThrough = 0n): SentCheckpoint => ({
    opId,
    compactedThrough,
    buckets: new Map(names.map((n) => [n, { bucket: n, checksum: 1, count: 1, priority: 3 }])),
  });

  it('reads every checksum and no data shortcut at the first checkpoint', () => {
    const plan = planBucketReads({
      checkpoint: 10n,
      buckets: [bucket('a'), bucket('b')],
      sent: undefined,
      changes: undefined,
      compactedThrough: 0n,
      clientAfter: new Map([['a', 5n]]),
    });
    expect(plan).toEqual({ checksums: ['a', 'b'], upToDate: [] });
  });

  it('reads only changed buckets, and marks unchanged ones the client holds as up to date without a read', () => {
    const plan = planBucketReads({
      checkpoint: 20n,
      buckets: [bucket('a'), bucket('b'), bucket('c')],
      sent: sentAt(10n, ['a', 'b', 'c']),
      changes: changes(10n, 20n, ['a']),
      compactedThrough: 0n,
      clientAfter: new Map([
        ['a', 10n],
        ['b', 10n],
        ['c', 7n], // still behind the sent checkpoint (e.g. an abandoned one): read it
      ]),
    });
    expect(plan).toEqual({ checksums: ['a'], upToDate: ['b'] });
  });

  it('reads the checksum of a bucket new to the connection even when it did not change', () => {
    const plan = planBucketReads({
      checkpoint: 20n,
      buckets: [bucket('a'), bucket('new')],
      sent: sentAt(10n, ['a']),
      changes: changes(10n, 20n, []),
      compactedThrough: 0n,
      clientAfter: new Map([['a', 10n]]),
    });
    expect(plan).toEqual({ checksums: ['new'], upToDate: ['a'] });
  });

  it('reads every checksum after a compaction (counts drop) but still skips data of unchanged buckets', () => {
    const plan = planBucketReads({
      checkpoint: 20n,
      buckets: [bucket('a'), bucket('b')],
      sent: sentAt(10n, ['a', 'b'], 0n),
      changes: changes(10n, 20n, []),
      compactedThrough: 15n,
      clientAfter: new Map([
        ['a', 10n],
        ['b', 10n],
      ]),
    });
    expect(plan).toEqual({ checksums: ['a', 'b'], upToDate: ['a', 'b'] });
  });

  it('treats everything as changed when the changes are unknown or relative to another checkpoint', () => {
    const base = {
      checkpoint: 20n,
      buckets: [bucket('a')],
      sent: sentAt(10n, ['a']),
      compactedThrough: 0n,
      clientAfter: new Map([['a', 10n]]),
    };
    expect(planBucketReads({ ...base, changes: changes(10n, 20n, undefined) })).toEqual({
      checksums: ['a'],
      upToDate: [],
    });
    expect(planBucketReads({ ...base, changes: changes(5n, 20n, []) })).toEqual({ checksums: ['a'], upToDate: [] });
  });

  it('never marks a bucket up to date when the checkpoint did not move past what the client holds', () => {
    const plan = planBucketReads({
      checkpoint: 10n,
      buckets: [bucket('a')],
      sent: sentAt(10n, ['a']),
      changes: noChanges(10n, 10n),
      compactedThrough: 0n,
      clientAfter: new Map([['a', 10n]]),
    });
    expect(plan).toEqual({ checksums: [], upToDate: [] });
  });
});
