/**
 * The scalar SQL functions a sync config may call, with SQLite semantics. Each entry gives its
 * arity and an implementation over evaluated arguments; the expression compiler checks arity
 * at compile time. Time functions never read the clock (`'now'` is NULL) so evaluation stays deterministic.
 */
import {
  followJsonPath,
  JsonSyntaxError,
  jsonValueToSqlite,
  jsonValueToText,
  parseJsonPath,
  parseJsonValue,
  type JsonValue,
} from './json-text.js';
import {
  bytesToHex,
  castToBlob,
  castToText,
  isTruthy,
  sqliteTypeOf,
  toNumeric,
  type SqliteValue,
} from './sqlite-value.js';

/** A scalar function: argument count bounds and its implementation. */
export interface SqlFunction {
  readonly minArgs: number;
  readonly maxArgs: number;
  readonly call: (args: SqliteValue[]) => SqliteValue;
}

/** Parses JSON text for a function; malformed JSON or non-text input gives undefined (-> NULL). */
export function jsonArgument(value: SqliteValue): JsonValue | undefined {
  if (typeof value !== 'string') {
    if (typeof value === 'bigint' || typeof value === 'number') return value;
    return undefined;
  }
  try {
    return parseJsonValue(value);
  } catch (e) {
    if (e instanceof JsonSyntaxError) return undefined;
    throw e;
  }
}

function fn(minArgs: number, maxArgs: number, call: (args: SqliteValue[]) => SqliteValue): SqlFunction {
  return { minArgs, maxArgs, call };
}

function text(value: SqliteValue): string | null {
  return castToText(value);
}

/** SQLite substr(): 1-based start, negative start counts from the end, optional length. */
function substring(value: SqliteValue, startValue: SqliteValue, lengthValue: SqliteValue | undefined): SqliteValue {
  if (value === null || startValue === null || lengthValue === null) return null;
  const chars = value instanceof Uint8Array ? undefined : Array.from(text(value)!);
  const size = chars ? chars.length : (value as Uint8Array).length;
  let start = Number(toNumeric(startValue));
  let length = lengthValue === undefined ? size + 1 : Number(toNumeric(lengthValue));
  if (start < 0) start = size + start + 1;
  else if (start === 0) length -= 1;
  let from = Math.max(start, 1) - 1;
  let to = start + length - 1;
  if (length < 0) {
    to = start - 1;
    from = Math.max(start + length, 1) - 1;
  }
  from = Math.min(Math.max(from, 0), size);
  to = Math.min(Math.max(to, from), size);
  return chars ? chars.slice(from, to).join('') : (value as Uint8Array).slice(from, to);
}

function base64(value: SqliteValue): SqliteValue {
  if (value === null) return null;
  return Buffer.from(castToBlob(value)!).toString('base64');
}

function uuidBlob(value: SqliteValue): SqliteValue {
  if (typeof value !== 'string') return value instanceof Uint8Array && value.length === 16 ? value : null;
  const hex = value.replace(/[-{}]/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return null;
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

function jsonExtract(args: SqliteValue[]): SqliteValue {
  const doc = jsonArgument(args[0]!);
  if (doc === undefined || args.slice(1).some((p) => p === null)) return null;
  const results: (JsonValue | undefined)[] = [];
  for (const pathValue of args.slice(1)) {
    const steps = typeof pathValue === 'string' ? parseJsonPath(pathValue) : undefined;
    if (!steps) return null;
    results.push(followJsonPath(doc, steps));
  }
  if (results.length === 1) return jsonValueToSqlite(results[0]);
  return jsonValueToText(results.map((r) => (r === undefined ? null : r)));
}

function jsonArrayLength(args: SqliteValue[]): SqliteValue {
  let doc = jsonArgument(args[0]!);
  if (doc === undefined) return null;
  if (args.length > 1) {
    const steps = typeof args[1] === 'string' ? parseJsonPath(args[1]) : undefined;
    if (!steps) return null;
    doc = followJsonPath(doc, steps);
    if (doc === undefined) return null;
  }
  return Array.isArray(doc) ? BigInt(doc.length) : 0n;
}

function jsonKeys(value: SqliteValue): SqliteValue {
  const doc = jsonArgument(value);
  if (!(doc instanceof Map)) return null;
  return jsonValueToText([...doc.keys()]);
}

const TIME_TEXT = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i;

/** Milliseconds since the epoch for a SQLite time value, or undefined ('now' and garbage). */
function timeValue(value: SqliteValue, modifiers: SqliteValue[]): number | undefined {
  const unixepoch = modifiers.some((m) => typeof m === 'string' && m.toLowerCase() === 'unixepoch');
  if (typeof value === 'bigint' || typeof value === 'number') {
    const n = Number(value);
    // Numbers are Julian day numbers in SQLite unless 'unixepoch' says they are seconds.
    return unixepoch ? n * 1000 : (n - 2440587.5) * 86400000;
  }
  if (typeof value !== 'string') return undefined;
  const match = TIME_TEXT.exec(value.trim());
  if (!match) {
    if (/^[+-]?\d+(\.\d+)?$/.test(value.trim())) return timeValue(Number(value), modifiers);
    return undefined;
  }
  const [, y, mo, d, h = '00', mi = '00', s = '00', frac = '', zone] = match;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  let result = ms + Math.floor(Number(`0${frac || '.0'}`) * 1000);
  if (zone && zone.toUpperCase() !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    result -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4))) * 60000;
  }
  return result;
}

