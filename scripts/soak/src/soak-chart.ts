/**
 * The soak chart as a standalone SVG: service and soak RSS over time on top, replication lag
 * (p95 and max per sample window, oldest undelivered row, the recovery threshold; log scale)
 * below, bursts shaded in both. Plain strings, no dependencies, embeddable in Markdown.
 */
import type { SoakResult } from './soak-result.js';

const WIDTH = 900;
const PANEL_HEIGHT = 200;
const LEFT = 70;
const RIGHT = 20;
const TOP = 64;
const GAP = 60;
const BOTTOM = 40;

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

/** A step of 1, 2 or 5 times a power of ten giving about `count` ticks over `range`. */
export function niceStep(range: number, count: number): number {
  if (range <= 0) return 1;
  const raw = range / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const mantissa = raw / power;
  return (mantissa <= 1 ? 1 : mantissa <= 2 ? 2 : mantissa <= 5 ? 5 : 10) * power;
}

/** Time axis steps in seconds: the first giving at most ten ticks is used. */
const TIME_STEPS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800];

const clock = (t: number) => `${Math.floor(t / 60)}:${String(Math.round(t % 60)).padStart(2, '0')}`;

const fmt = (n: number) => (Math.abs(n) >= 100 || Number.isInteger(n) ? n.toFixed(0) : n.toPrecision(2));

interface Panel {
  top: number;
  x(t: number): number;
  y(v: number): number;
}

function polyline(points: { t: number; v: number }[], panel: Panel, style: string): string {
  if (points.length === 0) return '';
  const d = points.map((p) => `${panel.x(p.t).toFixed(1)},${panel.y(p.v).toFixed(1)}`).join(' ');
  return `<polyline fill="none" ${style} points="${d}"/>`;
}

function legend(items: { label: string; style: string }[], x: number, y: number): string {
  return items
    .map((item, i) => {
      const lx = x + i * 170;
      return `<line x1="${lx}" y1="${y}" x2="${lx + 24}" y2="${y}" ${item.style}/><text x="${lx + 30}" y="${y + 4}">${escapeXml(item.label)}</text>`;
    })
    .join('');
}

