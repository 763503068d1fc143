/**
 * The compiled sync config: routes each source row to the data and parameter queries of its
 * table (plans cached per table), turns evaluation failures into error items, and resolves
 * connections. Built by `parseSyncConfig`; immutable and safe to share.
 */
import type { BucketDefinition } from './bucket-definition.js';
import { resolveConnection, type ConnectionRequest, type ConnectionResolution } from './connection-resolver.js';
import type { DataQuery, EvaluatedRowOrError, EvaluationError } from './data-query.js';
import type { EventDefinition } from './event-definition.js';
import type { EvaluatedParameters } from './parameter-lookup.js';
import type { TableParameterQuery } from './parameter-query.js';
import { castToText, type SqliteRow } from './sqlite-value.js';
import type { StreamDefinition } from './stream-definition.js';
import { matchTable, tablePatternKey, type SourceTableRef, type TablePattern } from './table-pattern.js';

export type EvaluatedParameterOrError = EvaluatedParameters | EvaluationError;

/** A parsed and compiled sync config. */
export interface SyncConfig {
  /** `config.edition` (1 or 2). */
  readonly edition: number;
  /** Table patterns referenced anywhere (data queries, parameter queries, stream subqueries, events). */
  readonly sourceTables: TablePattern[];
  readonly bucketDefinitions: readonly BucketDefinition[];
  readonly streams: readonly StreamDefinition[];
  readonly eventDefinitions: readonly EventDefinition[];
  /** True when any data or parameter query reads this table (replication must copy it). */
  tableIsRelevant(table: SourceTableRef): boolean;
  /** True when this table feeds the parameter index (storage must call evaluateParameterRow). */
  tableHasParameterQueries(table: SourceTableRef): boolean;
  /** Row -> bucket tuples. Never throws: failures come back as `{error}` items naming table, row id and definition. */
  evaluateRow(table: SourceTableRef, row: SqliteRow): EvaluatedRowOrError[];
  /** Row -> parameter-index entries. Never throws. */
  evaluateParameterRow(table: SourceTableRef, row: SqliteRow): EvaluatedParameterOrError[];
  /** Connection -> static buckets and lookups to run; its `finish` gives the final buckets. */
  resolveConnection(request: ConnectionRequest): ConnectionResolution;
}

interface TablePlan {
  readonly data: { query: DataQuery; suffix: string }[];
  readonly parameters: { query: TableParameterQuery; suffix: string }[];
}

function describeRow(table: SourceTableRef, row: SqliteRow): string {
  let id: string;
  try {
    id = row.id === undefined ? '(no id)' : (castToText(row.id) ?? 'NULL');
  } catch {
    id = '(unreadable id)';
  }
  return `${table.schema}.${table.name} id=${id}`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The SyncConfig implementation. */
export class CompiledSyncConfig implements SyncConfig {
  readonly sourceTables: TablePattern[];
  private readonly dataQueries: DataQuery[];
  private readonly parameterQueries: TableParameterQuery[];
  private readonly plans = new Map<string, TablePlan>();
  // Replication evaluates many rows of one table in a row: skip the map lookup for the same table.
  private lastSchema: string | undefined;
  private lastName: string | undefined;
  private lastPlan: TablePlan | undefined;

  constructor(
    readonly edition: number,
    readonly bucketDefinitions: readonly BucketDefinition[],
    readonly streams: readonly StreamDefinition[],
    readonly eventDefinitions: readonly EventDefinition[],
  ) {
    this.dataQueries = [
      ...bucketDefinitions.flatMap((d) => d.dataQueries),
      ...streams.flatMap((s) => s.variants.map((v) => v.dataQuery)),
    ];
    this.parameterQueries = [
      ...bucketDefinitions.flatMap((d) =>
        d.parameterQueries.filter((q): q is TableParameterQuery => q.kind === 'table'),
      ),
      ...streams.flatMap((s) => s.subqueries),
    ];
    const patterns = new Map<string, TablePattern>();
    const addPattern = (p: TablePattern): void => {
      if (!patterns.has(tablePatternKey(p))) patterns.set(tablePatternKey(p), p);
    };
    this.dataQueries.forEach((q) => addPattern(q.table));
    this.parameterQueries.forEach((q) => addPattern(q.table));
    eventDefinitions.forEach((e) => e.sourceTables.forEach(addPattern));
    this.sourceTables = [...patterns.values()];
  }

  private plan(table: SourceTableRef): TablePlan {
    if (this.lastPlan && table.name === this.lastName && table.schema === this.lastSchema) return this.lastPlan;
    const plan = this.findPlan(table);
    this.lastSchema = table.schema;
    this.lastName = table.name;
    this.lastPlan = plan;
    return plan;
  }

  private findPlan(table: SourceTableRef): TablePlan {
    const key = `${table.schema}\u0000${table.name}`;
    let plan = this.plans.get(key);
    if (!plan) {
      const data: TablePlan['data'] = [];
      for (const query of this.dataQueries) {
        const suffix = matchTable(query.table, table);
        if (suffix !== undefined) data.push({ query, suffix });
      }
      const parameters: TablePlan['parameters'] = [];
      for (const query of this.parameterQueries) {
        const suffix = matchTable(query.table, table);
        if (suffix !== undefined) parameters.push({ query, suffix });
      }
      plan = { data, parameters };
      this.plans.set(key, plan);
    }
    return plan;
  }

  tableIsRelevant(table: SourceTableRef): boolean {
    const plan = this.plan(table);
    return plan.data.length > 0 || plan.parameters.length > 0;
  }

  tableHasParameterQueries(table: SourceTableRef): boolean {
    return this.plan(table).parameters.length > 0;
  }

  evaluateRow(table: SourceTableRef, row: SqliteRow): EvaluatedRowOrError[] {
    const out: EvaluatedRowOrError[] = [];
    const data = this.plan(table).data;
    for (let i = 0; i < data.length; i++) {
      const { query, suffix } = data[i]!;
      try {
        query.evaluate(table, row, suffix, out);
      } catch (error) {
        out.push({
          error: `Could not evaluate row ${describeRow(table, row)} for "${query.definition}": ${messageOf(error)}`,
        });
      }
    }
    return out;
  }

  evaluateParameterRow(table: SourceTableRef, row: SqliteRow): EvaluatedParameterOrError[] {
    const out: EvaluatedParameterOrError[] = [];
    for (const { query, suffix } of this.plan(table).parameters) {
      try {
        out.push(...query.evaluateRow(row, suffix));
      } catch (error) {
        out.push({
          error: `Could not evaluate parameter row ${describeRow(table, row)} for "${query.definition}" (query ${query.queryId}): ${messageOf(error)}`,
        });
      }
    }
    return out;
  }

  resolveConnection(request: ConnectionRequest): ConnectionResolution {
    return resolveConnection(this.bucketDefinitions, this.streams, request);
  }
}
