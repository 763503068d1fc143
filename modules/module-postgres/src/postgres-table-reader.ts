/**
 * Reads a source table in key order, one chunk per query (`WHERE key > last ORDER BY key
 * LIMIT n`), so a copy resumes from the last key after a crash and memory stays bounded.
 * Values arrive as raw text and go through the column decoders once; the last key is kept
 * as text so it can be stored and passed back as query parameters.
 */
import type { ColumnDecoder, PostgresTypeDecoder } from '@bucketsync/lib-postgres';
import type { SqliteRow } from '@bucketsync/sync-rules';
import type pg from 'pg';
import { quoteIdent } from './postgres-replication-connection.js';

/** A source table as the snapshotter reads it. */
export interface PostgresTableShape {
  schema: string;
  name: string;
  /** Every column, in table order. */
  columns: { name: string; typeOid: number }[];
  /** Columns of the replica identity key (primary key or chosen index), in key order. */
  keyColumns: string[];
}

export interface TableChunk {
  rows: SqliteRow[];
  /** Key of the last row as Postgres text values; undefined when the chunk is empty. */
  lastKey: (string | null)[] | undefined;
}

const rawText: pg.CustomTypesConfig = { getTypeParser: () => (value: string) => value } as pg.CustomTypesConfig;

export class PostgresTableReader {
  private readonly decoders: ColumnDecoder[];
  private readonly keyIndexes: number[];
  private readonly firstQuery: string;
  private readonly nextQuery: string;
  private readonly byKeyQuery: string;

  constructor(
    private readonly table: PostgresTableShape,
    types: PostgresTypeDecoder,
  ) {
    if (table.keyColumns.length === 0) {
      throw new Error(`table ${table.schema}.${table.name} has no key columns to copy it in order`);
    }
    this.decoders = table.columns.map((c) => types.decoder(c.typeOid));
    this.keyIndexes = table.keyColumns.map((k) => {
      const index = table.columns.findIndex((c) => c.name === k);
      if (index < 0) throw new Error(`key column ${k} is not a column of ${table.schema}.${table.name}`);
      return index;
    });
    const select = table.columns.map((c) => quoteIdent(c.name)).join(', ');
    const from = `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
    const keys = table.keyColumns.map(quoteIdent);
    const orderBy = keys.join(', ');
    const params = keys.map((_, i) => `$${i + 2}`);
    this.firstQuery = `SELECT ${select} FROM ${from} ORDER BY ${orderBy} LIMIT $1`;
    this.byKeyQuery = `SELECT ${select} FROM ${from} WHERE (${keys.join(', ')}) = (${keys.map((_, i) => `$${i + 1}`).join(', ')})`;
    this.nextQuery = `SELECT ${select} FROM ${from} WHERE (${keys.join(', ')}) > (${params.join(', ')}) ORDER BY ${orderBy} LIMIT $1`;
  }

  /** Reads up to `limit` rows after `afterKey` (from the start when undefined). */
  async readChunk(client: pg.ClientBase, afterKey: (string | null)[] | undefined, limit: number): Promise<TableChunk> {
    const result = await client.query<(string | null)[]>({
      text: afterKey ? this.nextQuery : this.firstQuery,
      values: afterKey ? [limit, ...afterKey] : [limit],
      rowMode: 'array',
      types: rawText,
    });
    const rows = this.decodeRows(result.rows);
    const last = result.rows[result.rows.length - 1];
    return { rows, lastKey: last ? this.keyIndexes.map((i) => last[i] ?? null) : undefined };
  }

  /** The row with this key (values as text or bytes), if it exists. */
  async readByKey(client: pg.ClientBase, key: (string | Buffer | null)[]): Promise<SqliteRow[]> {
    const result = await client.query<(string | null)[]>({
      text: this.byKeyQuery,
      values: key,
      rowMode: 'array',
      types: rawText,
    });
    return this.decodeRows(result.rows);
  }

  private decodeRows(raws: (string | null)[][]): SqliteRow[] {
    const decoders = this.decoders;
    const columns = this.table.columns;
    const rows: SqliteRow[] = new Array(raws.length);
    for (let r = 0; r < raws.length; r++) {
      const raw = raws[r]!;
      const row: SqliteRow = {};
      for (let c = 0; c < raw.length; c++) {
        const text = raw[c];
        row[columns[c]!.name] = text === null || text === undefined ? null : decoders[c]!(text);
      }
      rows[r] = row;
    }
    return rows;
  }
}
