/**
 * Parses sync config YAML into a compiled SyncConfig plus diagnostics. Walks the YAML tree
 * (keeping source ranges), checks keys and names, compiles every SQL text, and reports each
 * problem with a position; one bad query does not hide problems in the others.
 */
import {
  Composer,
  type Document,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  Parser,
  type CST,
  type Node,
  type Pair,
  type YAMLMap,
  YAMLParseError,
} from 'yaml';
import { bucketIdPrefix } from './bucket-id.js';
import { BucketDefinition } from './bucket-definition.js';
import { compileDataQuery, type DataQuery } from './data-query.js';
import { CompileError, DiagnosticCollector, type Diagnostic, type SourceRange } from './diagnostic.js';
import { EventDefinition } from './event-definition.js';
import { MAX_NESTING_DEPTH, nestingLimitMessage } from './nesting-limit.js';
import {
  compileParameterQuery,
  StaticParameterQuery,
  type ParameterQuery,
  type RequestUse,
} from './parameter-query.js';
import type { RequestDialect, SqlText } from './sql-expression.js';
import { parseSelect } from './sql-statement.js';
import { compileStream, type StreamDefinition } from './stream-definition.js';
import { CompiledSyncConfig, type SyncConfig } from './sync-config.js';
import { scalarSourceText } from './yaml-source.js';

/** Options of {@link parseSyncConfig}. */
export interface ParseSyncConfigOptions {
  /** Schema of unqualified table names. Default `public`. */
  defaultSchema?: string;
  /**
   * Id of this deployed config. When the config uses versioned bucket ids (edition 2), bucket
   * ids get a `<configId>#` prefix so a redeployed config never reuses the old buckets.
   */
  configId?: string;
}

/** Result of {@link parseSyncConfig}: `config` is undefined iff a diagnostic is fatal. */
export interface ParseSyncConfigResult {
  config: SyncConfig | undefined;
  diagnostics: Diagnostic[];
}

const TOP_LEVEL_KEYS = ['bucket_definitions', 'streams', 'event_definitions', 'config', 'with'];
const BUCKET_KEYS = ['parameters', 'data', 'priority', 'accept_potentially_dangerous_queries'];
const STREAM_KEYS = ['query', 'auto_subscribe', 'priority', 'accept_potentially_dangerous_queries'];
const INVALID_NAME = /[[\]#|]/;

interface Entry {
  key: string;
  keyRange: SourceRange;
  value: Node | null;
}

function rangeOf(node: Node | null | undefined, fallback: SourceRange): SourceRange {
  const range = node?.range;
  return range ? { start: range[0], end: range[1] } : fallback;
}

/** True when both lists hold the same distinct names, in any order (a set: queries may have many columns). */
function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const names = new Set(a);
  return b.every((n) => names.has(n));
}

function describeUse(use: RequestUse): boolean {
  return use.unauthenticated && !use.authenticated;
}

/**
 * Offset of the first YAML collection nested deeper than MAX_NESTING_DEPTH, found by walking the
 * parser's token tree with an explicit stack (the composer recurses once per level, so it must not
 * see such input); undefined when the nesting is within the limit.
 */
function tooDeepYamlOffset(tokens: readonly CST.Token[]): number | undefined {
  const stack: { token: CST.Token | undefined; depth: number }[] = tokens.map((token) => ({ token, depth: 0 }));
  while (stack.length > 0) {
    const { token, depth } = stack.pop()!;
    if (!token) continue;
    switch (token.type) {
      case 'document':
        stack.push({ token: token.value, depth });
        break;
      case 'block-map':
      case 'block-seq':
      case 'flow-collection':
        if (depth >= MAX_NESTING_DEPTH) return token.offset;
        for (const item of token.items) {
          if ('key' in item) stack.push({ token: item.key ?? undefined, depth: depth + 1 });
          stack.push({ token: item.value, depth: depth + 1 });
        }
        break;
    }
  }
  return undefined;
}

/** Parses and compiles a sync config; never throws, whatever the input. */
export function parseSyncConfig(yamlText: string, options: ParseSyncConfigOptions = {}): ParseSyncConfigResult {
  const parser = new SyncConfigParser(yamlText, options);
  try {
    return parser.parse();
  } catch (error) {
    // Not reached for any known input; a bug must still become a diagnostic, not a crash of validate or start.
    return parser.internalError(error);
  }
}

class SyncConfigParser {
  private readonly lines = new LineCounter();
  private readonly diagnostics: DiagnosticCollector;
  private readonly defaultSchema: string;
  private edition = 1;
  private readonly start: SourceRange = { start: 0, end: 0 };

