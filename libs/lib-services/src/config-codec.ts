/**
 * Config codecs: zod schemas decode raw config (YAML/JSON/env) into typed, normalised
 * values; a failure becomes one ServiceError listing every problem as
 * `<path>: <what is wrong>`, so a user fixes all of them in one go.
 */
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import type { z } from 'zod';

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
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

/** One line per issue: `storage.uri: Required (got nothing)`. */
export function formatConfigIssues(error: z.ZodError, input: unknown, root = ''): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    const where = `${root}${path}`.replace(/^\./, '') || '(top level)';
    const got = issue.code === 'invalid_type' ? ` (got ${describeValue(valueAt(input, issue.path))})` : '';
    return `${where}: ${issue.message}${got}`;
  });
}

/**
 * Decodes `input` with `schema`. Throws ServiceError CONFIG_INVALID naming each bad field,
 * prefixed with `source` (e.g. the config file's path).
 */
export function decodeConfig<S extends z.ZodTypeAny>(schema: S, input: unknown, source: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const lines = formatConfigIssues(result.error, input);
  throw new ServiceError(ErrorCode.CONFIG_INVALID, `${source}:\n  - ${lines.join('\n  - ')}\n`);
}
