import { describe, expect, it } from 'vitest';
import { CoalescedRead } from '../src/replication/coalesced-read.js';

/** A read the test settles by hand (each call is one pending promise in `calls`), and a scheduler it runs by hand. */
function controlled<T>() {
  const calls: { resolve: (value: T) => void; reject: (error: unknown) => void }[] = [];
  const scheduled: (() => void)[] = [];
  const read = () =>
    new Promise<T>((resolve, reject) => {
      calls.push({ resolve, reject });
    });
  const runScheduled = () => {
    for (const start of scheduled.splice(0)) start();
  };
  return { calls, read, schedule: (start: () => void) => void scheduled.push(start), scheduled, runScheduled };
}

/** Lets every settled promise's callbacks run (no timers involved). */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/** Records when a promise settles, without the test awaiting it. */
function watch<T>(promise: Promise<T>) {
  const state: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error: unknown) => Object.assign(state, { settled: true, error }),
  );
  return state;
}

describe('CoalescedRead', () => {
  it('serves N concurrent callers with one read, started after all of them called', async () => {
    const { calls, read, schedule, scheduled, runScheduled } = controlled<string>();
    const coalesced = new CoalescedRead(read, { schedule });
    const results = Array.from({ length: 400 }, () => coalesced.get());
    expect(calls).toHaveLength(0); // not started while callers may still join
    expect(scheduled).toHaveLength(1);
    runScheduled();
    expect(calls).toHaveLength(1);
    calls[0]!.resolve('0/16B3748');
    expect(await Promise.all(results)).toEqual(Array(400).fill('0/16B3748'));
    expect(coalesced.readCount).toBe(1);
  });

  it('gives a caller arriving mid-read the next read, started when the current one settles', async () => {
    const { calls, read, schedule, scheduled, runScheduled } = controlled<string>();
    const coalesced = new CoalescedRead(read, { schedule });
    const first = watch(coalesced.get());
    runScheduled();
    expect(calls).toHaveLength(1);
    // These arrive while read #1 runs: it may have read before their writes committed.
    const late = [watch(coalesced.get()), watch(coalesced.get()), watch(coalesced.get())];
    await flush();
    expect(calls).toHaveLength(1); // the next read waits for the current one
    expect(scheduled).toHaveLength(0);

    calls[0]!.resolve('A');
    await flush();
    expect(first).toMatchObject({ settled: true, value: 'A' });
    for (const s of late) expect(s.settled).toBe(false); // not handed the read that started before them
    expect(calls).toHaveLength(2); // read #2 started as #1 settled, once for all late callers

    // A caller arriving during read #2 waits for read #3, not #2.
    const later = watch(coalesced.get());
    calls[1]!.resolve('B');
    await flush();
    for (const s of late) expect(s).toMatchObject({ settled: true, value: 'B' });
    expect(later.settled).toBe(false);
    expect(calls).toHaveLength(3);

    calls[2]!.resolve('C');
    await flush();
    expect(later).toMatchObject({ settled: true, value: 'C' });
    expect(coalesced.readCount).toBe(3);
  });

  it('reads afresh for a caller arriving after everything settled', async () => {
    const { calls, read, schedule, runScheduled } = controlled<number>();
    const coalesced = new CoalescedRead(read, { schedule });
    const one = coalesced.get();
    runScheduled();
    calls[0]!.resolve(1);
    expect(await one).toBe(1);
    const two = coalesced.get();
    runScheduled();
    expect(calls).toHaveLength(2); // no result reused
    calls[1]!.resolve(2);
    expect(await two).toBe(2);
  });

  it('hands a failure to every caller sharing the read, and the next call reads again', async () => {
    const { calls, read, schedule, runScheduled } = controlled<string>();
    const coalesced = new CoalescedRead(read, { schedule });
    const sharers = Array.from({ length: 5 }, () => watch(coalesced.get()));
    runScheduled();
    const failure = new Error('connection terminated');
    calls[0]!.reject(failure);
    await flush();
    for (const s of sharers) expect(s).toMatchObject({ settled: true, error: failure });

    const retry = coalesced.get();
    runScheduled();
    expect(calls).toHaveLength(2);
    calls[1]!.resolve('0/1');
    expect(await retry).toBe('0/1');
  });

  it('callers waiting behind a failed read get a read of their own, not its error', async () => {
    const { calls, read, schedule, runScheduled } = controlled<string>();
    const coalesced = new CoalescedRead(read, { schedule });
    const first = watch(coalesced.get());
    runScheduled();
    const waiting = watch(coalesced.get());
    calls[0]!.reject(new Error('boom'));
    await flush();
    expect(first.error).toBeInstanceOf(Error);
    expect(waiting.settled).toBe(false);
    expect(calls).toHaveLength(2);
    calls[1]!.resolve('ok');
    await flush();
    expect(waiting).toMatchObject({ settled: true, value: 'ok' });
  });

  it('treats a read that throws synchronously as a failed read', async () => {
    let n = 0;
    const coalesced = new CoalescedRead<number>(() => {
      n++;
      if (n === 1) throw new Error('sync failure');
      return Promise.resolve(n);
    });
    await expect(coalesced.get()).rejects.toThrow('sync failure');
    await expect(coalesced.get()).resolves.toBe(2);
  });

  it('never runs two reads at once', async () => {
    const { calls, read, schedule, runScheduled } = controlled<number>();
    let running = 0;
    let most = 0;
    const coalesced = new CoalescedRead<number>(
      () => {
        running++;
        most = Math.max(most, running);
        return read().finally(() => running--);
      },
      { schedule },
    );
    const all: Promise<number>[] = [];
    let settledReads = 0;
    const settleNext = async () => {
      calls[settledReads]!.resolve(settledReads);
      settledReads++;
      await flush();
    };
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 10; i++) all.push(coalesced.get());
      runScheduled();
      await flush();
      for (let i = 0; i < 10; i++) all.push(coalesced.get()); // during the running read
      await settleNext();
    }
    while (settledReads < calls.length) await settleNext();
    await Promise.all(all);
    expect(most).toBe(1);
    // Round 0 reads once for its first ten; every later read serves a round's late and next callers.
    expect(coalesced.readCount).toBe(6);
  });

  it('by default, callers in the same turn of the event loop share one read', async () => {
    let reads = 0;
    const coalesced = new CoalescedRead(async () => ++reads);
    const burst = await Promise.all(Array.from({ length: 100 }, () => coalesced.get()));
    expect(burst).toEqual(Array(100).fill(1));
    expect(await coalesced.get()).toBe(2);
  });
});
