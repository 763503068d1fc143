#!/usr/bin/env node
// `node scripts/bench-report.mjs [results.json] [--publish]`: turns the results of `npm run bench`
// (default bench/results/latest.json) into a Markdown report (<name>.md beside the results) and
// hand-written SVG charts (replication throughput, replication lag, memory), without running
// any bench. `--publish` also copies the results and charts into docs/performance/ and replaces
// the part of docs/performance.md between the bench-report markers with this run's table.
// scripts/bench.mjs calls writeReport() after every run. Plain Node, no dependencies.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Format of the results file (written by scripts/bench.mjs; one bench's part is described
 * there). Changelog:
 *   1: machine, versions, BENCH_* settings; one entry per bench with its scenarios, each with
 *      workload, figures (value, unit, target), time series and events.
 */
export const RESULTS_FORMAT = 1;

/** The charts, as written beside the results and published into docs/performance/. */
export const CHARTS = {
  throughput: 'replication-throughput.svg',
  lag: 'replication-lag.svg',
  memory: 'memory.svg',
};

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PUBLISH_DIR = path.join(root, 'docs/performance');
const PUBLISH_DOC = path.join(root, 'docs/performance.md');
const MARKER_START = '<!-- bench-report:start -->';
const MARKER_END = '<!-- bench-report:end -->';

/**
 * Writes the report of `resultsFile` beside it; with `publish`, also into docs/. Returns the
 * files written. Throws on a results file of another format, or a docs/performance.md without
 * the markers (nothing is published then).
 */
export function writeReport(resultsFile, { publish = false } = {}) {
  const results = JSON.parse(readFileSync(resultsFile, 'utf8'));
  if (results.format !== RESULTS_FORMAT)
    throw new Error(
      `${resultsFile} has results format ${results.format ?? '(none)'}; this report reads format ${RESULTS_FORMAT}. Rerun \`npm run bench\` to write a new one.`,
    );
  const dir = path.dirname(path.resolve(resultsFile));
  const written = [];
  const charts = {
    [CHARTS.throughput]: throughputChart(results),
    [CHARTS.lag]: lagChart(results),
    [CHARTS.memory]: memoryChart(results),
  };
  for (const [name, svg] of Object.entries(charts)) {
    writeFileSync(path.join(dir, name), svg);
    written.push(path.join(dir, name));
  }
  const mdFile = path.join(dir, `${path.basename(resultsFile, '.json')}.md`);
  writeFileSync(mdFile, fullReport(results));
  written.push(mdFile);

  if (publish) {
    const doc = existsSync(PUBLISH_DOC) ? readFileSync(PUBLISH_DOC, 'utf8') : '';
    const start = doc.indexOf(MARKER_START);
    const end = doc.indexOf(MARKER_END);
    if (start < 0 || end < start)
      throw new Error(`docs/performance.md has no "${MARKER_START}" ... "${MARKER_END}" section to replace`);
    if (results.filter || results.benches.some((b) => b.exitCode !== 0))
      console.warn('Publishing a partial run (a scenario filter or a failed bench): the table says so.');
    mkdirSync(PUBLISH_DIR, { recursive: true });
    for (const [name, svg] of Object.entries(charts)) {
      writeFileSync(path.join(PUBLISH_DIR, name), svg);
      written.push(path.join(PUBLISH_DIR, name));
    }
    const publishedResults = path.join(PUBLISH_DIR, 'results.json');
    if (path.resolve(resultsFile) !== publishedResults) copyFileSync(resultsFile, publishedResults);
    written.push(publishedResults);
    const section = `${MARKER_START}\n\n${publishedSection(results)}\n${MARKER_END}`;
    writeFileSync(PUBLISH_DOC, doc.slice(0, start) + section + doc.slice(end + MARKER_END.length));
    written.push(PUBLISH_DOC);
  }
  return written;
}

// ---------------------------------------------------------------------------------------------
// Figures

/** Every scenario of the run with its bench's name, in run order. */
function scenarios(results) {
  return results.benches.flatMap((bench) => bench.scenarios.map((s) => ({ ...s, bench: bench.name })));
}

function findScenario(results, id) {
  return scenarios(results).find((s) => s.id === id);
}