  constructor(
    private readonly text: string,
    private readonly options: ParseSyncConfigOptions,
  ) {
    this.diagnostics = new DiagnosticCollector(this.lines);
    this.defaultSchema = options.defaultSchema ?? 'public';
  }

  parse(): ParseSyncConfigResult {
    // Lines are counted here, not by the YAML lexer: it misses line breaks in some malformed input
    // (after a NUL, inside a broken flow collection), which put later diagnostics on the wrong line.
    this.lines.addNewLine(0);
    for (let i = this.text.indexOf('\n'); i >= 0; i = this.text.indexOf('\n', i + 1)) this.lines.addNewLine(i + 1);
    const tokens = Array.from(new Parser().parse(this.text));
    const tooDeep = tooDeepYamlOffset(tokens);
    if (tooDeep !== undefined) {
      this.diagnostics.fatal(
        nestingLimitMessage(
          'YAML collections are',
          'a sync config needs a few levels (streams: / name: / query:); remove the extra [ ] { } or - nesting.',
        ),
        { start: tooDeep, end: tooDeep + 1 },
      );
      return this.result(undefined);
    }
    const doc = this.compose(tokens);
    for (const error of doc.errors) {
      this.diagnostics.fatal(`YAML syntax error: ${error.message.split('\n')[0]}`, this.yamlRange(error.pos));
    }
    for (const warning of doc.warnings) {
      this.diagnostics.warning(`YAML warning: ${warning.message.split('\n')[0]}`, this.yamlRange(warning.pos));
    }
    if (doc.errors.length > 0) return this.result(undefined);
    const root = doc.contents;
    if (!isMap(root)) {
      this.diagnostics.fatal(
        'The sync config must be a YAML mapping with bucket_definitions: and/or streams:.',
        rangeOf(root, this.start),
      );
      return this.result(undefined);
    }
    const top = new Map<string, Entry>();
    for (const entry of this.entries(root, 'at the top level')) {
      if (!TOP_LEVEL_KEYS.includes(entry.key)) {
        this.diagnostics.fatal(
          `Unknown top-level key "${entry.key}": expected bucket_definitions, streams, event_definitions or config.`,
          entry.keyRange,
        );
        continue;
      }
      top.set(entry.key, entry);
    }
    const config = top.get('config');
    if (config) this.parseConfigSection(config);
    const withEntry = top.get('with');
    if (withEntry) {
      this.diagnostics.fatal(
        'with: (common table expressions) needs config edition 3, which is not supported yet: inline the subqueries.',
        withEntry.keyRange,
      );
    }
    if (!top.has('bucket_definitions') && !top.has('streams')) {
      this.diagnostics.fatal(
        'The sync config has no bucket_definitions or streams: define at least one.',
        rangeOf(root, this.start),
      );
    }
    const names = new Map<string, SourceRange>();
    const buckets = this.definitionEntries(top.get('bucket_definitions'), 'bucket_definitions', names);
    const streamEntries = this.definitionEntries(top.get('streams'), 'streams', names);
    const bucketDefinitions = buckets
      .map((e) => this.parseBucketDefinition(e))
      .filter((d): d is BucketDefinition => d !== undefined);
    const streams = streamEntries.map((e) => this.parseStream(e)).filter((s): s is StreamDefinition => s !== undefined);
    const events = this.parseEvents(top.get('event_definitions'));
    if (this.diagnostics.hasFatal) return this.result(undefined);
    return this.result(new CompiledSyncConfig(this.edition, bucketDefinitions, streams, events));
  }

  /** The first document of the token stream (an error on a second one), as parseDocument does. */
  private compose(tokens: CST.Token[]): Document.Parsed {
    const composer = new Composer({ uniqueKeys: false, prettyErrors: false });
    let doc: Document.Parsed | undefined;
    for (const next of composer.compose(tokens, true, this.text.length)) {
      if (!doc) doc = next;
      else {
        doc.errors.push(
          new YAMLParseError([next.range[0], next.range[1]], 'MULTIPLE_DOCS', 'Source contains multiple documents'),
        );
        break;
      }
    }
    return doc!;
  }

  /** The range of a YAML library error inside the text: errors at the end of input come one character past it. */
  private yamlRange(pos: readonly [number, number]): SourceRange {
    const size = this.text.length;
    return { start: Math.min(pos[0], size), end: Math.min(pos[1], size) };
  }

  /** A fatal diagnostic for an unexpected exception, at the start of the file. */
  internalError(error: unknown): ParseSyncConfigResult {
    const message = error instanceof Error ? error.message : String(error);
    this.diagnostics.fatal(
      `Internal error while reading the sync config (${message}): please report it with the config that caused it.`,
      this.start,
    );
    return this.result(undefined);
  }

