import { describe, expect, it } from 'vitest';
import { ProgressBar, renderProgressBar } from '../src/progress-bar.js';

describe('progress bar', () => {
  it('renders ops received over the checkpoint total', () => {
    expect(renderProgressBar(50, 200, 10)).toBe('[##........]  25% 50/200 ops');
    expect(renderProgressBar(0, 0, 4)).toBe('[####] 100% 0/0 ops');
    expect(renderProgressBar(12, 10, 4)).toBe('[####] 100% 12/10 ops');
  });

  it('redraws at most every 100 ms and erases itself', () => {
    const written: string[] = [];
    let now = 1000;
    const bar = new ProgressBar({ write: (t: string) => written.push(t) }, () => now);
    bar.update(1, 10);
    bar.update(2, 10);
    now += 100;
    bar.update(3, 10);
    bar.clear();
    bar.clear();
    expect(written).toHaveLength(3);
    expect(written[0]).toContain('1/10 ops');
    expect(written[1]).toContain('3/10 ops');
    expect(written[2]).toBe('\r\u001b[K');
  });
});
