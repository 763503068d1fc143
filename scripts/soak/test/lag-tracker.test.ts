import { describe, expect, it } from 'vitest';
import { LagTracker } from '../src/lag-tracker.js';

describe('LagTracker', () => {
  it('measures from commit to delivery, whichever is reported first', () => {
    const lag = new LagTracker();
    lag.expect('a');
    lag.expect('b');
    lag.committed(['a', 'b'], 1000);
    lag.delivered('a', 1250);
    // b became visible before the writer's commit callback ran: lag 0, not negative.
    lag.expect('c');
    lag.delivered('c', 1990);
    lag.committed(['c'], 2000);
    expect(lag.samples.map((s) => s.lagMs)).toEqual([250, 0]);
    expect(lag.pending).toBe(1);
    expect(lag.oldestPendingMs(3000)).toBe(2000);
    expect(lag.undeliveredCommits()).toEqual([1000]);
  });

  it('counts deliveries of rows nobody registered, and ignores a second delivery of a pending row', () => {
    const lag = new LagTracker();
    lag.expect('a');
    lag.delivered('a', 10);
    lag.delivered('a', 20);
    lag.committed(['a'], 5);
    lag.delivered('zzz', 30);
    expect(lag.samples).toEqual([{ committedAt: 5, deliveredAt: 10, lagMs: 5 }]);
    expect(lag.unexpected).toBe(1);
  });

  it('forgets rows whose write failed', () => {
    const lag = new LagTracker();
    lag.expect('a');
    lag.abandon(['a']);
    lag.committed(['a'], 5);
    expect(lag.pending).toBe(0);
  });
});