function findFigure(scenario, name) {
  return scenario?.figures.find((f) => f.name === name);
}

/** True / false when the figure has a target and a value; undefined otherwise. */
function targetMet(figure) {
  if (!figure?.target || typeof figure.value !== 'number') return undefined;
  if (figure.target.min !== undefined) return figure.value >= figure.target.min;
  return figure.value <= figure.target.max;
}

function formatNumber(value) {
  if (value === null || value === undefined) return 'n/a';
  if (typeof value !== 'number') return String(value);
  if (Number.isInteger(value)) return value.toLocaleString('en-US');
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return value.toLocaleString('en-US', { maximumFractionDigits: digits });
}

function formatTarget(target) {
  if (!target) return '';
  return target.min !== undefined ? `>= ${formatNumber(target.min)}` : `<= ${formatNumber(target.max)}`;
}

// ---------------------------------------------------------------------------------------------
// Markdown

/** A Markdown table padded the way prettier pads one (ASCII cells), so `prettier --check` passes. */
function markdownTable(header, rows, align) {
  const cell = (v) =>
    String(v ?? '')
      .replace(/\|/g, '\\|')
      .replace(/\s*\n\s*/g, ' ');
  const all = [header, ...rows].map((r) => r.map(cell));
  const widths = header.map((_, i) => Math.max(3, ...all.map((r) => r[i].length)));
  const line = (r) =>
    `| ${r.map((c, i) => (align[i] === 'right' ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (align[i] === 'right' ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`;
  return [line(all[0]), rule, ...all.slice(1).map(line)].join('\n');
}

/** An error message as a table cell: one line, ASCII, in a code span so Markdown leaves it alone. */
function errorCell(message) {
  const line = String(message ?? '')
    .split('\n')[0]
    .replace(/[^\x20-\x7e]/g, '?')
    .replace(/`/g, "'")
    .slice(0, 160);
  return line ? `\`${line}\`` : '';
}

function figuresTable(results) {
  const rows = [];
  for (const bench of results.benches) {
    for (const s of bench.scenarios) {
      let first = true;
      const name = () => (first ? ((first = false), s.id) : '');
      for (const f of s.figures) {
        const met = targetMet(f);
        const metText = met === undefined ? (f.target ? 'n/a' : '') : met ? 'yes' : '**no**';
        rows.push([name(), f.label, formatNumber(f.value), f.unit, formatTarget(f.target), metText]);
      }
      if (s.error) rows.push([name(), '**failed**', '', '', '', errorCell(s.error)]);
    }
    if (bench.exitCode !== 0 && !bench.scenarios.some((s) => s.error))
      rows.push([
        bench.name,
        '**bench failed**',
        '',
        '',
        '',
        errorCell(`exit code ${bench.exitCode}${bench.error ? `: ${bench.error}` : ''}`),
      ]);
  }
  return markdownTable(['scenario', 'figure', 'value', 'unit', 'target', 'met'], rows, [
    'left',
    'left',
    'right',
    'left',
    'left',
    'left',
  ]);
}

function runSummary(results) {
  const m = results.machine;
  const v = results.versions;
  const minutes = Math.round((Date.parse(results.finishedAt) - Date.parse(results.startedAt)) / 6000) / 10;
  const git = v.git
    ? `commit \`${v.git.commit.slice(0, 12)}\`${v.git.dirty ? ' with uncommitted changes' : ''}${v.git.branch ? ` (${v.git.branch})` : ''}`
    : 'no git commit';
  const settings = Object.entries(results.settings ?? {});
  const failed = results.benches.filter((b) => b.exitCode !== 0).map((b) => `${b.name} (exit code ${b.exitCode})`);
  const lines = [
    `- Run: ${results.startedAt.replace('T', ' ').slice(0, 16)} UTC, ${minutes} min, ${git}; \`npm run bench${results.filter ? ` -- ${results.filter}` : ''}\`${results.filter ? ' (only this bench: a partial run)' : ''}.`,
    `- Sizes: ${settings.length > 0 ? settings.map(([k, val]) => `\`${k}=${val}\``).join(', ') : 'the defaults (full-size workloads)'}.`,
    `- Machine: ${m.cpuModel}, ${m.cores} cores, ${formatNumber(Math.round(m.memoryMB / 1024))} GB memory; ${m.os}, ${m.kernel}; load average ${m.loadAverageAtStart?.[0] ?? '?'} at the start, ${m.loadAverageAtEnd?.[0] ?? '?'} at the end.`,
    `- Versions: Node ${v.node}, Postgres ${v.postgres ?? 'not used'}, pnpm ${v.pnpm ?? '?'}${v.dependencies?.pg ? `, pg ${v.dependencies.pg}` : ''}.`,
  ];
  if (settings.length > 0)
    lines.push('- Note: reduced workloads (the `BENCH_*` settings above); the targets are for the full-size ones.');
  if (results.externalDatabases?.length > 0)
    lines.push(`- Databases: existing servers from ${results.externalDatabases.map((k) => `\`${k}\``).join(', ')}.`);
  if (failed.length > 0) lines.push(`- Failed: ${failed.join(', ')}; their other figures are kept.`);
  // Free-text notes added to a results file by hand (e.g. a bench re-run and merged in).
  for (const note of results.notes ?? []) lines.push(`- Note: ${note}`);
  return lines.join('\n');
}

/** A workload value on one line, in backticks (so `<i>` and `*` stay text). */
function inlineValue(value) {
  if (value && typeof value === 'object')
    return Object.entries(value)
      .map(([k, v]) => `${k} \`${String(v).replace(/`/g, "'")}\``)
      .join(', ');
  const shown = typeof value === 'number' ? formatNumber(value) : String(value);
  return `\`${shown.replace(/`/g, "'").replace(/\n/g, ' ')}\``;
}