function hasModifier(modifiers: SqliteValue[], name: string): boolean {
  return modifiers.some((m) => typeof m === 'string' && m.toLowerCase() === name);
}

/** Milliseconds of 0000-01-01 00:00:00 and 9999-12-31 23:59:59.999 UTC: the years datetime() can print. */
const FIRST_DATETIME_MS = -62167219200000;
const LAST_DATETIME_MS = 253402300799999;

function datetime(args: SqliteValue[]): SqliteValue {
  const modifiers = args.slice(1);
  const ms = timeValue(args[0]!, modifiers);
  // Outside years 0000-9999 there is no YYYY-MM-DD text (and Date throws past +-8.64e15 ms): NULL, as in SQLite.
  if (ms === undefined || !Number.isFinite(ms) || ms < FIRST_DATETIME_MS || ms > LAST_DATETIME_MS) return null;
  const iso = new Date(ms).toISOString();
  const base = `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
  return hasModifier(modifiers, 'subsec') ? `${base}${iso.slice(19, 23)}` : base;
}

function unixepoch(args: SqliteValue[]): SqliteValue {
  const modifiers = args.slice(1);
  const ms = timeValue(args[0]!, modifiers);
  if (ms === undefined || !Number.isFinite(ms)) return null;
  return hasModifier(modifiers, 'subsec') ? ms / 1000 : BigInt(Math.floor(ms / 1000));
}

/** Parsed WKB geometry (PostGIS sends hex EWKB text). */
type Geometry =
  | { type: 'Point'; coordinates: number[] }
  | { type: 'LineString' | 'MultiPoint'; coordinates: number[][] }
  | { type: 'Polygon' | 'MultiLineString'; coordinates: number[][][] }
  | { type: 'MultiPolygon'; coordinates: number[][][][] }
  | { type: 'GeometryCollection'; geometries: Geometry[] };

function parseWkb(value: SqliteValue): Geometry | undefined {
  let bytes: Uint8Array;
  if (typeof value === 'string' && /^([0-9a-fA-F]{2})+$/.test(value)) bytes = Buffer.from(value, 'hex');
  else if (value instanceof Uint8Array) bytes = value;
  else return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const read = (): Geometry => {
    const little = view.getUint8(pos) === 1;
    pos += 1;
    const raw = view.getUint32(pos, little);
    pos += 4;
    // EWKB flags Z / M / SRID in the high bits; ISO WKB adds 1000 (Z), 2000 (M) or 3000 (ZM).
    let hasZ = (raw & 0x80000000) !== 0;
    let hasM = (raw & 0x40000000) !== 0;
    if (raw & 0x20000000) pos += 4;
    let type = raw & 0x0fffffff;
    if (type >= 3000) hasZ = hasM = true;
    else if (type >= 2000) hasM = true;
    else if (type >= 1000) hasZ = true;
    type %= 1000;
    const dims = 2 + (hasZ ? 1 : 0) + (hasM ? 1 : 0);
    const point = (): number[] => {
      const coords: number[] = [];
      for (let i = 0; i < dims; i++) {
        coords.push(view.getFloat64(pos, little));
        pos += 8;
      }
      return coords;
    };
    const count = (): number => {
      const n = view.getUint32(pos, little);
      pos += 4;
      return n;
    };
    const points = (): number[][] => Array.from({ length: count() }, point);
    const rings = (): number[][][] => Array.from({ length: count() }, points);
    switch (type) {
      case 1:
        return { type: 'Point', coordinates: point() };
      case 2:
        return { type: 'LineString', coordinates: points() };
      case 3:
        return { type: 'Polygon', coordinates: rings() };
      case 4:
        return {
          type: 'MultiPoint',
          coordinates: Array.from({ length: count() }, () => (read() as { coordinates: number[] }).coordinates),
        };
      case 5:
        return {
          type: 'MultiLineString',
          coordinates: Array.from({ length: count() }, () => (read() as { coordinates: number[][] }).coordinates),
        };
      case 6:
        return {
          type: 'MultiPolygon',
          coordinates: Array.from({ length: count() }, () => (read() as { coordinates: number[][][] }).coordinates),
        };
      case 7:
        return { type: 'GeometryCollection', geometries: Array.from({ length: count() }, read) };
      default:
        throw new RangeError(`unsupported WKB geometry type ${type}`);
    }
  };
  try {
    return read();
  } catch {
    return undefined;
  }
}

function geometryToText(g: Geometry): string {
  const pt = (c: number[]): string => c.join(' ');
  const list = (cs: number[][]): string => `(${cs.map(pt).join(',')})`;
  const rings = (rs: number[][][]): string => `(${rs.map(list).join(',')})`;
  switch (g.type) {
    case 'Point':
      return `POINT(${pt(g.coordinates)})`;
    case 'LineString':
      return `LINESTRING${list(g.coordinates)}`;
    case 'MultiPoint':
      return `MULTIPOINT${list(g.coordinates)}`;
    case 'Polygon':
      return `POLYGON${rings(g.coordinates)}`;
    case 'MultiLineString':
      return `MULTILINESTRING${rings(g.coordinates)}`;
    case 'MultiPolygon':
      return `MULTIPOLYGON(${g.coordinates.map(rings).join(',')})`;
    case 'GeometryCollection':
      return `GEOMETRYCOLLECTION(${g.geometries.map(geometryToText).join(',')})`;
  }
}

function pointCoordinate(value: SqliteValue, index: number): SqliteValue {
  const g = parseWkb(value);
  return g?.type === 'Point' ? (g.coordinates[index] ?? null) : null;
}

/** Every supported scalar function by lower-case name (docs/sync-config.md lists them for users). */
export const SQL_FUNCTIONS: ReadonlyMap<string, SqlFunction> = new Map<string, SqlFunction>([
  ['upper', fn(1, 1, ([v]) => (v === null ? null : text(v!)!.toUpperCase()))],
  ['lower', fn(1, 1, ([v]) => (v === null ? null : text(v!)!.toLowerCase()))],
  ['substring', fn(2, 3, (a) => substring(a[0]!, a[1]!, a[2]))],
  [
    'length',
    fn(1, 1, ([v]) => {
      if (v === null) return null;
      if (v instanceof Uint8Array) return BigInt(v.length);
      return BigInt(Array.from(text(v!)!).length);
    }),
  ],
  ['hex', fn(1, 1, ([v]) => (v === null ? '' : bytesToHex(castToBlob(v!)!, true)))],
  ['base64', fn(1, 1, ([v]) => base64(v!))],
  ['uuid_blob', fn(1, 1, ([v]) => uuidBlob(v!))],
  ['typeof', fn(1, 1, ([v]) => sqliteTypeOf(v!))],
  ['ifnull', fn(2, 2, ([a, b]) => (a === null ? b! : a!))],
  ['iif', fn(3, 3, ([c, a, b]) => (isTruthy(c!) ? a! : b!))],
  [
    'instr',
    fn(2, 2, ([a, b]) => {
      if (a === null || b === null) return null;
      if (a instanceof Uint8Array && b instanceof Uint8Array) {
        const index = Buffer.from(a).indexOf(Buffer.from(b));
        return BigInt(index + 1);
      }
      const haystack = text(a!)!;
      const index = haystack.indexOf(text(b!)!);
      return index < 0 ? 0n : BigInt(Array.from(haystack.slice(0, index)).length + 1);
    }),
  ],
  ['json_extract', fn(2, Infinity, jsonExtract)],
  ['json_array_length', fn(1, 2, jsonArrayLength)],
  ['json_keys', fn(1, 1, ([v]) => jsonKeys(v!))],
  ['json_valid', fn(1, 1, ([v]) => (typeof v === 'string' && jsonArgument(v) !== undefined ? 1n : 0n))],
  ['unixepoch', fn(1, Infinity, unixepoch)],
  ['datetime', fn(1, Infinity, datetime)],
  [
    'st_asgeojson',
    fn(1, 1, ([v]) => {
      const g = parseWkb(v!);
      return g ? JSON.stringify(g) : null;
    }),
  ],
  [
    'st_astext',
    fn(1, 1, ([v]) => {
      const g = parseWkb(v!);
      return g ? geometryToText(g) : null;
    }),
  ],
  ['st_x', fn(1, 1, ([v]) => pointCoordinate(v!, 0))],
  ['st_y', fn(1, 1, ([v]) => pointCoordinate(v!, 1))],
]);

/** Names of the functions that read the clock; they are accepted and return NULL (deterministic evaluation). */
export const CLOCK_FUNCTIONS: ReadonlySet<string> = new Set([
  'now',
  'current_timestamp',
  'current_date',
  'current_time',
]);
