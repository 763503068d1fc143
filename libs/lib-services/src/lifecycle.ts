/**
 * Lifecycle: owns an AbortSignal for long-running work and the resources to release when
 * the work stops. `dispose()` aborts the signal, then releases resources in reverse order of
 * registration; it is idempotent and reports every failure, not just the first.
 */
export type Disposer = () => void | Promise<void>;

export class Lifecycle {
  private readonly controller = new AbortController();
  private readonly disposers: Disposer[] = [];
  private disposing: Promise<void> | undefined;

  /** Aborted when `dispose()` starts. Pass it to every long-running call. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get disposed(): boolean {
    return this.disposing !== undefined;
  }

  /** Registers a resource release; runs immediately if already disposed. */
  defer(disposer: Disposer): void {
    if (this.disposing) {
      void Promise.resolve().then(disposer);
      return;
    }
    this.disposers.push(disposer);
  }

  /** Aborts and releases everything (last registered first). Safe to call many times. */
  dispose(reason?: unknown): Promise<void> {
    this.disposing ??= (async () => {
      this.controller.abort(reason ?? new Error('disposed'));
      const errors: unknown[] = [];
      for (const disposer of this.disposers.reverse()) {
        try {
          await disposer();
        } catch (e) {
          errors.push(e);
        }
      }
      this.disposers.length = 0;
      if (errors.length === 1) throw errors[0];
      if (errors.length > 1) throw new AggregateError(errors, `${errors.length} resources failed to close`);
    })();
    return this.disposing;
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