/** Every workload, with multi-line values (sync configs) as code blocks. */
function workloads(results) {
  const parts = [];
  const shownIn = new Map(); // multi-line value -> the scenario that shows it

  for (const s of scenarios(results)) {
    parts.push(`### ${s.id}\n\n${s.title} (bench \`${s.bench}\`, ${formatNumber(s.seconds)} s).\n`);
    const blocks = [];
    const items = [];
    for (const [key, value] of Object.entries(s.workload ?? {})) {
      if (typeof value === 'string' && value.includes('\n')) {
        if (shownIn.has(value)) items.push(`- ${key}: as in ${shownIn.get(value)}`);
        else blocks.push(`${key}:\n\n\`\`\`yaml\n${value}\n\`\`\`\n`);
        if (!shownIn.has(value)) shownIn.set(value, s.id);
      } else items.push(`- ${key}: ${inlineValue(value)}`);
    }
    parts.push(`${items.join('\n')}\n`);
    parts.push(...blocks);
  }
  const environments = results.benches
    .filter((b) => b.environment?.postgres)
    .map(
      (b) =>
        `- ${b.name}: Postgres ${b.environment.postgres.version}, ${b.environment.postgres.server}; ${inlineValue(b.environment.postgres.settings ?? {})}`,
    );
  if (environments.length > 0) parts.push(`### Databases\n\n${environments.join('\n')}\n`);
  return parts.join('\n');
}

function fullReport(results) {
  return `# Benchmark results

${runSummary(results)}

Figures are one run on this machine: compare runs on the same machine only. Targets: \`>= x\` is
met at or above x, \`<= x\` at or below. MB is 2^20 bytes. How to run and what each scenario
measures: docs/performance.md.

## Figures

${figuresTable(results)}

## Charts

![Replication throughput](${CHARTS.throughput})

![Replication lag](${CHARTS.lag})

![Memory](${CHARTS.memory})

## Workloads

${workloads(results)}`;
}

/** The generated part of docs/performance.md: the run, its table and where its workloads are. */
function publishedSection(results) {
  return `${runSummary(results)}

${figuresTable(results)}

The exact workload of every scenario of this run (rows, row shape, transactions, clients,
settings), its time series and the full version list are in
[performance/results.json](performance/results.json);
\`node scripts/bench-report.mjs docs/performance/results.json\` prints them as a report.
`;
}

// ---------------------------------------------------------------------------------------------
// SVG charts

const WIDTH = 900;
const FONT = 'Helvetica, Arial, sans-serif';
const COLORS = ['#1f6fb4', '#d9541e', '#2e8b3d', '#8a4fb8', '#b8860b', '#555555'];
const MET_COLORS = { yes: '#2e8b3d', no: '#c62828', none: '#5b7fa6' };

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

