import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../src/storage/byte-budget.js';

/** Settles pending promise callbacks. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('ByteBudget', () => {
  it('grants leases up to its limit, then makes reads wait until bytes come back', async () => {
    const budget = new ByteBudget(100);
    const a = await budget.acquire(60);
    const b = budget.tryAcquire(40);
    expect(b?.bytes).toBe(40);
    expect(budget.used).toBe(100);
    let granted = false;
    const c = budget.acquire(30).then((lease) => ((granted = true), lease));
    await settle();
    expect(granted).toBe(false);
    expect(budget.waiting).toBe(1);
    b!.release(); // 60 + 30 fit now
    await settle();
    expect(granted).toBe(true);
    a.release();
    expect((await c).bytes).toBe(30);
    expect(budget.used).toBe(30);
    expect(budget.waiting).toBe(0);
  });

  it('serves waiting reads first come, first served, and tryAcquire does not jump the queue', async () => {
    const budget = new ByteBudget(100);
    const held = budget.force(100);
    const order: string[] = [];
    const big = budget.acquire(80).then((l) => (order.push('big'), l));
    const small = budget.acquire(10).then((l) => (order.push('small'), l));
    expect(budget.tryAcquire(1)).toBeUndefined();
    held.release();
    const [bigLease, smallLease] = await Promise.all([big, small]);
    expect(order).toEqual(['big', 'small']);
    expect(budget.used).toBe(90);
    bigLease.release();
    smallLease.release();
    expect(budget.used).toBe(0);
  });

  it('lets a read larger than the whole limit through alone, never forever blocked', async () => {
    const budget = new ByteBudget(10);
    const huge = await budget.acquire(50);
    expect(huge.bytes).toBe(50);
    expect(budget.tryAcquire(1)).toBeUndefined();
    huge.release();
    expect(budget.tryAcquire(1)?.bytes).toBe(1);
  });

  it('honours a ceiling below the limit (reads ahead only while the budget is half free)', () => {
    const budget = new ByteBudget(100);
    budget.force(40);
    expect(budget.tryAcquire(20, 50)).toBeUndefined();
    expect(budget.tryAcquire(10, 50)?.bytes).toBe(10);
  });

  it('drops an aborted wait and serves the reads behind it', async () => {
    const budget = new ByteBudget(100);
    const held = budget.force(95);
    const abort = new AbortController();
    const aborted = budget.acquire(50, abort.signal);
    const behind = budget.acquire(5);
    await settle();
    expect(budget.waiting).toBe(2);
    abort.abort(new Error('client went away'));
    await expect(aborted).rejects.toThrow('client went away');
    expect((await behind).bytes).toBe(5);
    expect(budget.waiting).toBe(0);
    held.release();
    expect(budget.used).toBe(5);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const budget = new ByteBudget(100);
    await expect(budget.acquire(1, AbortSignal.abort(new Error('gone')))).rejects.toThrow('gone');
    expect(budget.used).toBe(0);
  });

  it('resizes a lease to what was really read, and releases only once', async () => {
    const budget = new ByteBudget(100);
    const lease = budget.force(80);
    let granted = false;
    const waiting = budget.acquire(50).then((l) => ((granted = true), l));
    lease.resize(30);
    expect((await waiting).bytes).toBe(50);
    expect(granted).toBe(true);
    expect(budget.used).toBe(80);
    lease.release();
    lease.release();
    lease.resize(1000); // a released lease holds nothing
    expect(budget.used).toBe(50);
  });

  it('stays linear with many waiters that abort (no scan per abort)', async () => {
    const budget = new ByteBudget(10);
    const held = budget.force(10);
    const aborts = Array.from({ length: 20_000 }, () => new AbortController());
    const waits = aborts.map((a) => budget.acquire(5, a.signal).catch(() => undefined));
    for (const a of aborts.slice(0, -1)) a.abort();
    held.release();
    await Promise.all(waits);
    expect(budget.waiting).toBe(0);
    expect(budget.used).toBe(5);
  });

  it('refuses a limit that is not positive', () => {
    expect(() => new ByteBudget(0)).toThrow(/positive limit/);
  });
});
