/**
 * Source values -> sync values, shared by all source modules (docs/sync-config.md, "Values and
 * types"): driver values (booleans, bigint, Date, Buffer, JSON, arrays, numeric strings)
 * become SQLite values; timestamps are formatted per config edition.
 */
import { jsToJsonText } from './json-text.js';
import type { SqliteValue } from './sqlite-value.js';

/** How a source column should be read when the JS value alone is ambiguous. */
export type SourceValueKind =
  /** integral JS numbers become INTEGER, others REAL (the default) */
  | 'auto'
  /** always REAL (float4/float8 columns, where 3.0 must stay REAL) */
  | 'real'
  /** exact decimal text (numeric/decimal columns) */
  | 'numeric'
  /** JSON: text kept unchanged, other values serialised */
  | 'json'
  /** date only: `YYYY-MM-DD` */
  | 'date'
  /** timestamp: formatted per edition */
  | 'timestamp';

/** Options for {@link toSyncValue}. */
export interface ToSyncValueOptions {
  /** Config edition (1 or 2); decides the timestamp format. Default 1. */
  edition?: number;
  /** Column kind when the JS value is ambiguous. Default 'auto'. */
  kind?: SourceValueKind;
}

/**
 * Converts a value from a database driver into a sync value. Booleans -> 1/0, Date and
 * timestamp text -> formatted timestamp, Buffer -> Uint8Array, arrays and objects -> JSON text,
 * numeric strings stay exact TEXT. Called by source modules for every column of every row.
 */
export function toSyncValue(value: unknown, options: ToSyncValueOptions = {}): SqliteValue {
  const kind = options.kind ?? 'auto';
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
      if (kind === 'timestamp') return formatTimestamp(value, options.edition ?? 1);
      if (kind === 'date') return formatDate(value);
      return value;
    case 'number':
      if (kind === 'numeric') return String(value);
      if (kind === 'json') return jsToJsonText(value);
      if (kind === 'real' || !Number.isInteger(value)) return value;
      return BigInt(value);
    case 'bigint':
      if (kind === 'numeric' || kind === 'json') return value.toString();
      return kind === 'real' ? Number(value) : value;
    case 'boolean':
      if (kind === 'json') return value ? 'true' : 'false';
      return value ? 1n : 0n;
    case 'object':
      break;
    default:
      return String(value);
  }
  if (value instanceof Date) {
    if (kind === 'date') return formatDate(value);
    return formatTimestamp(value, options.edition ?? 1);
  }
  if (value instanceof Uint8Array) {
    // Buffer is a Uint8Array subclass; hand out a plain view so consumers see one type.
    return value.constructor === Uint8Array ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  if (Array.isArray(value)) return jsToJsonText(value.map((v: unknown) => arrayElement(v, options)));
  return jsToJsonText(value);
}

/** Array elements stay JSON values (booleans stay true/false); dates are formatted like columns. */
function arrayElement(value: unknown, options: ToSyncValueOptions): unknown {
  if (value instanceof Date) return formatTimestamp(value, options.edition ?? 1);
  if (Array.isArray(value)) return value.map((v: unknown) => arrayElement(v, options));
  return value;
}

const TIMESTAMP_TEXT =
  /^(\d{4,}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2})?)(\.\d+)?\s*(Z|[+-]\d{2}(?::?\d{2})?(?::?\d{2})?)?( BC)?$/i;

/**
 * Formats a timestamp for sync: edition 1 `2025-08-19 09:21:00Z`, edition 2
 * `2025-08-19T09:21:00Z`. Text input keeps its sub-second digits exactly (microseconds from
 * Postgres); a zone offset is normalised to UTC; text without a zone is taken as UTC. A Date
 * keeps milliseconds when non-zero. Text that is not a timestamp (`infinity`) is returned as is.
 */
export function formatTimestamp(value: Date | string | number, edition: number): string {
  const separator = edition >= 2 ? 'T' : ' ';
  if (typeof value === 'number') value = new Date(value);
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) return 'Invalid Date';
    const iso = value.toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ (or ±YYYYYY for far years)
    const [date, rest] = iso.split('T') as [string, string];
    const time = rest.slice(0, 8);
    const ms = rest.slice(8, 12);
    return `${date}${separator}${time}${ms === '.000' ? '' : ms}Z`;
  }
  const match = TIMESTAMP_TEXT.exec(value.trim());
  if (!match) return value;
  const [, date, rawTime, fraction = '', zone, bc] = match as unknown as [
    string,
    string,
    string,
    string | undefined,
    string | undefined,
    string | undefined,
  ];
  const time = rawTime.length === 5 ? `${rawTime}:00` : rawTime;
  if (bc || !zone || zone.toUpperCase() === 'Z' || /^[+-]00(:?00)?(:?00)?$/.test(zone)) {
    return `${date}${separator}${time}${fraction}Z${bc ?? ''}`;
  }
  // Shift by the offset without losing the sub-second digits (a Date would keep only ms).
  const sign = zone[0] === '-' ? -1 : 1;
  const digits = zone.slice(1).replace(/:/g, '');
  const offsetSeconds =
    sign *
    (Number(digits.slice(0, 2)) * 3600 + Number(digits.slice(2, 4) || '0') * 60 + Number(digits.slice(4, 6) || '0'));
  const utc = new Date(`${date}T${time}Z`);
  if (Number.isNaN(utc.getTime())) return value;
  const shifted = new Date(utc.getTime() - offsetSeconds * 1000).toISOString();
  return `${shifted.slice(0, 10)}${separator}${shifted.slice(11, 19)}${fraction}Z`;
}

/** Formats a date as `YYYY-MM-DD` (date columns); text is kept when it already is a date. */
export function formatDate(value: Date | string): string {
  if (typeof value === 'string') return value;
  if (Number.isNaN(value.getTime())) return 'Invalid Date';
  return value.toISOString().slice(0, 10);
}