function text(x, y, content, { size = 12, anchor = 'start', weight = 'normal', color = '#222', rotate, halo } = {}) {
  const transform = rotate ? ` transform="rotate(${rotate} ${x} ${y})"` : '';
  // A white outline under the glyphs keeps labels readable over grid and target lines.
  const outline = halo ? ' stroke="#ffffff" stroke-width="3" paint-order="stroke"' : '';
  return `<text x="${r(x)}" y="${r(y)}" font-size="${size}" font-weight="${weight}" text-anchor="${anchor}" fill="${color}"${outline}${transform}>${esc(content)}</text>`;
}

const r = (n) => Math.round(n * 10) / 10;
/** Rough width of 12 px text, for layout. */
const textWidth = (s, size = 12) => String(s).length * size * 0.6;

/** Round tick values covering [min, max]. */
function niceTicks(min, max, count = 5) {
  if (!(max > min)) max = min + 1;
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].find((m) => m * magnitude >= raw) * magnitude;
  const first = Math.floor(min / step) * step;
  const last = Math.ceil(max / step) * step;
  const values = [];
  for (let v = first; v <= last + step / 2; v += step) values.push(Math.round(v * 1e6) / 1e6);
  return { min: first, max: last, values };
}

function tickLabel(v) {
  const abs = Math.abs(v);
  if (abs >= 1e6) return `${formatNumber(v / 1e6)}M`;
  if (abs >= 1e4) return `${formatNumber(v / 1e3)}k`;
  return formatNumber(v);
}

/** At most `max` points: the largest value of each run of points, so peaks stay visible. */
function thin(points, max = 800) {
  if (points.length <= max) return points;
  const size = Math.ceil(points.length / max);
  const out = [];
  for (let i = 0; i < points.length; i += size) {
    const group = points.slice(i, i + size);
    out.push(group.reduce((a, b) => (b[1] > a[1] ? b : a)));
  }
  return out;
}

function legend(x, y, entries) {
  const parts = [];
  let cx = x;
  for (const { label, color, kind } of entries) {
    if (kind === 'line')
      parts.push(`<line x1="${cx}" y1="${y - 4}" x2="${cx + 18}" y2="${y - 4}" stroke="${color}" stroke-width="2.5"/>`);
    else if (kind === 'dashed')
      parts.push(
        `<line x1="${cx}" y1="${y - 4}" x2="${cx + 18}" y2="${y - 4}" stroke="${color}" stroke-width="1.5" stroke-dasharray="5 3"/>`,
      );
    else if (kind === 'tick')
      parts.push(
        `<line x1="${cx + 9}" y1="${y - 11}" x2="${cx + 9}" y2="${y + 3}" stroke="${color}" stroke-width="2"/>`,
      );
    else parts.push(`<rect x="${cx}" y="${y - 10}" width="18" height="10" fill="${color}"/>`);
    parts.push(text(cx + 24, y, label, { size: 12 }));
    cx += 24 + textWidth(label) + 18;
  }
  return parts.join('');
}

function panelHeader(y, title, subtitle) {
  return [
    text(16, y + 20, title, { size: 15, weight: 'bold' }),
    subtitle ? text(16, y + 38, subtitle, { size: 12, color: '#555' }) : '',
  ].join('');
}

/**
 * A line chart panel. Series points are [x, y] in the panel's units (x already in seconds).
 * `markers` are vertical lines (events), `hLines` horizontal ones (targets). Returns its height.
 */
