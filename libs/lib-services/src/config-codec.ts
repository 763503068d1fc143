/**
 * Config codecs: zod schemas decode raw config (YAML/JSON/env) into typed, normalised
 * values; a failure becomes one ServiceError listing every problem as
 * `<path>: <what is wrong>`, so a user fixes all of them in one go.
 */
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { z } from 'zod';

/**
 * Keys whose values are secrets, matched exactly: JWK secret and private members (`k` of an
 * HMAC key, `d`, `p`, `q`, `dp`, `dq`, `qi` of a private key). Keys whose name contains one of
 * {@link SECRET_KEY_WORDS} are secrets too. A config error never prints a secret's value, only
 * its type (`(got a number)`): a secret typed as a YAML number (`k: 123456`) must not end up in
 * logs or a terminal scrollback.
 */
const SECRET_CONFIG_KEYS: ReadonlySet<string> = new Set(['k', 'd', 'p', 'q', 'dp', 'dq', 'qi']);

/** Words that make a key secret wherever they appear in its name (`supabase_jwt_secret`, `api_key`). */
const SECRET_KEY_WORDS = /password|passwd|secret|token|private_key|api_key|credential/i;

/**
 * True when the value at `path` is a secret: its nearest named key (a list index names its
 * list: `tokens[0]` is under `tokens`) is in {@link SECRET_CONFIG_KEYS} or contains a secret word.
 */
export function isSecretConfigPath(path: ReadonlyArray<PropertyKey>): boolean {
  for (let i = path.length - 1; i >= 0; i--) {
    const part = path[i];
    if (typeof part !== 'string') continue;
    return SECRET_CONFIG_KEYS.has(part) || SECRET_KEY_WORDS.test(part);
  }
  return false;
}

function describeValue(value: unknown, secret = false): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (secret) return `a ${typeof value} (not shown: a secret)`;
  return `${typeof value} ${JSON.stringify(value)}`;
}

function valueAt(input: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let current: unknown = input;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

/**
 * Edit distance between two keys (insertions, deletions, substitutions and swaps of two
 * neighbours each cost 1). Keys are short, so the quadratic table is a few hundred cells.
 */
function keyDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The known key a misspelt one most likely meant: the closest by edit distance (ignoring case,
 * `-` versus `_`), when it is within a third of the key's length; undefined when none is close.
 */
export function closestKey(key: string, known: Iterable<string>): string | undefined {
  const norm = (k: string) => k.toLowerCase().replaceAll('-', '_');
  if (key.length > 64) return undefined; // nobody misspells a 64-character key
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = keyDistance(norm(key), norm(candidate));
    if (!best || distance < best.distance) best = { key: candidate, distance };
  }
  if (!best) return undefined;
  return best.distance <= Math.max(1, Math.floor(Math.max(key.length, best.key.length) / 3)) ? best.key : undefined;
}

/**
 * The problem line for a key nobody reads at `path` (`api.gzpi`): a did-you-mean when a known
 * key is close, else the list of keys that are read there.
 */
export function unknownKeyProblem(path: string, known: readonly string[]): string {
  const key = path.slice(path.lastIndexOf('.') + 1);
  const suggestion = closestKey(key, known);
  return suggestion
    ? `${path}: unknown key; did you mean ${suggestion}?`
    : `${path}: unknown key (expected one of ${[...known].sort().join(', ')})`;
}

/** The keys an object schema reads at `path` inside `schema`, when it can tell. */
function knownKeysAt(schema: z.ZodTypeAny | undefined, path: ReadonlyArray<PropertyKey>): string[] | undefined {
  let current: z.ZodTypeAny | undefined = schema;
  const unwrap = (s: z.ZodTypeAny | undefined): z.ZodTypeAny | undefined => {
    for (let i = 0; s && i < 10; i++) {
      if (s instanceof z.ZodEffects) s = s.innerType();
      else if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap();
      else if (s instanceof z.ZodDefault) s = s.removeDefault();
      else return s;
    }
    return s;
  };
  for (const part of path) {
    current = unwrap(current);
    if (current instanceof z.ZodObject) current = (current.shape as Record<string, z.ZodTypeAny>)[String(part)];
    else if (current instanceof z.ZodArray) current = current.element;
    else return undefined;
  }
  current = unwrap(current);
  return current instanceof z.ZodObject ? Object.keys(current.shape as object) : undefined;
}

/**
 * One line per issue: `storage.uri: Required (got nothing)`; unknown keys with a did-you-mean.
 * Values at secret paths ({@link isSecretConfigPath}) are described by type only.
 */
export function formatConfigIssues(error: z.ZodError, input: unknown, root = '', schema?: z.ZodTypeAny): string[] {
  return error.issues.flatMap((issue) => {
    const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    const where = `${root}${path}`.replace(/^\./, '') || '(top level)';
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(schema, issue.path);
      const prefix = where === '(top level)' ? '' : `${where}.`;
      return issue.keys.map((key) =>
        known ? unknownKeyProblem(`${prefix}${key}`, known) : `${prefix}${key}: unknown key`,
      );
    }
    const secret = isSecretConfigPath(issue.path);
    const got = issue.code === 'invalid_type' ? ` (got ${describeValue(valueAt(input, issue.path), secret)})` : '';
    // zod's own enum and literal messages quote the received value; a secret's is dropped.
    const message = secret && issue.code === 'invalid_enum_value' ? 'Invalid enum value' : issue.message;
    return [`${where}: ${message}${got}`];
  });
}

/**
 * Decodes `input` with `schema`. Throws ServiceError CONFIG_INVALID naming each bad field,
 * prefixed with `source` (e.g. the config file's path).
 */
export function decodeConfig<S extends z.ZodTypeAny>(schema: S, input: unknown, source: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const lines = formatConfigIssues(result.error, input, '', schema);
  throw new ServiceError(ErrorCode.CONFIG_INVALID, `${source}:\n  - ${lines.join('\n  - ')}\n`);
}
