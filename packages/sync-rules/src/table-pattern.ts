/**
 * Source table patterns: a schema plus a table name, or a name prefix for wildcard tables
 * (`"todos_%"`), whose matched remainder is available to queries as `_table_suffix`.
 */

/** A source table as the replication sees it. */
export interface SourceTableRef {
  schema: string;
  name: string;
}

/** A table a sync config reads: exact, or every table whose name starts with `name` when a wildcard. */
export interface TablePattern {
  readonly schema: string;
  /** Table name, or the prefix without `%` for wildcards. */
  readonly name: string;
  readonly isWildcard: boolean;
}

/** Builds a pattern from a (possibly quoted) table name; a trailing `%` makes it a wildcard. */
export function tablePattern(schema: string, name: string): TablePattern {
  return name.endsWith('%')
    ? { schema, name: name.slice(0, -1), isWildcard: true }
    : { schema, name, isWildcard: false };
}

/** The `_table_suffix` when the table matches (`''` for exact patterns), undefined otherwise. */
export function matchTable(pattern: TablePattern, table: SourceTableRef): string | undefined {
  if (pattern.schema !== table.schema) return undefined;
  if (!pattern.isWildcard) return pattern.name === table.name ? '' : undefined;
  return table.name.startsWith(pattern.name) ? table.name.slice(pattern.name.length) : undefined;
}

/** A stable key of a pattern, for de-duplication. */
export function tablePatternKey(pattern: TablePattern): string {
  return `${pattern.schema}.${pattern.name}${pattern.isWildcard ? '%' : ''}`;
}

/** Readable form of a pattern for messages: `public.todos`, `public."todos_%"`. */
export function formatTablePattern(pattern: TablePattern): string {
  return pattern.isWildcard ? `${pattern.schema}."${pattern.name}%"` : `${pattern.schema}.${pattern.name}`;
}
