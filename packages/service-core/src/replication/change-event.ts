/**
 * Change events: what every streamer emits and the replication coordinator applies. A
 * source module translates its own stream (pgoutput, binlog, change stream, CDC) into these;
 * core never sees source words (docs/glossary.md "change").
 */
import type { SourceTableDescriptor, SqliteRow } from '../storage/storage-types.js';

interface RowChangeBase {
  /** The source table as the stream currently describes it. */
  readonly table: SourceTableDescriptor;
  /**
   * Sorts after every earlier change of the stream (Postgres: commit LSN + index in the
   * transaction). Storage uses it to skip a change it already applied (invariant 6).
   */
  readonly position?: string;
}

/** A row change. */
export type RowChangeEvent =
  | (RowChangeBase & { readonly type: 'insert'; readonly after: SqliteRow })
  | (RowChangeBase & {
      readonly type: 'update';
      readonly after: SqliteRow;
      /** Old row (at least its key) when the source sent one: key changes, full replica identity. */
      readonly before?: SqliteRow;
      /**
       * Columns the source did not send because they did not change (Postgres unchanged
       * TOAST values). Storage must then merge with the row it holds, or re-read the row by
       * key when it holds none (architecture.md section 4, "Partial updates").
       */
      readonly unchangedColumns?: readonly string[];
    })
  | (RowChangeBase & { readonly type: 'delete'; readonly before: SqliteRow });

export type ChangeEvent =
  | RowChangeEvent
  /** The stream describes a table (again): its columns, key or identity may have changed. */
  | { readonly type: 'schema'; readonly table: SourceTableDescriptor }
  | { readonly type: 'truncate'; readonly tables: readonly SourceTableDescriptor[] }
  /** End of a source transaction: everything before it is one consistent unit at `position`. */
  | { readonly type: 'commit'; readonly position: string }
  /** The source is at `position` with nothing to apply (idle stream, filtered transaction). */
  | { readonly type: 'keepalive'; readonly position: string };