export function renderSoakChart(result: SoakResult): string {
  const seconds = Math.max(1, result.load.seconds);
  const plotWidth = WIDTH - LEFT - RIGHT;
  const height = TOP + 2 * PANEL_HEIGHT + GAP + BOTTOM;
  const x = (t: number) => LEFT + (Math.min(Math.max(t, 0), seconds) / seconds) * plotWidth;
  const out: string[] = [];
  const o = result.config;
  const status = result.verdict.passed ? 'passed' : 'FAILED';
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    `<text x="${LEFT}" y="20" font-size="14" font-weight="bold">${escapeXml(
      `BucketSync soak: ${o.clients} clients, ${o.rate} rows/s, bursts of ${o.burstRows} rows, ${(seconds / 60).toFixed(1)} min (${status})`,
    )}</text>`,
    `<text x="${LEFT}" y="34" fill="#555">${escapeXml(
      `${result.machine.cpus} CPUs, ${Math.round(result.machine.memoryMb / 1024)} GB, Node ${result.machine.node}, ${result.startedAt.slice(0, 16).replace('T', ' ')} UTC`,
    )}</text>`,
  );

  // Panel 1: RSS, linear from 0.
  const rss = result.series.rss;
  const rssMax = Math.max(1, ...rss.map((p) => Math.max(p.serviceMb, p.soakMb)));
  const rssStep = niceStep(rssMax, 5);
  const rssTop = Math.ceil((rssMax * 1.05) / rssStep) * rssStep;
  const memory: Panel = { top: TOP, x, y: (v) => TOP + PANEL_HEIGHT - (v / rssTop) * PANEL_HEIGHT };

  // Panel 2: lag, log scale over whole decades.
  const lagTop = TOP + PANEL_HEIGHT + GAP;
  const lagValues = result.series.lag
    .flatMap((w) => [w.p95, w.max, w.oldestPendingMs])
    .concat([o.lagThresholdMs])
    .filter((v) => v > 0);
  const lowDecade = Math.max(0, Math.min(1, Math.floor(Math.log10(Math.min(...lagValues, 10)))));
  const highDecade = Math.max(
    lowDecade + 2,
    Math.ceil(Math.log10(o.lagThresholdMs)) + 1,
    Math.ceil(Math.log10(Math.max(...lagValues))),
  );
  const lagY = (v: number) => {
    const clamped = Math.min(Math.max(v, 10 ** lowDecade), 10 ** highDecade);
    return lagTop + PANEL_HEIGHT - ((Math.log10(clamped) - lowDecade) / (highDecade - lowDecade)) * PANEL_HEIGHT;
  };
  const lag: Panel = { top: lagTop, x, y: lagY };

  // Bursts: shaded from their start to recovery (or the end of the recovery window).
  for (const b of result.bursts) {
    const end = b.atSeconds + b.writeSeconds + (b.recoverySeconds ?? o.recoveryWindowSeconds);
    for (const panel of [memory, lag]) {
      out.push(
        `<rect x="${x(b.atSeconds).toFixed(1)}" y="${panel.top}" width="${Math.max(3, x(end) - x(b.atSeconds)).toFixed(1)}" height="${PANEL_HEIGHT}" fill="${b.recovered ? '#fbd89c' : '#f8c4c4'}"/>`,
        `<text x="${(x(b.atSeconds) + 4).toFixed(1)}" y="${panel.top + 12}" fill="#a06000">burst ${b.index + 1}</text>`,
      );
    }
  }

  // Axes and grid.
  const timeStep = TIME_STEPS.find((step) => seconds / step <= 10) ?? 3600;
  for (const panel of [memory, lag]) {
    out.push(
      `<rect x="${LEFT}" y="${panel.top}" width="${plotWidth}" height="${PANEL_HEIGHT}" fill="none" stroke="#999"/>`,
    );
    for (let t = 0; t <= seconds + 1e-9; t += timeStep) {
      out.push(
        `<line x1="${x(t).toFixed(1)}" y1="${panel.top}" x2="${x(t).toFixed(1)}" y2="${panel.top + PANEL_HEIGHT}" stroke="#eee"/>`,
        `<text x="${x(t).toFixed(1)}" y="${panel.top + PANEL_HEIGHT + 14}" text-anchor="middle">${clock(t)}</text>`,
      );
    }
  }
  for (let v = 0; v <= rssTop + 1e-9; v += rssStep) {
    const y = memory.y(v).toFixed(1);
    out.push(
      `<line x1="${LEFT}" y1="${y}" x2="${LEFT + plotWidth}" y2="${y}" stroke="#eee"/>`,
      `<text x="${LEFT - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(v)}</text>`,
    );
  }
  for (let d = lowDecade; d <= highDecade; d++) {
    const y = lagY(10 ** d).toFixed(1);
    const label = d >= 3 ? `${fmt(10 ** (d - 3))} s` : `${fmt(10 ** d)} ms`;
    out.push(
      `<line x1="${LEFT}" y1="${y}" x2="${LEFT + plotWidth}" y2="${y}" stroke="#eee"/>`,
      `<text x="${LEFT - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${label}</text>`,
    );
  }
  out.push(
    `<text transform="translate(16 ${TOP + PANEL_HEIGHT / 2}) rotate(-90)" text-anchor="middle">RSS (MB)</text>`,
    `<text transform="translate(16 ${lagTop + PANEL_HEIGHT / 2}) rotate(-90)" text-anchor="middle">lag</text>`,
    `<text x="${LEFT + plotWidth / 2}" y="${height - 8}" text-anchor="middle">time since the load started (minutes:seconds)</text>`,
  );

  // Lines.
  const service = 'stroke="#1f77b4" stroke-width="2"';
  const soak = 'stroke="#7f7f7f" stroke-width="1.5"';
  out.push(
    polyline(
      rss.map((p) => ({ t: p.t, v: p.serviceMb })),
      memory,
      service,
    ),
    polyline(
      rss.map((p) => ({ t: p.t, v: p.soakMb })),
      memory,
      soak,
    ),
    legend(
      [
        { label: 'service RSS', style: service },
        { label: 'soak process RSS', style: soak },
      ],
      LEFT + 10,
      TOP - 6,
    ),
  );
  const p95 = 'stroke="#ff7f0e" stroke-width="2"';
  const max = 'stroke="#d62728" stroke-width="1"';
  const pending = 'stroke="#9467bd" stroke-width="1" stroke-dasharray="2 2"';
  const threshold = 'stroke="#2ca02c" stroke-width="1" stroke-dasharray="6 4"';
  const windows = result.series.lag.filter((w) => w.count > 0);
  const thresholdY = lagY(o.lagThresholdMs).toFixed(1);
  out.push(
    `<line x1="${LEFT}" y1="${thresholdY}" x2="${LEFT + plotWidth}" y2="${thresholdY}" ${threshold}/>`,
    polyline(
      windows.map((w) => ({ t: w.t, v: w.max })),
      lag,
      max,
    ),
    polyline(
      windows.map((w) => ({ t: w.t, v: w.p95 })),
      lag,
      p95,
    ),
    polyline(
      result.series.lag.map((w) => ({ t: w.t, v: w.oldestPendingMs })),
      lag,
      pending,
    ),
    legend(
      [
        { label: 'lag p95 per window', style: p95 },
        { label: 'lag max per window', style: max },
        { label: 'oldest undelivered row', style: pending },
        { label: `threshold ${o.lagThresholdMs} ms`, style: threshold },
      ],
      LEFT + 10,
      lagTop - 6,
    ),
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}