  private result(config: SyncConfig | undefined): ParseSyncConfigResult {
    return { config, diagnostics: this.diagnostics.sorted() };
  }

  /** Entries of a mapping; reports duplicate and non-scalar keys. */
  private entries(map: YAMLMap, where: string): Entry[] {
    const seen = new Set<string>();
    const out: Entry[] = [];
    for (const pair of map.items as Pair<Node | null, Node | null>[]) {
      const keyNode = pair.key;
      const keyRange = rangeOf(keyNode, rangeOf(map, this.start));
      if (!isScalar(keyNode) || typeof keyNode.value !== 'string') {
        this.diagnostics.fatal(`Keys must be plain names ${where}.`, keyRange);
        continue;
      }
      const key = keyNode.value;
      if (seen.has(key)) {
        this.diagnostics.fatal(`Duplicate key "${key}" ${where}: each key may appear only once.`, keyRange);
        continue;
      }
      seen.add(key);
      out.push({ key, keyRange, value: pair.value });
    }
    return out;
  }

  private lineOf(range: SourceRange): number {
    return this.lines.linePos(range.start).line;
  }

  /** Entries of bucket_definitions / streams, checking names (unique across both, no `[ ] # |`). */
  private definitionEntries(entry: Entry | undefined, section: string, names: Map<string, SourceRange>): Entry[] {
    if (!entry) return [];
    if (!isMap(entry.value)) {
      this.diagnostics.fatal(
        `${section} must be a mapping of names to definitions.`,
        rangeOf(entry.value, entry.keyRange),
      );
      return [];
    }
    const out: Entry[] = [];
    for (const e of this.entries(entry.value, `in ${section}`)) {
      if (e.key === '' || INVALID_NAME.test(e.key)) {
        this.diagnostics.fatal(
          `Invalid name "${e.key}": names must be non-empty and cannot contain [ ] # or |.`,
          e.keyRange,
        );
        continue;
      }
      const previous = names.get(e.key);
      if (previous) {
        this.diagnostics.fatal(
          `Duplicate name "${e.key}": bucket definition and stream names must be unique (also defined at line ${this.lineOf(previous)}).`,
          e.keyRange,
        );
        continue;
      }
      names.set(e.key, e.keyRange);
      out.push(e);
    }
    return out;
  }

  private parseConfigSection(entry: Entry): void {
    if (!isMap(entry.value)) {
      this.diagnostics.fatal(
        'config must be a mapping, e.g. config: { edition: 2 }.',
        rangeOf(entry.value, entry.keyRange),
      );
      return;
    }
    for (const e of this.entries(entry.value, 'in config')) {
      if (e.key !== 'edition') {
        this.diagnostics.fatal(`Unknown config option "${e.key}": the supported option is edition.`, e.keyRange);
        continue;
      }
      const value = isScalar(e.value) ? e.value.value : undefined;
      if (value !== 1 && value !== 2) {
        this.diagnostics.fatal('config.edition must be 1 or 2.', rangeOf(e.value, e.keyRange));
        continue;
      }
      this.edition = value;
    }
  }

  private sqlText(node: Node | null, fallback: SourceRange, dialect: RequestDialect): SqlText | undefined {
    if (!isScalar(node) || typeof node.value !== 'string') {
      this.diagnostics.fatal('Expected a SQL query string.', rangeOf(node, fallback));
      return undefined;
    }
    return { source: scalarSourceText(node, this.text), edition: this.edition, dialect };
  }

  /** Items of a string-or-list value (parameters:, data:, payloads:). */
  private queryNodes(node: Node | null): (Node | null)[] {
    if (isSeq(node)) return node.items as (Node | null)[];
    return node === null ? [] : [node];
  }

