/**
 * Parameter lookups: the key under which a parameter query's row outputs are stored in the
 * parameter index, and under which a connection reads them back.
 */
import { bucketValueJson } from './bucket-id.js';
import type { SqliteRow, SqliteValue } from './sqlite-value.js';

/** A key of the parameter index. */
export interface ParameterLookup {
  /** Bucket definition name or stream name that owns the query. */
  readonly definition: string;
  /** Which query of the definition (`"0"`, `"1"`, ... or `"<variant>.<subquery>"` for streams). */
  readonly queryId: string;
  /** The looked-up values, in the query's order of `=` / `IN` matches. */
  readonly values: readonly SqliteValue[];
}

/** A parameter-index entry produced by a source row. */
export interface EvaluatedParameters {
  readonly lookup: ParameterLookup;
  /** Output rows (bucket parameter values by column name) stored under the lookup. */
  readonly outputs: SqliteRow[];
}

/**
 * Stable string form of a lookup, used as the storage key and as the key of lookup results
 * given to `ConnectionResolution.finish`: compact JSON `["by_team","0","t1"]`.
 */
export function serializeParameterLookup(lookup: ParameterLookup): string {
  let out = JSON.stringify(lookup.definition) + ',' + JSON.stringify(lookup.queryId);
  for (const value of lookup.values) out += ',' + bucketValueJson(value);
  return '[' + out + ']';
}
