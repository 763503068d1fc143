/**
 * JSON text handling with exact integers: a small parser that keeps integers beyond 2^53 as
 * bigint, compact serialisation (used for `->`, bucket ids and op data), and `$` paths.
 * Objects are parsed into Maps internally so key order survives (`{"b":1,"1":2}` stays as is).
 */
import { realToJson, type SqliteRow, type SqliteValue } from './sqlite-value.js';

/** A parsed JSON value as the evaluators see it: integers are bigint, other numbers REAL. */
export type JsonValue = null | boolean | string | number | bigint | JsonValue[] | JsonObject;
/** A JSON object, in source key order. */
export type JsonObject = Map<string, JsonValue>;

/** Thrown for malformed JSON text; callers inside evaluation turn it into NULL or an error item. */
export class JsonSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonSyntaxError';
  }
}

/**
 * Deepest JSON nesting the parser accepts, as in SQLite (JSON_MAX_DEPTH): deeper text is malformed
 * (NULL in SQL functions), which keeps the recursive parser and serialiser far from the stack limit.
 */
export const MAX_JSON_DEPTH = 1000;

interface ParseMode {
  /** Parse objects to Maps (evaluators) or plain objects (public helper). */
  maps: boolean;
  /** Integers as bigint always (evaluators) or only beyond 2^53 (public helper). */
  bigintAlways: boolean;
}

class JsonParser {
  private pos = 0;
  private depth = 0;
  constructor(
    private readonly text: string,
    private readonly mode: ParseMode,
  ) {}

  parseDocument(): unknown {
    const value = this.value();
    this.ws();
    if (this.pos < this.text.length) this.fail('unexpected text after the JSON value');
    return value;
  }

  private fail(what: string): never {
    throw new JsonSyntaxError(`Malformed JSON at offset ${this.pos}: ${what}`);
  }

  private ws(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c === 32 || c === 9 || c === 10 || c === 13) this.pos++;
      else break;
    }
  }

  private value(): unknown {
    this.ws();
    const t = this.text;
    const c = t[this.pos];
    switch (c) {
      case '{':
        return this.object();
      case '[':
        return this.array();
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
        return this.fail(c === undefined ? 'unexpected end' : `unexpected character ${JSON.stringify(c)}`);
    }
  }

  private literal(word: string, value: unknown): unknown {
    if (!this.text.startsWith(word, this.pos)) this.fail(`expected ${word}`);
    this.pos += word.length;
    return value;
  }

  private number(): number | bigint {
    const t = this.text;
    const start = this.pos;
    if (t[this.pos] === '-') this.pos++;
    let integral = true;
    const digitsStart = this.pos;
    while (this.pos < t.length && t[this.pos]! >= '0' && t[this.pos]! <= '9') this.pos++;
    if (this.pos === digitsStart) this.fail('expected a digit');
    if (t[this.pos] === '.') {
      integral = false;
      this.pos++;
      const fractionStart = this.pos;
      while (this.pos < t.length && t[this.pos]! >= '0' && t[this.pos]! <= '9') this.pos++;
      if (this.pos === fractionStart) this.fail('expected a digit after "."');
    }
    if (t[this.pos] === 'e' || t[this.pos] === 'E') {
      integral = false;
      this.pos++;
      if (t[this.pos] === '+' || t[this.pos] === '-') this.pos++;
      const expStart = this.pos;
      while (this.pos < t.length && t[this.pos]! >= '0' && t[this.pos]! <= '9') this.pos++;
      if (this.pos === expStart) this.fail('expected an exponent');
    }
    const literal = t.slice(start, this.pos);
    if (!integral) return Number(literal);
    if (this.mode.bigintAlways) return BigInt(literal);
    const n = Number(literal);
    return Number.isSafeInteger(n) ? n : BigInt(literal);
  }

  private string(): string {
    const t = this.text;
    this.pos++; // opening quote
    let out = '';
    let chunkStart = this.pos;
    while (true) {
      if (this.pos >= t.length) this.fail('unterminated string');
      const c = t.charCodeAt(this.pos);
      if (c === 34) {
        out += t.slice(chunkStart, this.pos);
        this.pos++;
        return out;
      }
      if (c === 92) {
        out += t.slice(chunkStart, this.pos);
        const e = t[this.pos + 1];
        this.pos += 2;
        switch (e) {
          case '"':
          case '\\':
          case '/':
            out += e;
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u': {
            const hex = t.slice(this.pos, this.pos + 4);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('bad \\u escape');
            out += String.fromCharCode(parseInt(hex, 16));
            this.pos += 4;
            break;
          }
          default:
            this.fail('bad escape');
        }
        chunkStart = this.pos;
        continue;
      }
      if (c < 32) this.fail('control character in string');
      this.pos++;
    }
  }

  /** Enters an array or object; the callers leave through {@link leave}. */
  private enter(): void {
    if (++this.depth > MAX_JSON_DEPTH) this.fail(`nested deeper than ${MAX_JSON_DEPTH} levels`);
    this.pos++;
  }

  private leave<T>(value: T): T {
    this.depth--;
    return value;
  }

  private array(): unknown[] {
    this.enter();
    const out: unknown[] = [];
    this.ws();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return this.leave(out);
    }
    while (true) {
      out.push(this.value());
      this.ws();
      const c = this.text[this.pos++];
      if (c === ']') return this.leave(out);
      if (c !== ',') this.fail('expected "," or "]"');
    }
  }

  private object(): unknown {
    this.enter();
    const map = this.mode.maps ? new Map<string, unknown>() : undefined;
    const obj: Record<string, unknown> | undefined = this.mode.maps ? undefined : {};
    this.ws();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return this.leave(map ?? obj);
    }
    while (true) {
      this.ws();
      if (this.text[this.pos] !== '"') this.fail('expected a key');
      const key = this.string();
      this.ws();
      if (this.text[this.pos++] !== ':') this.fail('expected ":"');
      const value = this.value();
      if (map) map.set(key, value);
      else Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
      this.ws();
      const c = this.text[this.pos++];
      if (c === '}') return this.leave(map ?? obj);
      if (c !== ',') this.fail('expected "," or "}"');
    }
  }
}

