/**
 * The oracle: the rows a client must hold, computed by SQL against the source, and the
 * comparison of a client's rows with them. Rows are compared as canonical text tuples
 * (`id` then the table's columns, each as text or null), so a value the service typed wrongly,
 * a missing row, an extra row and a stale row all show up as a difference.
 */
import type pg from 'pg';
import { readSchemaState } from './workload.js';

/** Client-side tables and their columns (besides `id`), as in the sync config's output. */
export const CLIENT_TABLES = {
  settings: ['value'],
  docs: ['group_id', 'title', 'body', 'version', 'extra'],
  events: ['group_id', 'kind', 'amount'],
  notes: ['group_id', 'note'],
  pairs: ['a', 'b', 'tag', 'val'],
} as const;

export type ClientTable = keyof typeof CLIENT_TABLES;
export type TableRows = Map<string, string>;
export type ClientRows = Record<ClientTable, TableRows>;

/** A row as one comparable text: a JSON array of the column values as text or null. */
export function canonicalRow(table: ClientTable, id: string, value: (column: string) => unknown): string {
  return JSON.stringify([id, ...CLIENT_TABLES[table].map((c) => textOf(value(c)))]);
}

function textOf(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

function emptyRows(): ClientRows {
  return { settings: new Map(), docs: new Map(), events: new Map(), notes: new Map(), pairs: new Map() };
}

/** What a client of `user` subscribed to stream `tagged` with `tags` must hold now. */
export async function expectedRows(source: pg.Client, user: string, tags: string[]): Promise<ClientRows> {
  const { hasNotes: notes, hasExtra: extra } = await readSchemaState(source);
  const groups = `(SELECT group_id FROM memberships WHERE user_id = $1)`;
  const queries: Record<ClientTable, { sql: string; params: unknown[] } | undefined> = {
    settings: { sql: 'SELECT key AS id, value FROM settings', params: [] },
    docs: {
      sql: `SELECT id::text, group_id, title, body, version::text, ${extra ? 'extra' : 'NULL'} AS extra
            FROM docs WHERE group_id IN ${groups}`,
      params: [user],
    },
    events: {
      sql: `SELECT id::text, group_id, kind, amount::text FROM events WHERE group_id IN ${groups}`,
      params: [user],
    },
    notes: notes
      ? { sql: `SELECT id::text, group_id, note FROM notes WHERE group_id IN ${groups}`, params: [user] }
      : undefined,
    pairs: {
      sql: `SELECT a::text || '/' || b AS id, a::text, b, tag, val FROM pairs WHERE tag = ANY($1)`,
      params: [tags],
    },
  };
  const out = emptyRows();
  for (const table of Object.keys(CLIENT_TABLES) as ClientTable[]) {
    const query = queries[table];
    if (!query) continue;
    const { rows } = await source.query<Record<string, unknown>>(query.sql, query.params);
    for (const row of rows) {
      const id = String(row.id);
      out[table].set(
        id,
        canonicalRow(table, id, (c) => row[c]),
      );
    }
  }
  return out;
}

/** Rows from any client, given a reader of one table's rows (each with `id` and columns). */
export async function collectRows(
  read: (table: ClientTable, columns: readonly string[]) => Promise<Record<string, unknown>[]>,
): Promise<ClientRows> {
  const out = emptyRows();
  for (const table of Object.keys(CLIENT_TABLES) as ClientTable[]) {
    for (const row of await read(table, CLIENT_TABLES[table])) {
      const id = String(row.id);
      out[table].set(
        id,
        canonicalRow(table, id, (c) => row[c]),
      );
    }
  }
  return out;
}

export interface RowDifference {
  table: ClientTable;
  id: string;
  expected: string | undefined;
  actual: string | undefined;
}

/** The first differing row (in table, then id order), or undefined when equal. */
export function firstDifference(expected: ClientRows, actual: ClientRows): RowDifference | undefined {
  for (const table of Object.keys(CLIENT_TABLES) as ClientTable[]) {
    const ids = [...new Set([...expected[table].keys(), ...actual[table].keys()])].sort();
    for (const id of ids) {
      const e = expected[table].get(id);
      const a = actual[table].get(id);
      if (e !== a) return { table, id, expected: e, actual: a };
    }
  }
  return undefined;
}

export function countRows(rows: ClientRows): number {
  return Object.values(rows).reduce((n, t) => n + t.size, 0);
}

/** A difference for a log: long values (TOASTed bodies) shortened. */
export function describeDifference(d: RowDifference): string {
  const short = (s: string | undefined) =>
    s === undefined ? '(absent)' : s.length > 300 ? `${s.slice(0, 300)}... (${s.length} chars)` : s;
  return `table ${d.table}, id ${d.id}:\n    expected ${short(d.expected)}\n    actual   ${short(d.actual)}`;
}
