/**
 * Coalesces concurrent calls of one read (a source's head position) while keeping each caller's
 * guarantee: a caller gets the result of a read that *started after it called*. Callers join the
 * read that has not started yet; one read runs at a time; callers arriving during it share the next.
 */

/** When a new read starts, given a function that starts it. Default: `setImmediate`. */
export type ReadScheduler = (start: () => void) => void;

export interface CoalescedReadOptions {
  /**
   * Delays the start of a read when none is running, so callers that arrive in the same turn of
   * the event loop (a burst of requests) share it. Default `setImmediate`; tests pass their own.
   */
  schedule?: ReadScheduler;
}

interface Group<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

/**
 * Shares reads among concurrent callers without ever handing a caller a result read before it
 * asked.
 *
 * Why "started after": a write checkpoint must cover every write the client committed before
 * requesting it, so the position it records must be read after the request arrived. A read
 * already running may have read the position before a late caller's last commit; joining it
 * would give that caller a checkpoint that misses its own write. So callers only ever join a
 * read that has not started: the one scheduled for the next turn when nothing runs, or, while
 * a read runs, the one that starts as it settles. At most one read runs at any moment.
 *
 * Errors reach every caller sharing the failed read; nothing is cached, so the next call reads
 * again. Used by `PostgresSourceApi.headPosition()`; source-independent and free of I/O itself.
 */
export class CoalescedRead<T> {
  private readonly schedule: ReadScheduler;
  /** Callers whose read has not started yet. */
  private next: Group<T> | undefined;
  private running = false;
  private reads = 0;

  /** @param read performs one read; called at most once at a time. */
  constructor(
    private readonly read: () => Promise<T>,
    options: CoalescedReadOptions = {},
  ) {
    this.schedule = options.schedule ?? ((start) => setImmediate(start));
  }

  /** How many reads have been started; for tests and metrics. */
  get readCount(): number {
    return this.reads;
  }

  /** The result of a read that starts after this call, shared with the callers around it. */
  get(): Promise<T> {
    if (this.next === undefined) {
      let resolve!: (value: T) => void;
      let reject!: (error: unknown) => void;
      const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.next = { promise, resolve, reject };
      // While a read runs, the new group starts when it settles (see `startNext`).
      if (!this.running) this.schedule(() => this.startNext());
    }
    return this.next.promise;
  }

  private startNext(): void {
    const group = this.next;
    if (group === undefined || this.running) return;
    // Invariant: every caller in `group` called before this line, so the read starts after each.
    this.next = undefined;
    this.running = true;
    this.reads++;
    let result: Promise<T>;
    try {
      result = this.read();
    } catch (e) {
      // A read that throws synchronously fails like one that rejects.
      result = Promise.reject(e);
    }
    const settled = () => {
      this.running = false;
      // Callers who arrived during this read get a read of their own, started now.
      if (this.next !== undefined) this.startNext();
    };
    result.then(
      (value) => {
        settled();
        group.resolve(value);
      },
      (error: unknown) => {
        settled();
        group.reject(error);
      },
    );
  }
}
