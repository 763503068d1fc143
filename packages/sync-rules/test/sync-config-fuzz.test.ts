/**
 * Fuzz suite of the sync config parser (issue 13): generated valid configs in many YAML layouts,
 * mutations of them and unstructured text. Every input gets a config or positioned diagnostics,
 * never an exception; valid configs compile and evaluate rows and connections without throwing.
 * The generators live in sync-config-arbitraries.ts.
 *
 * Runs with a fixed seed by default: 2,810 runs, about 2,900 generated configs and texts (plus rows
 * and connections to evaluate), some 15 s on a 2-core machine. fast-check prints the seed and the
 * shrunk counterexample of a failure. To run longer or with other inputs:
 *   FUZZ_RUNS=20000 FUZZ_SEED=random pnpm --filter @bucketsync/sync-rules exec vitest run test/sync-config-fuzz.test.ts
 * FUZZ_RUNS sets the runs of every property (default: each property's own count below); FUZZ_SEED
 * is an integer, or `random` for a new seed per run (printed at the start).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Parser } from 'yaml';
import {
  parseBucketId,
  parseJsonRow,
  parseSyncConfig,
  rowToJson,
  serializeParameterLookup,
  jsToJsonText,
  type ConnectionRequest,
  type Diagnostic,
  type ParseSyncConfigResult,
  type SourceTableRef,
  type SqliteRow,
  type SyncConfig,
} from '../src/index.js';
import {
  connectionRequest,
  expectedWarnings,
  layout,
  mapQuery,
  modelQueries,
  mutatedSyncConfig,
  PARAMETER_NAMES,
  renderSyncConfig,
  sourceRow,
  sourceTables,
  syncConfigModel,
  syncConfigModelOf,
  unstructuredText,
  type SyncConfigModel,
} from './sync-config-arbitraries.js';

const SEED =
  process.env.FUZZ_SEED === 'random'
    ? Date.now() ^ (Math.random() * 0x100000000)
    : process.env.FUZZ_SEED
      ? Number(process.env.FUZZ_SEED)
      : 20_251_013;
const RUNS = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : undefined;
if (process.env.FUZZ_SEED === 'random') console.log(`sync config fuzz: FUZZ_SEED=${SEED}`);
// No timing assertion: the timeout only bounds a run on a slow or busy machine (none with FUZZ_RUNS).
const TIMEOUT = RUNS === undefined ? 120_000 : 0;

/**
 * Checks `predicate` on generated inputs with the suite's seed; `runs` is the default run count.
 * Every few runs it yields to the event loop: a long synchronous run trips vitest's worker RPC timeout.
 */
async function check<T>(input: fc.Arbitrary<T>, predicate: (value: T) => void, runs: number): Promise<void> {
  let count = 0;
  await fc.assert(
    fc.asyncProperty(input, async (value) => {
      predicate(value);
      if (++count % 25 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }),
    { seed: SEED, numRuns: RUNS ?? runs },
  );
}

const PARSE_OPTIONS = fc.record(
  { defaultSchema: fc.constantFrom('public', 'other', 'Mixed Case'), configId: fc.constantFrom('1', '42') },
  { requiredKeys: [] },
);

/** Offsets where each line starts (lines end at `\n`, as the YAML line counter counts them). */
function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') starts.push(i + 1);
  return starts;
}

/** The text offset of a 1-based line and column, or undefined when the position is outside the text. */
function offsetOf(starts: number[], text: string, line: number, column: number): number | undefined {
  const start = starts[line - 1];
  if (start === undefined || !Number.isInteger(column) || column < 1) return undefined;
  const next = starts[line];
  const lineEnd = next === undefined ? text.length : next - 1;
  const offset = start + column - 1;
  return offset <= lineEnd ? offset : undefined;
}

/**
 * What every parse result must satisfy, whatever the input: diagnostics have a severity, a
 * message and a range inside the text, come sorted, and a config is returned iff none is fatal.
 * No diagnostic is the parser's catch-all for an unexpected exception.
 */