  private priority(node: Node | null, fallback: SourceRange): number | undefined {
    const value = isScalar(node) ? node.value : undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 3) {
      this.diagnostics.fatal(
        'priority must be an integer from 0 (highest) to 3 (lowest, the default).',
        rangeOf(node, fallback),
      );
      return undefined;
    }
    return value;
  }

  private boolean(node: Node | null, key: string, fallback: SourceRange): boolean {
    const value = isScalar(node) ? node.value : undefined;
    if (typeof value !== 'boolean') {
      this.diagnostics.fatal(`${key} must be true or false.`, rangeOf(node, fallback));
      return false;
    }
    return value;
  }

  /** Runs a compile step, turning CompileErrors into fatal diagnostics. */
  private attempt<T>(compile: () => T): T | undefined {
    try {
      return compile();
    } catch (error) {
      if (error instanceof CompileError) {
        this.diagnostics.fatal(error.message, error.range);
        return undefined;
      }
      throw error;
    }
  }

  private dangerousWarning(name: string, kind: string, range: SourceRange): void {
    this.diagnostics.warning(
      `Potentially dangerous query: ${kind} "${name}" selects rows using only client-supplied parameters, which any user can change. ` +
        'Also filter on an authenticated value (the user id or a token claim), or set accept_potentially_dangerous_queries: true if every user may see this data.',
      range,
    );
  }

  private parseBucketDefinition(entry: Entry): BucketDefinition | undefined {
    const name = entry.key;
    if (!isMap(entry.value)) {
      this.diagnostics.fatal(
        `Bucket definition "${name}" must be a mapping with parameters: and data:.`,
        rangeOf(entry.value, entry.keyRange),
      );
      return undefined;
    }
    const keys = new Map<string, Entry>();
    for (const e of this.entries(entry.value, `in bucket definition "${name}"`)) {
      if (!BUCKET_KEYS.includes(e.key)) {
        this.diagnostics.fatal(
          `Unknown key "${e.key}" in bucket definition "${name}": expected parameters, data, priority or accept_potentially_dangerous_queries.`,
          e.keyRange,
        );
        continue;
      }
      keys.set(e.key, e);
    }
    const priorityEntry = keys.get('priority');
    const explicitPriority = priorityEntry ? this.priority(priorityEntry.value, priorityEntry.keyRange) : undefined;
    const acceptEntry = keys.get('accept_potentially_dangerous_queries');
    const accept = acceptEntry ? this.boolean(acceptEntry.value, acceptEntry.key, acceptEntry.keyRange) : false;
    const prefix = bucketIdPrefix({ configId: this.versionedConfigId(), definition: name });

    let ok = true;
    const parameterQueries: ParameterQuery[] = [];
    let parameterNames: string[] | undefined;
    const parametersEntry = keys.get('parameters');
    if (parametersEntry) {
      this.queryNodes(parametersEntry.value).forEach((node, index) => {
        const range = rangeOf(node, parametersEntry.keyRange);
        const sql = this.sqlText(node, parametersEntry.keyRange, 'bucket');
        if (!sql) return void (ok = false);
        const query = this.attempt(() =>
          compileParameterQuery({
            sql,
            select: parseSelect(sql),
            definition: name,
            queryId: String(index),
            defaultSchema: this.defaultSchema,
            allowPriority: true,
          }),
        );
        if (!query) return void (ok = false);
        if (parameterNames === undefined) {
          parameterNames = [...query.outputNames];
        } else if (!sameNames(parameterNames, query.outputNames)) {
          this.diagnostics.fatal(
            `Parameter queries of "${name}" must all output the same columns: this one outputs (${query.outputNames.join(', ')}), the first outputs (${parameterNames.join(', ')}).`,
            range,
          );
          ok = false;
        }
        if (query.priority !== undefined && priorityEntry) {
          this.diagnostics.fatal(
            `Set the priority of "${name}" either with priority: or with _priority in its parameter queries, not both.`,
            range,
          );
          ok = false;
        }
        if (!accept && describeUse(query.requestUse)) this.dangerousWarning(name, 'bucket definition', range);
        parameterQueries.push(query);
      });
    } else {
      parameterQueries.push(
        new StaticParameterQuery(name, '0', [], undefined, [], undefined, undefined, {
          authenticated: false,
          unauthenticated: false,
        }),
      );
    }
    parameterNames ??= [];

    const dataEntry = keys.get('data');
    const dataQueries: DataQuery[] = [];
    // Data queries are checked against the parameter names: skip them when those are unknown.
    if (!ok) return undefined;
    if (!dataEntry) {
      this.diagnostics.fatal(
        `Bucket definition "${name}" has no data: add data: with at least one SELECT ... FROM ... query.`,
        entry.keyRange,
      );
      ok = false;
    } else {
      for (const node of this.queryNodes(dataEntry.value)) {
        const sql = this.sqlText(node, dataEntry.keyRange, 'bucket');
        if (!sql) {
          ok = false;
          continue;
        }
        const names = parameterNames;
        const query = this.attempt(() =>
          compileDataQuery({
            sql,
            definition: name,
            parameterNames: names,
            defaultSchema: this.defaultSchema,
            bucketPrefix: prefix,
          }),
        );
        if (query) dataQueries.push(query);
        else ok = false;
      }
    }
    if (!ok) return undefined;
    return new BucketDefinition(name, explicitPriority ?? 3, parameterNames, parameterQueries, dataQueries, prefix);
  }

  private versionedConfigId(): string | undefined {
    return this.edition >= 2 ? this.options.configId : undefined;
  }

  private parseStream(entry: Entry): StreamDefinition | undefined {
    const name = entry.key;
    if (!isMap(entry.value)) {
      this.diagnostics.fatal(`Stream "${name}" must be a mapping with query:.`, rangeOf(entry.value, entry.keyRange));
      return undefined;
    }
    const keys = new Map<string, Entry>();
    let edition3 = false;
    for (const e of this.entries(entry.value, `in stream "${name}"`)) {
      if (e.key === 'queries' || e.key === 'with') {
        edition3 = true;
        this.diagnostics.fatal(
          `${e.key}: in streams needs config edition 3, which is not supported yet: use a single query: per stream.`,
          e.keyRange,
        );
        continue;
      }
      if (!STREAM_KEYS.includes(e.key)) {
        this.diagnostics.fatal(
          `Unknown key "${e.key}" in stream "${name}": expected query, auto_subscribe, priority or accept_potentially_dangerous_queries.`,
          e.keyRange,
        );
        continue;
      }
      keys.set(e.key, e);
    }
    const priorityEntry = keys.get('priority');
    const priority = priorityEntry ? this.priority(priorityEntry.value, priorityEntry.keyRange) : 3;
    const autoEntry = keys.get('auto_subscribe');
    const autoSubscribe = autoEntry ? this.boolean(autoEntry.value, autoEntry.key, autoEntry.keyRange) : false;
    const acceptEntry = keys.get('accept_potentially_dangerous_queries');
    const accept = acceptEntry ? this.boolean(acceptEntry.value, acceptEntry.key, acceptEntry.keyRange) : false;
    const queryEntry = keys.get('query');
    if (!queryEntry) {
      if (edition3) return undefined;
      this.diagnostics.fatal(`Stream "${name}" has no query: add query: SELECT ... FROM ....`, entry.keyRange);
      return undefined;
    }
    const sql = this.sqlText(queryEntry.value, queryEntry.keyRange, 'stream');
    if (!sql) return undefined;
    const stream = this.attempt(() =>
      compileStream({
        sql,
        name,
        priority: priority ?? 3,
        autoSubscribe,
        defaultSchema: this.defaultSchema,
        configId: this.versionedConfigId(),
      }),
    );
    if (stream && !accept && describeUse(stream.requestUse)) {
      this.dangerousWarning(name, 'stream', rangeOf(queryEntry.value, queryEntry.keyRange));
    }
    return priority === undefined ? undefined : stream;
  }

  private parseEvents(entry: Entry | undefined): EventDefinition[] {
    if (!entry) return [];
    if (!isMap(entry.value)) {
      this.diagnostics.fatal(
        'event_definitions must be a mapping of names to { payloads: [...] }.',
        rangeOf(entry.value, entry.keyRange),
      );
      return [];
    }
    const events: EventDefinition[] = [];
    for (const e of this.entries(entry.value, 'in event_definitions')) {
      if (!isMap(e.value)) {
        this.diagnostics.fatal(
          `Event definition "${e.key}" must be a mapping with payloads:.`,
          rangeOf(e.value, e.keyRange),
        );
        continue;
      }
      let payloadEntry: Entry | undefined;
      let unknownKey = false;
      for (const k of this.entries(e.value, `in event definition "${e.key}"`)) {
        if (k.key === 'payloads') payloadEntry = k;
        else {
          unknownKey = true;
          this.diagnostics.fatal(
            `Unknown key "${k.key}" in event definition "${e.key}": expected payloads.`,
            k.keyRange,
          );
        }
      }
      if (!payloadEntry) {
        if (unknownKey) continue;
        this.diagnostics.fatal(
          `Event definition "${e.key}" has no payloads: add payloads: [SELECT ... FROM ...].`,
          e.keyRange,
        );
        continue;
      }
      const payloads: DataQuery[] = [];
      for (const node of this.queryNodes(payloadEntry.value)) {
        const sql = this.sqlText(node, payloadEntry.keyRange, 'bucket');
        if (!sql) continue;
        const query = this.attempt(() =>
          compileDataQuery({
            sql,
            definition: e.key,
            parameterNames: [],
            defaultSchema: this.defaultSchema,
            bucketPrefix: e.key,
            requireId: false,
          }),
        );
        if (query) payloads.push(query);
      }
      events.push(new EventDefinition(e.key, payloads));
    }
    return events;
  }
}
