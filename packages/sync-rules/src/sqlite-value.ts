/**
 * SQLite value semantics used by every evaluator: storage classes, truthiness, comparison,
 * arithmetic and casts. INTEGER is always a bigint (exact 64-bit), REAL always a number, so
 * `typeof` alone tells the storage class apart (docs/sync-config.md, "Values and types").
 */

/** A SQLite value: `number` is REAL, `bigint` is INTEGER, `Uint8Array` is BLOB. */
export type SqliteValue = null | string | number | bigint | Uint8Array;

/** A row as seen by the sync config: column name -> value. Source modules build it with `toSyncValue`. */
export type SqliteRow = Record<string, SqliteValue>;

/** The SQLite storage class names, as returned by `typeof()`. */
export type SqliteType = 'null' | 'integer' | 'real' | 'text' | 'blob';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** The storage class of a value. */
export function sqliteTypeOf(value: SqliteValue): SqliteType {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return 'text';
    case 'bigint':
      return 'integer';
    case 'number':
      return 'real';
    default:
      return 'blob';
  }
}

/** True when `value` is a valid SqliteValue (used to reject driver values nobody converted). */
export function isSqliteValue(value: unknown): value is SqliteValue {
  return (
    value === null ||
    typeof value === 'string' ||
    typeof value === 'number' ||
    typeof value === 'bigint' ||
    value instanceof Uint8Array
  );
}