function linePanel(y0, spec) {
  const height = spec.height ?? 300;
  const parts = [panelHeader(y0, spec.title, spec.subtitle)];
  const series = spec.series.filter((s) => s.points.length > 0);
  const plot = { left: 86, right: WIDTH - 28, top: y0 + 76, bottom: y0 + height - 46 };
  if (series.length === 0) {
    parts.push(
      text(WIDTH / 2, (plot.top + plot.bottom) / 2, spec.empty ?? 'no data in this run', {
        anchor: 'middle',
        color: '#888',
        size: 14,
      }),
    );
    return { height, svg: parts.join('') };
  }
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const xTicks = niceTicks(spec.xMin ?? Math.min(0, ...xs), Math.max(...xs, ...(spec.markers ?? []).map((m) => m.x)));
  if (spec.xMin > 0) {
    // A zoomed panel starts at its xMin, not at the round tick below it.
    xTicks.min = spec.xMin;
    xTicks.values = xTicks.values.filter((v) => v >= spec.xMin);
  }
  const yTicks = niceTicks(0, Math.max(...ys, ...(spec.hLines ?? []).map((h) => h.y), spec.yMinTop ?? 0) * 1.05);
  const sx = (x) => plot.left + ((x - xTicks.min) / (xTicks.max - xTicks.min)) * (plot.right - plot.left);
  const sy = (y) => plot.bottom - ((y - yTicks.min) / (yTicks.max - yTicks.min)) * (plot.bottom - plot.top);

  parts.push(
    legend(plot.left, y0 + 60, [
      ...series.map((s, i) => ({ label: s.label, color: s.color ?? COLORS[i % COLORS.length], kind: 'line' })),
      ...(spec.hLines ?? []).map((h) => ({ label: h.label, color: h.color ?? '#c62828', kind: 'dashed' })),
    ]),
  );
  for (const v of yTicks.values) {
    parts.push(`<line x1="${plot.left}" y1="${r(sy(v))}" x2="${plot.right}" y2="${r(sy(v))}" stroke="#e3e3e3"/>`);
    parts.push(text(plot.left - 8, sy(v) + 4, tickLabel(v), { anchor: 'end', size: 11, color: '#444' }));
  }
  for (const v of xTicks.values) {
    parts.push(`<line x1="${r(sx(v))}" y1="${plot.bottom}" x2="${r(sx(v))}" y2="${plot.bottom + 5}" stroke="#444"/>`);
    parts.push(text(sx(v), plot.bottom + 19, tickLabel(v), { anchor: 'middle', size: 11, color: '#444' }));
  }
  parts.push(
    `<line x1="${plot.left}" y1="${plot.bottom}" x2="${plot.right}" y2="${plot.bottom}" stroke="#444"/>`,
    `<line x1="${plot.left}" y1="${plot.top}" x2="${plot.left}" y2="${plot.bottom}" stroke="#444"/>`,
    text((plot.left + plot.right) / 2, plot.bottom + 38, spec.xLabel, { anchor: 'middle', size: 12 }),
    text(22, (plot.top + plot.bottom) / 2, spec.yLabel, { anchor: 'middle', size: 12, rotate: -90 }),
  );
  // Event markers, labels stepped down a row when they would overlap the previous one.
  let lastEnd = -Infinity;
  let row = 0;
  for (const m of [...(spec.markers ?? [])].sort((a, b) => a.x - b.x)) {
    const x = sx(m.x);
    const width = textWidth(m.label, 11);
    const flip = x + 4 + width > plot.right;
    row = (flip ? x - 4 - width : x) < lastEnd ? (row + 1) % 4 : 0;
    lastEnd = flip ? x : x + 4 + width;
    parts.push(
      `<line x1="${r(x)}" y1="${plot.top}" x2="${r(x)}" y2="${plot.bottom}" stroke="#777" stroke-dasharray="3 3"/>`,
      text(flip ? x - 4 : x + 4, plot.top + 11 + row * 13, m.label, {
        size: 11,
        color: '#444',
        anchor: flip ? 'end' : 'start',
        halo: true,
      }),
    );
  }
  for (const h of spec.hLines ?? []) {
    if (h.y > yTicks.max) continue;
    parts.push(
      `<line x1="${plot.left}" y1="${r(sy(h.y))}" x2="${plot.right}" y2="${r(sy(h.y))}" stroke="${h.color ?? '#c62828'}" stroke-width="1.5" stroke-dasharray="6 4"/>`,
    );
  }
  series.forEach((s, i) => {
    const color = s.color ?? COLORS[i % COLORS.length];
    const points = thin(s.points.filter((p) => p[0] >= xTicks.min));
    parts.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round" points="${points.map((p) => `${r(sx(p[0]))},${r(sy(p[1]))}`).join(' ')}"/>`,
    );
    if (points.length <= 40)
      for (const p of points) parts.push(`<circle cx="${r(sx(p[0]))}" cy="${r(sy(p[1]))}" r="2.5" fill="${color}"/>`);
  });
  return { height, svg: parts.join('') };
}