function expectWellFormed(text: string, result: ParseSyncConfigResult): void {
  const starts = lineStarts(text);
  let previous = -1;
  for (const d of result.diagnostics) {
    expect(['fatal', 'warning']).toContain(d.severity);
    expect(typeof d.message).toBe('string');
    expect(d.message.trim().length).toBeGreaterThan(0);
    expect(d.message).not.toMatch(/^Internal error/);
    const start = offsetOf(starts, text, d.line, d.column);
    const end = offsetOf(starts, text, d.endLine, d.endColumn);
    if (start === undefined || end === undefined) {
      expect.fail(`diagnostic outside the text (${text.length} characters): ${JSON.stringify(d)}`);
    }
    expect(end).toBeGreaterThanOrEqual(start);
    expect(start).toBeGreaterThanOrEqual(previous);
    previous = start;
  }
  expect(result.config === undefined).toBe(result.diagnostics.some((d) => d.severity === 'fatal'));
}

/** Parses, checks the result is well formed, and checks a second parse gives the same diagnostics. */
function parseChecked(text: string, options: Parameters<typeof parseSyncConfig>[1] = {}): ParseSyncConfigResult {
  const result = parseSyncConfig(text, options);
  expectWellFormed(text, result);
  const again = parseSyncConfig(text, options);
  expect(again.diagnostics).toEqual(result.diagnostics);
  expect(again.config === undefined).toBe(result.config === undefined);
  if (result.config) expect(again.config!.sourceTables).toEqual(result.config.sourceTables);
  return result;
}

/**
 * Evaluates rows the way `bucketsync eval-row` does (row JSON -> evaluateRow, evaluateParameterRow,
 * serialised output) and resolves connections; nothing may throw. Returns the results for comparison.
 */
function evaluate(
  config: SyncConfig,
  tables: SourceTableRef[],
  rows: SqliteRow[],
  lookupRows: SqliteRow[],
  requests: ConnectionRequest[],
): string[] {
  const prefixes = [...config.bucketDefinitions.map((b) => b.name), ...config.streams.map((s) => s.name)];
  const out: string[] = [];
  for (const table of tables) {
    for (const row of rows) {
      config.tableIsRelevant(table);
      for (const item of config.evaluateRow(table, row)) {
        if ('error' in item) {
          expect(item.error).toMatch(/^Could not evaluate row /);
          out.push(item.error);
          continue;
        }
        const parts = parseBucketId(item.bucket);
        expect(prefixes).toContain(parts.definition);
        expect(typeof item.id).toBe('string');
        out.push(`${item.bucket} ${item.table} ${item.id} ${rowToJson(item.data)}`);
      }
      for (const entry of config.evaluateParameterRow(table, row)) {
        if ('error' in entry) {
          expect(entry.error).toMatch(/^Could not evaluate parameter row /);
          out.push(entry.error);
          continue;
        }
        out.push(`${serializeParameterLookup(entry.lookup)} ${entry.outputs.map(rowToJson).join(',')}`);
      }
      for (const event of config.eventDefinitions) {
        if (event.firesFor(table)) out.push(event.evaluatePayload(table, row).map(rowToJson).join(','));
      }
    }
  }
  for (const request of requests) {
    const resolution = config.resolveConnection(request);
    // Each lookup finds some of the generated rows, so the connection gets table-backed buckets too.
    const results = new Map<string, SqliteRow[]>();
    resolution.lookups.forEach((lookup, i) => {
      results.set(serializeParameterLookup(lookup), lookupRows.slice(i % 3, (i % 3) + 2));
    });
    const buckets = resolution.finish(results, { maxBuckets: 50, maxParameterQueryResults: 50 });
    for (const b of buckets.buckets) {
      expect(prefixes).toContain(parseBucketId(b.bucket).definition);
      expect(b.priority).toBeGreaterThanOrEqual(0);
      expect(b.priority).toBeLessThanOrEqual(3);
    }
    out.push(JSON.stringify({ ...buckets, lookups: resolution.lookups.map(serializeParameterLookup) }));
  }
  return out;
}

/** Rows for evaluation: direct source rows, and rows that went through JSON as the eval-row CLI reads them. */
const rows = fc
  .array(sourceRow, { minLength: 1, maxLength: 3 })
  .map((list) => [
    ...list,
    ...list.map((row) =>
      parseJsonRow(jsToJsonText(Object.fromEntries(Object.entries(row).map(([k, v]) => [k, toJs(v)])))),
    ),
  ]);

/** A source value as the JSON a user would pass to `eval-row --row`. */
function toJs(value: unknown): unknown {
  if (value instanceof Uint8Array) return Array.from(value);
  if (typeof value === 'number' && !Number.isFinite(value)) return null;
  return value;
}

