/**
 * Replication lag of stamped rows: the writer registers each row a probe client will see and
 * its commit time; the probe reports when the row became visible (its checkpoint_complete).
 * Both orders are handled: a probe may see a row before the writer's commit callback runs.
 */
import type { LagSample } from './soak-statistics.js';

interface Entry {
  committedAt?: number;
  deliveredAt?: number;
}

export class LagTracker {
  private readonly entries = new Map<string, Entry>();
  readonly samples: LagSample[] = [];
  /** Deliveries of keys never registered (a probe saw a row nobody wrote): a correctness problem. */
  unexpected = 0;

  /** Called by the writer before the write that contains `key`. */
  expect(key: string): void {
    if (!this.entries.has(key)) this.entries.set(key, {});
  }

  /** Called by the writer when the transaction holding `keys` has committed. */
  committed(keys: readonly string[], at: number): void {
    for (const key of keys) {
      const entry = this.entries.get(key);
      if (!entry) continue;
      entry.committedAt = at;
      if (entry.deliveredAt !== undefined) this.finish(key, entry);
    }
  }

  /** Called by a probe client when `key` became visible; later deliveries of a key are ignored. */
  delivered(key: string, at: number): void {
    const entry = this.entries.get(key);
    if (!entry) {
      this.unexpected++;
      return;
    }
    if (entry.deliveredAt !== undefined) return;
    entry.deliveredAt = at;
    if (entry.committedAt !== undefined) this.finish(key, entry);
  }

  /** Forgets keys whose write failed (they will never arrive). */
  abandon(keys: readonly string[]): void {
    for (const key of keys) this.entries.delete(key);
  }

  private finish(key: string, entry: Entry): void {
    // Delivered before the commit callback ran: the lag was below what this clock can see.
    const lagMs = Math.max(0, entry.deliveredAt! - entry.committedAt!);
    this.samples.push({ committedAt: entry.committedAt!, deliveredAt: entry.deliveredAt!, lagMs });
    this.entries.delete(key);
  }

  /** Committed rows no probe has seen yet. */
  get pending(): number {
    let n = 0;
    for (const entry of this.entries.values()) if (entry.committedAt !== undefined) n++;
    return n;
  }

  /** Commit times of committed rows no probe has seen yet. */
  undeliveredCommits(): number[] {
    const out: number[] = [];
    for (const entry of this.entries.values()) if (entry.committedAt !== undefined) out.push(entry.committedAt);
    return out;
  }

  /** Age of the oldest committed row no probe has seen yet (0 when none): lag that samples cannot show yet. */
  oldestPendingMs(now: number): number {
    let oldest = now;
    for (const entry of this.entries.values()) {
      if (entry.committedAt !== undefined && entry.committedAt < oldest) oldest = entry.committedAt;
    }
    return now - oldest;
  }
}