/** A horizontal bar chart panel: one bar per figure, coloured by whether its target is met. */
function barPanel(y0, spec) {
  const bars = spec.bars.filter((b) => typeof b.value === 'number');
  const rowHeight = 26;
  const labelWidth = Math.min(420, Math.max(160, ...bars.map((b) => textWidth(b.label) + 24)));
  const height = 76 + Math.max(1, bars.length) * rowHeight + 52;
  const parts = [panelHeader(y0, spec.title, spec.subtitle)];
  const plot = {
    left: 16 + labelWidth,
    right: WIDTH - 120,
    top: y0 + 76,
    bottom: y0 + 76 + Math.max(1, bars.length) * rowHeight,
  };
  if (bars.length === 0) {
    parts.push(
      text(WIDTH / 2, plot.top + 14, spec.empty ?? 'no data in this run', {
        anchor: 'middle',
        color: '#888',
        size: 14,
      }),
    );
    return { height, svg: parts.join('') };
  }
  parts.push(
    legend(plot.left, y0 + 60, [
      { label: 'target met', color: MET_COLORS.yes },
      { label: 'target not met', color: MET_COLORS.no },
      { label: 'no target', color: MET_COLORS.none },
      { label: 'target', color: '#111', kind: 'tick' },
    ]),
  );
  const top = Math.max(...bars.map((b) => Math.max(b.value, b.target?.min ?? b.target?.max ?? 0)));
  const ticks = niceTicks(0, top * 1.05);
  const sx = (v) => plot.left + (v / ticks.max) * (plot.right - plot.left);
  for (const v of ticks.values) {
    parts.push(`<line x1="${r(sx(v))}" y1="${plot.top}" x2="${r(sx(v))}" y2="${plot.bottom}" stroke="#e3e3e3"/>`);
    parts.push(text(sx(v), plot.bottom + 17, tickLabel(v), { anchor: 'middle', size: 11, color: '#444' }));
  }
  parts.push(
    `<line x1="${plot.left}" y1="${plot.bottom}" x2="${plot.right}" y2="${plot.bottom}" stroke="#444"/>`,
    text((plot.left + plot.right) / 2, plot.bottom + 36, spec.xLabel, { anchor: 'middle', size: 12 }),
  );
  bars.forEach((b, i) => {
    const y = plot.top + i * rowHeight;
    const met = targetMet(b);
    const color = met === undefined ? MET_COLORS.none : met ? MET_COLORS.yes : MET_COLORS.no;
    const end = sx(b.value);
    parts.push(
      text(plot.left - 8, y + 17, b.label, { anchor: 'end', size: 12 }),
      `<rect x="${plot.left}" y="${y + 5}" width="${r(Math.max(1, end - plot.left))}" height="16" fill="${color}"/>`,
    );
    const target = b.target?.min ?? b.target?.max;
    if (target !== undefined)
      parts.push(
        `<line x1="${r(sx(target))}" y1="${y + 1}" x2="${r(sx(target))}" y2="${y + 25}" stroke="#111" stroke-width="2"/>`,
      );
    parts.push(text(end + 5, y + 17, `${formatNumber(b.value)} ${b.unit}`, { size: 11, color: '#222', halo: true }));
  });
  return { height, svg: parts.join('') };
}

function provenance(results) {
  const v = results.versions;
  const settings = Object.entries(results.settings ?? {})
    .map(([k, val]) => `${k}=${val}`)
    .join(' ');
  return [
    `run ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC`,
    v.git ? `commit ${v.git.commit.slice(0, 12)}${v.git.dirty ? ' (uncommitted changes)' : ''}` : undefined,
    settings || 'full-size workloads',
    `${results.machine.cores} cores`,
    `Node ${v.node}`,
    v.postgres ? `Postgres ${v.postgres.split(' ')[0]}` : undefined,
  ]
    .filter(Boolean)
    .join(' · ');
}