/**
 * Parses JSON text like `JSON.parse`, except that integers outside the safe range become
 * bigint (exact). Source modules use it for json columns; throws JsonSyntaxError on bad input.
 */
export function parseJsonPreservingBigInts(text: string): unknown {
  return new JsonParser(text, { maps: false, bigintAlways: false }).parseDocument();
}

/** Parses JSON text for evaluation: integers as bigint, objects as Maps. Throws JsonSyntaxError. */
export function parseJsonValue(text: string): JsonValue {
  return new JsonParser(text, { maps: true, bigintAlways: true }).parseDocument() as JsonValue;
}

/** A REAL in JSON text: integral values keep a `.0` so they stay REAL when read back. */
function realJson(value: number): string {
  if (!Number.isFinite(value)) return 'null';
  if (Number.isInteger(value) && Math.abs(value) < 1e21) return value.toFixed(1);
  return String(value);
}

/** Compact JSON text of a parsed value. */
export function jsonValueToText(value: JsonValue): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'bigint':
      return value.toString();
    case 'number':
      return realJson(value);
    case 'boolean':
      return value ? 'true' : 'false';
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += jsonValueToText(value[i]!);
    }
    return out + ']';
  }
  let out = '{';
  let first = true;
  for (const [k, v] of value) {
    if (!first) out += ',';
    first = false;
    out += JSON.stringify(k) + ':' + jsonValueToText(v);
  }
  return out + '}';
}

/** JSON text of a JavaScript value that is not an array or plain object; undefined for those. */
function jsScalarText(value: unknown): string | undefined {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'bigint':
      return value.toString();
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      break;
    default:
      return 'null';
  }
  if (Array.isArray(value)) return undefined;
  if (value instanceof Map) return jsonValueToText(value as JsonObject);
  if (value instanceof Uint8Array) return 'null';
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  return undefined;
}

/** An array or object being written by {@link jsToJsonText}. */
interface OpenContainer {
  readonly keys: string[] | undefined;
  readonly values: unknown[];
  next: number;
}

/**
 * Compact JSON text of a JavaScript value (JWT claims, client parameters): bigint exact,
 * undefined and functions dropped like JSON.stringify, Uint8Array as null. Iterative (an explicit
 * stack), because client parameters may nest arbitrarily deep.
 */
export function jsToJsonText(value: unknown): string {
  const out: string[] = [];
  const open: OpenContainer[] = [];
  let pending: { value: unknown } | undefined = { value };
  while (true) {
    if (pending) {
      const current = pending.value;
      pending = undefined;
      const scalar = jsScalarText(current);
      if (scalar !== undefined) out.push(scalar);
      else if (Array.isArray(current)) {
        out.push('[');
        open.push({ keys: undefined, values: current, next: 0 });
      } else {
        const keys: string[] = [];
        const values: unknown[] = [];
        for (const [k, v] of Object.entries(current as object)) {
          if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
          keys.push(k);
          values.push(v);
        }
        out.push('{');
        open.push({ keys, values, next: 0 });
      }
    }
    const top = open[open.length - 1];
    if (!top) return out.join('');
    if (top.next >= top.values.length) {
      out.push(top.keys ? '}' : ']');
      open.pop();
      continue;
    }
    if (top.next > 0) out.push(',');
    if (top.keys) out.push(JSON.stringify(top.keys[top.next]) + ':');
    pending = { value: top.values[top.next++] };
  }
}

