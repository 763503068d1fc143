/**
 * Bucket ids: `<definition>[<JSON values>]`, streams `<stream>|<variant>[...]`, optionally
 * prefixed with `<config id>#` (versioned ids). Values are compact JSON, an integral REAL
 * renders like an integer. `parseBucketId` is the inverse of `formatBucketId`.
 */
import { JsonSyntaxError, jsonValueToSqlite, parseJsonValue, sqliteToJsonText } from './json-text.js';
import type { SqliteValue } from './sqlite-value.js';

/** The parts of a bucket id. */
export interface BucketIdParts {
  /** Config id of versioned ids (`<configId>#...`), undefined without a prefix. */
  configId?: string | undefined;
  /** Bucket definition or stream name. */
  definition: string;
  /** Stream query variant (`|n`), undefined for bucket_definitions. */
  variant?: number | undefined;
  /** Bucket parameter values in definition order. */
  parameters: SqliteValue[];
}

/** JSON text of one bucket parameter value (TEXT quoted, numbers bare, NULL/BLOB as null). */
export function bucketValueJson(value: SqliteValue): string {
  return sqliteToJsonText(value);
}

/** `[v1,v2,...]`: the parameter part of a bucket id (no spaces). */
export function bucketParametersJson(values: readonly SqliteValue[]): string {
  let out = '[';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    out += bucketValueJson(values[i]!);
  }
  return out + ']';
}

/** The id prefix before the parameter part: `[configId#]definition[|variant]`. */
export function bucketIdPrefix(parts: Omit<BucketIdParts, 'parameters'>): string {
  const versioned = parts.configId === undefined ? '' : `${parts.configId}#`;
  const variant = parts.variant === undefined ? '' : `|${parts.variant}`;
  return `${versioned}${parts.definition}${variant}`;
}

/** Formats a bucket id, e.g. `by_user["u1"]`, `global[]`, `lists|0[1]`, `v2#by_user["u1"]`. */
export function formatBucketId(parts: BucketIdParts): string {
  return bucketIdPrefix(parts) + bucketParametersJson(parts.parameters);
}

/** Parses a bucket id into its parts; throws an Error with the reason when it is not one. */
export function parseBucketId(id: string): BucketIdParts {
  const open = id.indexOf('[');
  if (open <= 0 || !id.endsWith(']')) throw new Error(`"${id}" is not a bucket id: expected name[...]`);
  let head = id.slice(0, open);
  let configId: string | undefined;
  const hash = head.indexOf('#');
  if (hash >= 0) {
    configId = head.slice(0, hash);
    head = head.slice(hash + 1);
  }
  let variant: number | undefined;
  const bar = head.lastIndexOf('|');
  if (bar >= 0) {
    const n = head.slice(bar + 1);
    if (!/^\d+$/.test(n)) throw new Error(`"${id}" is not a bucket id: stream variant "${n}" is not a number`);
    variant = Number(n);
    head = head.slice(0, bar);
  }
  if (head === '') throw new Error(`"${id}" is not a bucket id: the name is empty`);
  let values;
  try {
    values = parseJsonValue(id.slice(open));
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw new Error(`"${id}" is not a bucket id: ${e.message}`, { cause: e });
    throw e;
  }
  if (!Array.isArray(values)) throw new Error(`"${id}" is not a bucket id: parameters are not a JSON array`);
  return { configId, definition: head, variant, parameters: values.map((v) => jsonValueToSqlite(v)) };
}
