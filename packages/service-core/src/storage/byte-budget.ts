/**
 * The memory sync streams may hold at once, process-wide (`api.sync_buffer_mb`): bytes of bucket
 * data read from storage and not yet handed to the client's socket. A stream takes a lease before
 * it reads a storage batch and returns it once the batch is consumed; a line its client has not
 * drained yet is counted too. When the budget is spent, the next storage read waits (first come,
 * first served) instead of allocating: slow clients cost waiting, never memory.
 *
 * Deadlock-free by construction: only a stream that holds no lease waits (a read ahead while
 * holding one uses `tryAcquire`), and counted lines are forced (`force`), never waited for.
 */

/** A share of the budget; `release` returns it (once: later calls do nothing). */
export interface BudgetLease {
  readonly bytes: number;
  /** Sets the lease's size to what was really allocated (a read smaller or larger than asked). */
  resize(bytes: number): void;
  release(): void;
}

interface Waiter {
  bytes: number;
  /** Aborted while waiting: skipped when its turn comes. */
  cancelled: boolean;
  resolve(lease: BudgetLease): void;
  cleanup(): void;
}

export class ByteBudget {
  private usedBytes = 0;
  /** FIFO of waiting reads; `head` skips served ones so taking the first is O(1). */
  private waiters: (Waiter | undefined)[] = [];
  private head = 0;
  private waitingCount = 0;

  constructor(readonly limit: number) {
    if (!(limit > 0)) throw new RangeError(`a byte budget needs a positive limit (got ${limit})`);
  }

  /** Bytes leased now (may exceed the limit by forced leases). */
  get used(): number {
    return this.usedBytes;
  }

  /** Reads waiting for budget. */
  get waiting(): number {
    return this.waitingCount;
  }

  /**
   * A lease now if `bytes` fit under `ceiling` (default the limit) and nobody waits, else
   * undefined. A request larger than the whole limit fits only an empty budget.
   */
  tryAcquire(bytes: number, ceiling = this.limit): BudgetLease | undefined {
    if (this.waiting > 0 || !this.fits(bytes, ceiling)) return undefined;
    return this.lease(bytes);
  }

  /** A lease once `bytes` fit, after the reads that asked before; rejects when `signal` aborts. */
  acquire(bytes: number, signal?: AbortSignal): Promise<BudgetLease> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    const now = this.tryAcquire(bytes);
    if (now) return Promise.resolve(now);
    return new Promise<BudgetLease>((resolve, reject) => {
      const onAbort = () => {
        waiter.cancelled = true;
        this.waitingCount--;
        reject(signal!.reason);
        this.serve(); // the aborted read may have blocked smaller ones behind it
      };
      const waiter: Waiter = {
        bytes,
        cancelled: false,
        resolve,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
      this.waitingCount++;
    });
  }

  /** A lease granted whatever the budget holds (bytes already allocated, e.g. a written line). */
  force(bytes: number): BudgetLease {
    return this.lease(bytes);
  }

  private fits(bytes: number, ceiling: number): boolean {
    return this.usedBytes === 0 || this.usedBytes + bytes <= ceiling;
  }

  private lease(bytes: number): BudgetLease {
    let size = Math.max(0, bytes);
    this.usedBytes += size;
    let held = true;
    return {
      get bytes() {
        return size;
      },
      resize: (to: number) => {
        if (!held) return;
        const next = Math.max(0, to);
        this.usedBytes += next - size;
        const shrunk = next < size;
        size = next;
        if (shrunk) this.serve();
      },
      release: () => {
        if (!held) return;
        held = false;
        this.usedBytes -= size;
        size = 0;
        this.serve();
      },
    };
  }

  /** Grants waiting reads in order while the first of them fits. */
  private serve(): void {
    while (this.head < this.waiters.length) {
      const first = this.waiters[this.head];
      if (!first || first.cancelled) {
        this.waiters[this.head++] = undefined;
        continue;
      }
      if (!this.fits(first.bytes, this.limit)) break;
      this.waiters[this.head++] = undefined;
      this.waitingCount--;
      first.cleanup();
      first.resolve(this.lease(first.bytes));
    }
    if (this.head === this.waiters.length) {
      this.waiters = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.waiters.length) {
      this.waiters = this.waiters.slice(this.head);
      this.head = 0;
    }
  }
}