const lookupRows = fc.array(
  fc.dictionary(
    fc.constantFrom(...PARAMETER_NAMES, 'id', 'list_id', 'team_id', 'x'),
    sourceRow.map((r) => r.id ?? null),
    {
      maxKeys: 6,
    },
  ),
  { maxLength: 5 },
);

/** A valid model with what it takes to evaluate it. */
const evaluationInput = syncConfigModel.chain((model) =>
  fc.record({
    model: fc.constant(model),
    layout,
    options: PARSE_OPTIONS,
    rows,
    lookupRows,
    suffix: fc.constantFrom('', '1', '_archive'),
    requests: fc.array(connectionRequest(model.streams.map((s) => s.name)), { maxLength: 2 }),
  }),
);

function expectCompiles(model: SyncConfigModel, text: string, result: ParseSyncConfigResult): SyncConfig {
  const fatal = result.diagnostics.filter((d) => d.severity === 'fatal');
  expect(fatal, text).toEqual([]);
  const warnings = result.diagnostics.filter((d) => d.severity === 'warning');
  expect(warnings.length, text).toBe(expectedWarnings(model));
  for (const w of warnings) expect(w.message).toMatch(/^Potentially dangerous query: (bucket definition|stream) "/);
  const config = result.config!;
  expect(config.bucketDefinitions.map((b) => b.name)).toEqual(model.buckets.map((b) => b.name));
  expect(config.streams.map((s) => s.name)).toEqual(model.streams.map((s) => s.name));
  expect(config.eventDefinitions.map((e) => e.name)).toEqual(model.events.map((e) => e.name));
  expect(config.edition).toBe(model.edition ?? 1);
  return config;
}

/** Source tables matching a compiled config's patterns (wildcards with a suffix), for mutated configs. */
function tablesOf(config: SyncConfig): SourceTableRef[] {
  return config.sourceTables.map((p) => ({ schema: p.schema, name: p.isWildcard ? `${p.name}x` : p.name }));
}

/**
 * Offsets just after a mapping's `:` where the value follows on the same line after a space:
 * the places where YAML ignores how many spaces there are (read from the parser's token tree).
 */
function valueSeparatorOffsets(text: string): number[] {
  const out: number[] = [];
  const stack: unknown[] = Array.from(new Parser().parse(text));
  while (stack.length > 0) {
    const token = stack.pop() as
      | {
          type?: string;
          value?: unknown;
          items?: { key?: unknown; sep?: { type: string; offset: number }[]; value?: { offset: number } }[];
        }
      | undefined;
    if (!token || typeof token !== 'object') continue;
    if (token.type === 'document') stack.push(token.value);
    for (const item of token.items ?? []) {
      stack.push(item.key, item.value);
      const sep = item.sep ?? [];
      const colon = sep.findIndex((t) => t.type === 'map-value-ind');
      const after = sep.slice(colon + 1);
      if (colon < 0 || !item.value || after[0]?.type !== 'space' || after.some((t) => t.type !== 'space')) continue;
      const offset = sep[colon]!.offset + 1;
      if (!text.slice(offset, item.value.offset).includes('\n')) out.push(offset);
    }
  }
  return out;
}

/** Diagnostics of the text with `n` spaces inserted at `offset`, mapped back to the original columns. */
function unshift(diagnostics: Diagnostic[], text: string, offset: number, n: number): Diagnostic[] {
  const starts = lineStarts(text);
  let line = 0;
  while (line + 1 < starts.length && starts[line + 1]! <= offset) line++;
  const column = offset - starts[line]! + 1;
  const back = (l: number, c: number): number => (l !== line + 1 || c < column ? c : Math.max(column, c - n));
  return diagnostics.map((d) => ({ ...d, column: back(d.line, d.column), endColumn: back(d.endLine, d.endColumn) }));
}

describe('fuzz: generated valid sync configs', () => {
  it(
    'compile with no errors and only the expected warnings; evaluating rows (as eval-row does) and connections never throws',
    () =>
      check(
        evaluationInput,
        ({ model, layout: l, options, rows: r, lookupRows: lr, suffix, requests }) => {
          const text = renderSyncConfig(model, l);
          const result = parseSyncConfig(text, options);
          expectWellFormed(text, result);
          const config = expectCompiles(model, text, result);
          const tables = sourceTables(model, options.defaultSchema ?? 'public', suffix);
          const first = evaluate(config, tables, r, lr, requests);
          expect(evaluate(config, tables, r, lr, requests)).toEqual(first);
        },
        150,
      ),
    TIMEOUT,
  );

  it(
    'mean the same in every YAML layout: indentation, key quoting, scalar styles, comments, blank lines, CRLF',
    () =>
      check(
        fc.tuple(evaluationInput, layout),
        ([{ model, layout: l, options, rows: r, lookupRows: lr, suffix, requests }, other]) => {
          const a = renderSyncConfig(model, l);
          const b = renderSyncConfig(model, other);
          const first = parseChecked(a, options);
          const second = parseChecked(b, options);
          expect(second.diagnostics.map((d) => [d.severity, d.message])).toEqual(
            first.diagnostics.map((d) => [d.severity, d.message]),
          );
          const tables = sourceTables(model, options.defaultSchema ?? 'public', suffix);
          expect(evaluate(expectCompiles(model, b, second), tables, r, lr, requests)).toEqual(
            evaluate(expectCompiles(model, a, first), tables, r, lr, requests),
          );
        },
        60,
      ),
    TIMEOUT,
  );

  it(
    'report an error injected into any query at its exact line and column, in every scalar style',
    () =>
      check(
        fc.tuple(syncConfigModel, layout, fc.nat()),
        ([model, l, index]) => {
          const faulty = mapQuery(model, index, (q) => q.replace(/^SELECT /, 'SELECT nope(1) AS zz, '));
          expect(modelQueries(faulty).filter((q) => q.includes('nope(1)'))).toHaveLength(1);
          const text = renderSyncConfig(faulty, l);
          const result = parseSyncConfig(text);
          expectWellFormed(text, result);
          const fatal = result.diagnostics.filter((d) => d.severity === 'fatal');
          expect(fatal.map((d) => d.message)).toEqual([
            'Unknown function nope(): see the list of supported functions in docs/sync-config.md.',
          ]);
          const at = text.indexOf('nope(1)');
          const starts = lineStarts(text);
          const position = (offset: number): [number, number] => {
            const line = starts.filter((s) => s <= offset).length;
            return [line, offset - starts[line - 1]! + 1];
          };
          const d = fatal[0]!;
          expect([d.line, d.column, d.endLine, d.endColumn], text).toEqual([
            ...position(at),
            ...position(at + 'nope(1)'.length),
          ]);
        },
        150,
      ),
    TIMEOUT,
  );
});

describe('fuzz: broken and arbitrary input never crashes the parser', () => {
  it(
    'mutated configs (token edits, truncation, odd unicode, NUL, long names, deep nesting, wrong YAML types, duplicate keys, tabs) get a config or positioned diagnostics, the same every time',
    () =>
      check(
        fc.tuple(mutatedSyncConfig, PARSE_OPTIONS, rows),
        ([{ text }, options, r]) => {
          const result = parseChecked(text, options);
          // A mutation may leave a valid config: it still evaluates rows without throwing.
          if (result.config) evaluate(result.config, tablesOf(result.config), r, [], []);
        },
        300,
      ),
    TIMEOUT,
  );

  it(
    'unstructured text (random code points, YAML and SQL fragments) gets positioned diagnostics',
    () => check(unstructuredText, (text) => void parseChecked(text), 2000),
    TIMEOUT,
  );

  it(
    "more spaces after a key's colon change no diagnostic except its column on that line",
    () => {
      const text = fc.oneof(
        mutatedSyncConfig.map((m) => m.text),
        fc.tuple(syncConfigModelOf(2), layout).map(([model, l]) => renderSyncConfig(model, l)),
      );
      return check(
        fc.tuple(text, fc.nat(), fc.integer({ min: 1, max: 8 })),
        ([original, pick, n]) => {
          const places = valueSeparatorOffsets(original);
          if (places.length === 0) return;
          const offset = places[pick % places.length]!;
          const wider = original.slice(0, offset) + ' '.repeat(n) + original.slice(offset);
          const before = parseSyncConfig(original);
          const after = parseSyncConfig(wider);
          expectWellFormed(wider, after);
          expect(unshift(after.diagnostics, wider, offset, n)).toEqual(before.diagnostics);
          expect(after.config === undefined).toBe(before.config === undefined);
        },
        150,
      );
    },
    TIMEOUT,
  );
});