/** SQLite's `%!.15g` rendering of a REAL, as used by CAST(x AS TEXT) and `||`. */
export function realToText(value: number): string {
  if (Number.isNaN(value)) return '';
  if (value === Infinity) return 'Inf';
  if (value === -Infinity) return '-Inf';
  if (value === 0) return Object.is(value, -0) ? '-0.0' : '0.0';
  const exponent = Math.floor(Math.log10(Math.abs(value)));
  if (exponent < -4 || exponent >= 15) {
    const [mantissa, exp] = value.toExponential(14).split('e') as [string, string];
    let m = mantissa.replace(/0+$/, '');
    if (m.endsWith('.')) m += '0';
    const e = Number(exp);
    return `${m}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  let text = value.toPrecision(15);
  if (text.includes('e')) text = String(value);
  if (text.includes('.')) {
    text = text.replace(/0+$/, '');
    if (text.endsWith('.')) text += '0';
  } else {
    text += '.0';
  }
  return text;
}

/** CAST(value AS TEXT); NULL stays NULL. */
export function castToText(value: SqliteValue): string | null {
  if (value === null) return null;
  switch (typeof value) {
    case 'string':
      return value;
    case 'bigint':
      return value.toString();
    case 'number':
      return realToText(value);
    default:
      return utf8Decoder.decode(value);
  }
}

/** CAST(value AS BLOB). */
export function castToBlob(value: SqliteValue): Uint8Array | null {
  if (value === null) return null;
  if (value instanceof Uint8Array) return value;
  return utf8Encoder.encode(castToText(value)!);
}

const NUMERIC_PREFIX = /^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)/;

/** Clamps a bigint into the 64-bit range the way SQLite saturates text->integer conversions. */
function clampInt64(value: bigint): bigint {
  return value < INT64_MIN ? INT64_MIN : value > INT64_MAX ? INT64_MAX : value;
}

/** The numeric value of a text (its longest numeric prefix, 0 if none): INTEGER when integral text, else REAL. */
export function textToNumeric(text: string): bigint | number {
  const match = NUMERIC_PREFIX.exec(text);
  if (!match) return 0n;
  const literal = match[1]!;
  if (/^[+-]?\d+$/.test(literal)) return clampInt64(BigInt(literal));
  return Number(literal);
}

/** Converts any value to INTEGER or REAL (SQLite numeric affinity for arithmetic); NULL stays NULL. */
export function toNumeric(value: SqliteValue): bigint | number | null {
  if (value === null) return null;
  switch (typeof value) {
    case 'bigint':
    case 'number':
      return value;
    case 'string':
      return textToNumeric(value);
    default:
      return textToNumeric(utf8Decoder.decode(value));
  }
}

/** Truncates a REAL toward zero into a 64-bit INTEGER (saturating), as CAST(x AS INTEGER). */
export function realToInteger(value: number): bigint {
  if (Number.isNaN(value)) return 0n;
  if (value >= 2 ** 63) return INT64_MAX;
  if (value <= -(2 ** 63)) return INT64_MIN;
  return BigInt(Math.trunc(value));
}

/** CAST(value AS INTEGER). */
export function castToInteger(value: SqliteValue): bigint | null {
  const numeric = toNumeric(value);
  if (numeric === null) return null;
  return typeof numeric === 'bigint' ? numeric : realToInteger(numeric);
}

/** CAST(value AS REAL). */
export function castToReal(value: SqliteValue): number | null {
  const numeric = toNumeric(value);
  if (numeric === null) return null;
  return Number(numeric);
}

/** CAST(value AS NUMERIC): INTEGER when the value is integral and fits, else REAL. */
export function castToNumeric(value: SqliteValue): bigint | number | null {
  const numeric = toNumeric(value);
  if (typeof numeric === 'number' && Number.isInteger(numeric) && Math.abs(numeric) < 2 ** 63) return BigInt(numeric);
  return numeric;
}

/** SQLite truthiness: NULL is unknown (null), numbers are true when non-zero, text/blob by their numeric prefix. */
export function isTruthy(value: SqliteValue): boolean {
  if (value === null) return false;
  switch (typeof value) {
    case 'bigint':
      return value !== 0n;
    case 'number':
      return value !== 0;
    default: {
      const numeric = toNumeric(value);
      return numeric !== 0n && numeric !== 0;
    }
  }
}

/** SQLite boolean result: 1 / 0 as INTEGER. */
export function sqlBoolean(value: boolean): bigint {
  return value ? 1n : 0n;
}

/** Rank of a storage class in SQLite's cross-type ordering: NULL < numbers < TEXT < BLOB. */
function classRank(value: SqliteValue): number {
  if (value === null) return 0;
  const type = typeof value;
  if (type === 'bigint' || type === 'number') return 1;
  if (type === 'string') return 2;
  return 3;
}

function compareNumbers(a: bigint | number, b: bigint | number): number {
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  // Mixed INTEGER / REAL: compare exactly, without rounding the bigint through a double.
  const real = (typeof a === 'number' ? a : b) as number;
  const int = (typeof a === 'bigint' ? a : b) as bigint;
  let result: number;
  if (Number.isNaN(real)) result = 1;
  else if (real === Infinity) result = 1;
  else if (real === -Infinity) result = -1;
  else {
    const truncated = BigInt(Math.trunc(real));
    if (truncated !== int) result = truncated > int ? 1 : -1;
    else result = real > Math.trunc(real) ? 1 : real < Math.trunc(real) ? -1 : 0;
  }
  // result compares real to int; flip when a is the integer.
  return typeof a === 'number' ? result : -result;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  }
  return a.length - b.length;
}

/**
 * Total order of two non-NULL values as SQLite compares them without affinity: numbers before
 * TEXT before BLOB, so `'1' = 1` is false. Returns negative, zero or positive.
 */
export function compareValues(a: SqliteValue, b: SqliteValue): number {
  const ra = classRank(a);
  const rb = classRank(b);
  if (ra !== rb) return ra - rb;
  switch (ra) {
    case 0:
      return 0;
    case 1:
      return compareNumbers(a as bigint | number, b as bigint | number);
    case 2:
      return a! < b! ? -1 : a! > b! ? 1 : 0;
    default:
      return compareBytes(a as Uint8Array, b as Uint8Array);
  }
}

/** `a = b` with SQL NULL rules: null when either side is NULL. */
export function sqlEquals(a: SqliteValue, b: SqliteValue): boolean | null {
  if (a === null || b === null) return null;
  if (typeof a === typeof b && typeof a !== 'object') return a === b;
  return compareValues(a, b) === 0;
}

/**
 * A string that is equal for two values exactly when `sameValue` holds (1 and 1.0 share one;
 * NULL, text and blobs are kept apart), for grouping values in sets and maps in linear time.
 */
export function valueKey(value: SqliteValue): string {
  if (value === null) return 'null';
  if (typeof value === 'bigint') return `n:${value}`;
  if (typeof value === 'number') {
    return Number.isInteger(value) && Number.isFinite(value) ? `n:${BigInt(value)}` : `n:${value}`;
  }
  if (typeof value === 'string') return `s:${value}`;
  return `b:${Buffer.from(value).toString('hex')}`;
}

/** True when both values are identical for grouping purposes (NULL equals NULL, 1 equals 1.0). */
export function sameValue(a: SqliteValue, b: SqliteValue): boolean {
  return compareValues(a, b) === 0;
}

/** Wraps an INTEGER result into REAL when it leaves the 64-bit range, as SQLite does on overflow. */
function fitInteger(value: bigint): bigint | number {
  return value < INT64_MIN || value > INT64_MAX ? Number(value) : value;
}

/** Arithmetic operators with SQLite semantics: NULL in, NULL out; INTEGER op INTEGER stays INTEGER. */
export function arithmetic(op: '+' | '-' | '*' | '/', left: SqliteValue, right: SqliteValue): SqliteValue {
  const a = toNumeric(left);
  const b = toNumeric(right);
  if (a === null || b === null) return null;
  if (typeof a === 'bigint' && typeof b === 'bigint') {
    switch (op) {
      case '+':
        return fitInteger(a + b);
      case '-':
        return fitInteger(a - b);
      case '*':
        return fitInteger(a * b);
      case '/':
        // Integer division truncates toward zero (bigint division does); division by zero is NULL.
        return b === 0n ? null : fitInteger(a / b);
    }
  }
  const x = Number(a);
  const y = Number(b);
  switch (op) {
    case '+':
      return x + y;
    case '-':
      return x - y;
    case '*':
      return x * y;
    case '/':
      return y === 0 ? null : x / y;
  }
}

/** Renders a REAL for JSON or bucket ids: integral values like an integer, non-finite as null. */
export function realToJson(value: number): string {
  if (!Number.isFinite(value)) return 'null';
  if (Number.isInteger(value) && Math.abs(value) < 1e21) return value.toFixed(0);
  return String(value);
}

/** Lower-case hex of bytes. */
export function bytesToHex(bytes: Uint8Array, upper = false): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += bytes[i]!.toString(16).padStart(2, '0');
  return upper ? out.toUpperCase() : out;
}

/** UTF-8 encoding helper shared by functions. */
export function utf8Encode(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/** UTF-8 decoding helper shared by functions. */
export function utf8Decode(bytes: Uint8Array): string {
  return utf8Decoder.decode(bytes);
}