/** Splits `content` at spaces into lines of at most `width` px of 11 px text. */
function wrap(content, width) {
  const lines = [''];
  for (const word of content.split(' ')) {
    const line = lines[lines.length - 1];
    if (line && textWidth(`${line} ${word}`, 11) > width) lines.push(word);
    else lines[lines.length - 1] = line ? `${line} ${word}` : word;
  }
  return lines;
}

function svgDocument(results, title, panels) {
  const header = wrap(provenance(results), WIDTH - 100).map((line, i) =>
    text(16, 44 + i * 14, line, { size: 11, color: '#666' }),
  );
  let y = 42 + header.length * 14;
  const body = [];
  for (const panel of panels) {
    const { height, svg } = panel(y);
    body.push(svg);
    y += height + 12;
  }
  const height = y + 4;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="${FONT}">
<title>${esc(title)}</title>
<rect width="100%" height="100%" fill="#ffffff"/>
${text(16, 26, title, { size: 18, weight: 'bold' })}
${header.join('\n')}
${body.join('\n')}
</svg>
`;
}

/** Points on seconds, shifted so `originMs` is 0. */
const seconds = (points, originMs = 0) => points.map(([t, v]) => [(t - originMs) / 1000, v]);
const seriesOf = (scenario, name) => scenario?.series?.find((s) => s.name === name)?.points ?? [];
const eventAt = (scenario, name) => scenario?.events?.find((e) => e.name === name)?.atMs;

function throughputChart(results) {
  const quiet = findScenario(results, 'replication-initial');
  const concurrent = findScenario(results, 'replication-concurrent-snapshot');
  const bulk = findScenario(results, 'replication-streaming-bulk');
  const small = findScenario(results, 'replication-streaming-small-transactions');
  const bar = (scenario, name) => {
    const f = findFigure(scenario, name);
    return f && { label: scenario.title, value: f.value, unit: f.unit, target: f.target };
  };
  return svgDocument(results, 'Replication throughput', [
    (y) =>
      barPanel(y, {
        title: 'Rows replicated per second, by scenario',
        subtitle:
          'Initial: rows / time to the first checkpoint. Streaming: rows / time until caught up (1 row per pgbench transaction).',
        xLabel: 'rows/s (tx/s for pgbench)',
        bars: [
          bar(quiet, 'rowsPerSecond'),
          bar(concurrent, 'rowsPerSecond'),
          bar(bulk, 'rowsPerSecond'),
          bar(small, 'transactionsPerSecond'),
        ].filter(Boolean),
      }),
    (y) =>
      linePanel(y, {
        title: 'Initial snapshot: rows copied per second over time',
        subtitle: `Rows applied by snapshot flushes per 0.5 s interval, ${formatNumber(quiet?.workload?.rows ?? concurrent?.workload?.rows)} rows; the target is for the average to the first checkpoint.`,
        xLabel: 'seconds since replication started',
        yLabel: 'rows/s',
        series: [
          {
            label: 'quiet source',
            points: seconds(seriesOf(quiet, 'snapshotRowsPerSecond'), eventAt(quiet, 'replication-started')),
          },
          {
            label: 'while 500 rows/s are written',
            points: seconds(seriesOf(concurrent, 'snapshotRowsPerSecond'), eventAt(concurrent, 'replication-started')),
          },
        ],
        hLines: findFigure(quiet, 'rowsPerSecond')?.target
          ? [
              {
                y: findFigure(quiet, 'rowsPerSecond').target.min,
                label: `target ${formatNumber(findFigure(quiet, 'rowsPerSecond').target.min)} rows/s`,
              },
            ]
          : [],
        xMin: 0,
      }),
  ]);
}

function lagChart(results) {
  const concurrent = findScenario(results, 'replication-concurrent-snapshot');
  const steady = findScenario(results, 'replication-steady-lag');
  const lag = seconds(seriesOf(concurrent, 'lagMs'));
  const markers = (concurrent?.events ?? []).map((e) => ({ x: e.atMs / 1000, label: e.label }));
  const firstCheckpoint = eventAt(concurrent, 'first-checkpoint');
  const tailTarget = findFigure(concurrent, 'tailLagP99Ms')?.target?.max ?? 100;
  const steadyP50 = findFigure(steady, 'p50Ms')?.value;
  const steadyP99 = findFigure(steady, 'p99Ms');
  return svgDocument(results, 'Replication lag', [
    (y) =>
      linePanel(y, {
        title: 'Initial replication while 500 rows/s are written: lag over time',
        subtitle: `Age of the oldest write not yet in a storage checkpoint, sampled every ${concurrent?.workload?.lagSampleMs ?? 250} ms; it grows until the first checkpoint, then catches up.`,
        xLabel: 'seconds since the writes started',
        yLabel: 'lag (ms)',
        series: [{ label: 'lag', points: lag }],
        markers,
        hLines: [{ y: tailTarget, label: `${tailTarget} ms (caught up)` }],
        empty: 'no data: the concurrent-snapshot scenario did not run',
      }),
    (y) =>
      linePanel(y, {
        title: 'The same, from the first checkpoint on',
        subtitle: `Lag p99 after catching up: ${formatNumber(findFigure(concurrent, 'tailLagP99Ms')?.value)} ms (target <= ${tailTarget} ms: no lag left).`,
        xLabel: 'seconds since the writes started',
        yLabel: 'lag (ms)',
        series: [
          {
            label: 'lag',
            points: firstCheckpoint === undefined ? [] : lag.filter(([t]) => t >= firstCheckpoint / 1000),
          },
        ],
        markers: markers.filter((m) => firstCheckpoint !== undefined && m.x >= firstCheckpoint / 1000),
        hLines: [{ y: tailTarget, label: `target ${tailTarget} ms` }],
        xMin: firstCheckpoint === undefined ? 0 : firstCheckpoint / 1000,
        yMinTop: tailTarget * 1.5,
        height: 260,
        empty: 'no data: the concurrent-snapshot scenario did not reach its first checkpoint',
      }),
    (y) =>
      linePanel(y, {
        title: 'Steady 1,000 rows/s: commit-to-checkpoint lag of each transaction',
        subtitle: `p50 ${formatNumber(steadyP50)} ms, p99 ${formatNumber(steadyP99?.value)} ms (target p99 ${formatTarget(steadyP99?.target)} ms).`,
        xLabel: 'seconds since the writes started',
        yLabel: 'lag (ms)',
        series: [{ label: 'lag of a transaction', points: seconds(seriesOf(steady, 'lagMs')), color: COLORS[2] }],
        hLines: steadyP99?.target ? [{ y: steadyP99.target.max, label: `target p99 ${steadyP99.target.max} ms` }] : [],
        height: 260,
        empty: 'no data: the steady-lag scenario did not run',
      }),
  ]);
}

function memoryChart(results) {
  const all = scenarios(results);
  const overTime = [
    'replication-initial',
    'replication-concurrent-snapshot',
    'storage-write',
    'sync-download-ndjson',
  ].map((id) => all.find((s) => s.id === id));
  return svgDocument(results, 'Memory', [
    (y) =>
      barPanel(y, {
        title: 'Peak RSS per scenario',
        subtitle:
          'RSS of the bench process that ran the scenario (it runs the replication / storage / sync server in process; Postgres not included).',
        xLabel: 'MB (2^20 bytes)',
        bars: all
          .map((s) => {
            const f = findFigure(s, 'peakRssMB');
            return f && { label: s.id, value: f.value, unit: f.unit, target: f.target };
          })
          .filter(Boolean),
      }),
    (y) =>
      linePanel(y, {
        title: 'RSS over time',
        subtitle: `Sampled every ${results.settings?.BENCH_SAMPLE_MS ?? 250} ms; each bench is its own process, so a scenario starts from what the earlier ones of its bench left.`,
        xLabel: 'seconds since the scenario started',
        yLabel: 'RSS (MB)',
        series: overTime.filter(Boolean).map((s) => ({ label: s.id, points: seconds(seriesOf(s, 'rss')) })),
        hLines: [],
      }),
  ]);
}

// ---------------------------------------------------------------------------------------------

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--')) ?? path.join(root, 'bench/results/latest.json');
  if (!existsSync(file)) {
    console.error(`${file} does not exist: run \`npm run bench\` first.`);
    process.exit(2);
  }
  try {
    for (const written of writeReport(file, { publish: args.includes('--publish') }))
      console.log(`written: ${path.relative(process.cwd(), written)}`);
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
