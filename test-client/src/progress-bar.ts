/**
 * A one-line download progress bar for a TTY: ops received over the total the checkpoint's
 * bucket counts announce. Redraws at most every 100 ms; `clear` erases it before the summary.
 */

/** The bar's text for the given counts, e.g. `[#####.....]  50% 500/1000 ops`. */
export function renderProgressBar(received: number, total: number, width = 30): string {
  const fraction = total > 0 ? Math.min(1, received / total) : 1;
  const filled = Math.floor(fraction * width);
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${percent} ${received}/${total} ops`;
}

/** Where the bar is drawn: process.stderr in the CLI. */
export interface ProgressOutput {
  write(text: string): unknown;
}

/** Draws and erases the bar on one terminal line. */
export class ProgressBar {
  private lastDraw = 0;
  private drawn = false;

  constructor(
    private readonly output: ProgressOutput,
    private readonly now: () => number = Date.now,
  ) {}

  /** Redraws unless the last draw was under 100 ms ago (or `force`). */
  update(received: number, total: number, force = false): void {
    const t = this.now();
    if (!force && this.drawn && t - this.lastDraw < 100) return;
    this.lastDraw = t;
    this.drawn = true;
    this.output.write(`\r${renderProgressBar(received, total)}\u001b[K`);
  }

  /** Erases the bar; safe to call when nothing was drawn. */
  clear(): void {
    if (!this.drawn) return;
    this.output.write('\r\u001b[K');
    this.drawn = false;
  }
}
