/**
 * Event definitions (`event_definitions`): payload queries that fire an event with the
 * before/after rows when a matching table changes (e.g. custom write checkpoints).
 */
import type { DataQuery } from './data-query.js';
import type { SqliteRow } from './sqlite-value.js';
import { matchTable, type SourceTableRef, type TablePattern } from './table-pattern.js';

/** A compiled event definition. */
export class EventDefinition {
  constructor(
    readonly name: string,
    readonly payloads: readonly DataQuery[],
  ) {}

  /** Tables whose changes fire this event. */
  get sourceTables(): TablePattern[] {
    return this.payloads.map((p) => p.table);
  }

  /** True when a change to this table fires the event. */
  firesFor(table: SourceTableRef): boolean {
    return this.payloads.some((p) => matchTable(p.table, table) !== undefined);
  }

  /** Payload rows of a changed row (one per matching payload query whose WHERE passes). */
  evaluatePayload(table: SourceTableRef, row: SqliteRow): SqliteRow[] {
    const out: SqliteRow[] = [];
    for (const payload of this.payloads) {
      const suffix = matchTable(payload.table, table);
      if (suffix === undefined) continue;
      const result = payload.payload(row, suffix);
      if (result) out.push(result);
    }
    return out;
  }
}