/** A parsed JSON value as a SQL value (`->>` semantics): scalars as themselves, containers as JSON text. */
export function jsonValueToSqlite(value: JsonValue | undefined): SqliteValue {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
    case 'bigint':
    case 'number':
      return value;
    case 'boolean':
      return value ? 1n : 0n;
    default:
      return jsonValueToText(value);
  }
}

/** A JavaScript value (claims, client parameters) as a SQL value: integral numbers are INTEGER. */
export function jsToSqlite(value: unknown): SqliteValue {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
      return value;
    case 'bigint':
      return value;
    case 'number':
      return Number.isInteger(value) ? BigInt(value) : value;
    case 'boolean':
      return value ? 1n : 0n;
    default:
      return value instanceof Uint8Array ? value : jsToJsonText(value);
  }
}

/** A SQL value as a JSON value (for `json_each` outputs and JSON building). BLOBs become null. */
export function sqliteToJsonText(value: SqliteValue): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'bigint':
      return value.toString();
    case 'number':
      return realToJson(value);
    default:
      return 'null';
  }
}

/**
 * Compact JSON text of a row, used as an op's data: bigint exact, REAL as JSON numbers
 * (integral REAL keeps `.0`), BLOBs and undefined values skipped. Hot path of storage writes.
 */
export function rowToJson(row: SqliteRow): string {
  let out = '{';
  let first = true;
  for (const key in row) {
    const value = row[key];
    let text: string;
    if (value === null) text = 'null';
    else {
      switch (typeof value) {
        case 'string':
          text = JSON.stringify(value);
          break;
        case 'bigint':
          text = value.toString();
          break;
        case 'number':
          text = realJson(value);
          break;
        default:
          continue;
      }
    }
    out += (first ? '"' : ',"') + escapeKey(key) + '":' + text;
    first = false;
  }
  return out + '}';
}

/** True when a key needs JSON escapes (quotes, backslashes, control characters, surrogates); rare. */
function needsEscape(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 32 || c === 34 || c === 92 || (c >= 0xd800 && c <= 0xdfff)) return true;
  }
  return false;
}

function escapeKey(key: string): string {
  return needsEscape(key) ? JSON.stringify(key).slice(1, -1) : key;
}

/** One step of a JSON path: an object key or an array index (negative counts from the end). */
export type JsonPathStep = string | number;

/**
 * Parses a `$`-path (`$.a.b[0]`, `$."x.y"`, `$[#-1]`) into steps; undefined when malformed.
 * SQLite's json_extract dialect, as used by `json_extract` and `->`/`->>` with a `$` key.
 */
export function parseJsonPath(path: string): JsonPathStep[] | undefined {
  if (!path.startsWith('$')) return undefined;
  const steps: JsonPathStep[] = [];
  let i = 1;
  while (i < path.length) {
    const c = path[i];
    if (c === '.') {
      i++;
      if (path[i] === '"') {
        const end = path.indexOf('"', i + 1);
        if (end < 0) return undefined;
        steps.push(path.slice(i + 1, end));
        i = end + 1;
      } else {
        let end = i;
        while (end < path.length && path[end] !== '.' && path[end] !== '[') end++;
        if (end === i) return undefined;
        steps.push(path.slice(i, end));
        i = end;
      }
    } else if (c === '[') {
      const end = path.indexOf(']', i);
      if (end < 0) return undefined;
      const inner = path.slice(i + 1, end);
      if (/^\d+$/.test(inner)) steps.push(Number(inner));
      else if (/^#-\d+$/.test(inner)) steps.push(-Number(inner.slice(2)));
      else return undefined;
      i = end + 1;
    } else {
      return undefined;
    }
  }
  return steps;
}

/** Follows path steps through a parsed value; undefined when a step does not exist. */
export function followJsonPath(value: JsonValue, steps: readonly JsonPathStep[]): JsonValue | undefined {
  let current: JsonValue | undefined = value;
  for (const step of steps) {
    if (current === null || current === undefined || typeof current !== 'object') return undefined;
    if (typeof step === 'number') {
      if (!Array.isArray(current)) return undefined;
      current = current[step < 0 ? current.length + step : step];
    } else {
      if (!(current instanceof Map)) return undefined;
      current = current.get(step);
    }
  }
  return current;
}

/**
 * Parses a JSON object into a row: integral numbers (no fraction or exponent in the text) are
 * INTEGER, other numbers REAL, booleans 1/0, nested objects and arrays compact JSON text.
 * Used by the offline CLI and tests. Throws JsonSyntaxError, or an Error when not an object.
 */
export function parseJsonRow(text: string): SqliteRow {
  const value = parseJsonValue(text);
  if (!(value instanceof Map)) throw new Error('expected a JSON object');
  const row: SqliteRow = {};
  for (const [key, v] of value) row[key] = jsonValueToSqlite(v);
  return row;
}
