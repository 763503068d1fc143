/**
 * The Postgres streamer: creates the replication slot (its consistent point is the start
 * position), streams pgoutput from it and translates messages into core change events.
 * Row changes carry `commit LSN + index` as their position (idempotent re-apply); commits
 * carry the commit's end LSN; BucketSync's own logical messages and idle keepalives become
 * keepalive events. Acknowledged positions are reported back so the server releases WAL.
 */
import { connectPostgres, loadPostgresTypes, PostgresTypeDecoder } from '@bucketsync/lib-postgres';
import {
  sameColumns,
  type ChangeEvent,
  type SourceContext,
  type SourceTableDescriptor,
  type Streamer,
} from '@bucketsync/service-core';
import type pg from 'pg';
import type { PostgresSourceConfig } from './postgres-config.js';
import { slotNameFor } from './postgres-config.js';
import { checkReplicationPrerequisites, classifyPostgresSourceError } from './postgres-errors.js';
import { PostgresPgoutputDecoder, type PgoutputRelation, type PgoutputTuple } from './postgres-pgoutput-decoder.js';
import { lsnToPosition, parseLsn } from './postgres-position.js';
import { PostgresReplicationConnection } from './postgres-replication-connection.js';
import { MESSAGE_PREFIX } from './postgres-snapshotter.js';
import { describePostgresTable, describePostgresTables, sourceColumn } from './postgres-table-catalog.js';

/** How often the last acknowledged position is sent at most (each commit acknowledges). */
const STATUS_INTERVAL_MS = 1000;
/** How often the catalog is compared with the tables' known columns (see `changedSchemas`). */
const SCHEMA_CHECK_INTERVAL_MS = 5000;

export class PostgresStreamer implements Streamer {
  readonly slot: string;
  private replication: PostgresReplicationConnection | undefined;
  private acknowledged = 0n;
  private lastStatusSent = 0;

  constructor(private readonly context: SourceContext<PostgresSourceConfig>) {
    this.slot = slotNameFor(context.replicationId);
  }

  async createStartPosition(): Promise<string> {
    const admin = await this.admin('creating the replication slot');
    try {
      // Every prerequisite first: a slot created before a failing check would hold WAL for nothing.
      await checkReplicationPrerequisites(admin, this.context.config.publicationName);
      // Called only while no start position is saved, so a slot of this name is stale (left by
      // a crash before the position was saved) and nothing resumes from it: start over.
      await admin.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [
        this.slot,
      ]);
    } catch (e) {
      throw classifyPostgresSourceError(e, 'checking the replication prerequisites');
    } finally {
      await admin.end();
    }
    const replication = await PostgresReplicationConnection.connect(this.context.config.uri);
    try {
      const { consistentPoint } = await replication.createSlot(this.slot);
      return lsnToPosition(consistentPoint);
    } finally {
      await replication.close();
    }
  }

  async *stream(from: string, signal: AbortSignal): AsyncIterable<ChangeEvent[]> {
    const admin = await this.admin('starting replication');
    const types = new PostgresTypeDecoder({ edition: this.context.edition });
    const decoder = new PostgresPgoutputDecoder(types);
    const descriptors = new Map<number, SourceTableDescriptor>();
    let replication: PostgresReplicationConnection | undefined;
    try {
      await checkReplicationPrerequisites(admin, this.context.config.publicationName);
      replication = await PostgresReplicationConnection.connect(this.context.config.uri);
      this.replication = replication;
      this.acknowledged = parseLsn(from);
      let commitLsn = 0n;
      let index = 0;
      let inTransaction = false;
      const rowPosition = () => `${lsnToPosition(commitLsn)}:${(index++).toString(16).padStart(8, '0')}`;

      const describe = async (relation: PgoutputRelation): Promise<SourceTableDescriptor> => {
        await loadPostgresTypes(admin, types, PostgresPgoutputDecoder.relationTypeOids(relation));
        decoder.refreshDecoders();
        const table = await describePostgresTable(admin, relation.relationId, this.context.config.tag);
        const keyColumns = table?.keyColumns ?? relation.columns.filter((c) => c.isKey).map((c) => c.name);
        const descriptor: SourceTableDescriptor = {
          connectionTag: this.context.config.tag,
          schema: relation.schema,
          name: relation.name,
          objectId: relation.relationId,
          replicaIdColumns: keyColumns,
          // The columns as of this point of the stream (the catalog may be further on), with
          // whether each has a default from the catalog.
          columns: relation.columns.map((c) =>
            sourceColumn(
              c.name,
              c.typeOid,
              c.typeMod,
              table?.descriptor.columns?.find((k) => k.name === c.name)?.hasDefault ?? false,
            ),
          ),
        };
        descriptors.set(relation.relationId, descriptor);
        return descriptor;
      };
      const tableOf = (relation: PgoutputRelation) => descriptors.get(relation.relationId)!;
      // Logical decoding carries no DDL: a column dropped (or added with a default) changes
      // every row without a change event, and the next relation message only comes with the
      // table's next row change. So the catalog is compared now and then between transactions.
      let lastSchemaCheck = Date.now();
      const changedSchemas = async (): Promise<ChangeEvent[]> => {
        const current = await describePostgresTables(admin, [...descriptors.keys()], this.context.config.tag);
        const changed: ChangeEvent[] = [];
        for (const [oid, known] of descriptors) {
          const now = current.get(oid)?.descriptor;
          if (!now || sameColumns(known.columns, now.columns)) continue;
          descriptors.set(oid, now);
          changed.push({ type: 'schema', table: now });
        }
        return changed;
      };

      for await (const frames of replication.start({
        slot: this.slot,
        publication: this.context.config.publicationName,
        startLsn: parseLsn(from),
        signal,
      })) {
        const events: ChangeEvent[] = [];
        for (const frame of frames) {
          if (frame.kind === 'keepalive') {
            if (frame.replyRequested) this.sendStatus(true);
            if (!inTransaction && frame.walEnd > 0n)
              events.push({ type: 'keepalive', position: lsnToPosition(frame.walEnd) });
            continue;
          }
          const message = decoder.decode(frame.message);
          switch (message.tag) {
            case 'begin':
              inTransaction = true;
              commitLsn = message.finalLsn;
              index = 0;
              break;
            case 'commit':
              inTransaction = false;
              events.push({ type: 'commit', position: lsnToPosition(message.endLsn) });
              break;
            case 'relation':
              events.push({ type: 'schema', table: await describe(message.relation) });
              break;
            case 'insert':
              events.push({
                type: 'insert',
                table: tableOf(message.relation),
                after: message.after.row,
                position: rowPosition(),
              });
              break;
            case 'update':
              events.push(updateEvent(tableOf(message.relation), message.before, message.after, rowPosition()));
              break;
            case 'delete':
              events.push({
                type: 'delete',
                table: tableOf(message.relation),
                before: message.before.row,
                position: rowPosition(),
              });
              break;
            case 'truncate':
              events.push({ type: 'truncate', tables: message.relations.map(tableOf) });
              break;
            case 'message':
              if (!message.transactional && message.prefix === MESSAGE_PREFIX && !inTransaction) {
                events.push({ type: 'keepalive', position: lsnToPosition(message.lsn) });
              }
              break;
            default:
              break;
          }
        }
        // Only when caught up (a keepalive came): behind, the catalog is ahead of the stream.
        const keepalive = frames.findLast((f) => f.kind === 'keepalive');
        if (
          keepalive?.kind === 'keepalive' &&
          keepalive.walEnd > 0n &&
          !inTransaction &&
          Date.now() - lastSchemaCheck >= SCHEMA_CHECK_INTERVAL_MS &&
          descriptors.size > 0
        ) {
          lastSchemaCheck = Date.now();
          const changed = await changedSchemas();
          // The copies and drops they start are a unit of their own: commit it at once (a
          // keepalive would not, on a batch with work since its last commit).
          if (changed.length > 0) {
            // At or past every position already in this arrival (positions never go back).
            let at = keepalive.walEnd;
            for (const e of events) {
              if (e.type !== 'commit' && e.type !== 'keepalive') continue;
              const lsn = parseLsn(e.position.split(':')[0]!);
              if (lsn > at) at = lsn;
            }
            events.push(...changed, { type: 'commit', position: lsnToPosition(at) });
          }
        }
        if (events.length > 0) yield events;
      }
    } catch (e) {
      throw classifyPostgresSourceError(e, `streaming from slot "${this.slot}"`, this.slot);
    } finally {
      this.replication = undefined;
      await replication?.close();
      await admin.end().catch(() => undefined);
    }
  }

  acknowledge(position: string): void {
    const lsn = parseLsn(position.split(':')[0]!);
    if (lsn <= this.acknowledged) return;
    this.acknowledged = lsn;
    if (Date.now() - this.lastStatusSent >= STATUS_INTERVAL_MS) this.sendStatus(false);
  }

  async destroy(): Promise<void> {
    const admin = await this.admin('dropping the replication slot');
    try {
      await admin.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [
        this.slot,
      ]);
    } finally {
      await admin.end();
    }
  }

  async close(): Promise<void> {
    await this.replication?.close();
  }

  private sendStatus(replyRequested: boolean): void {
    this.lastStatusSent = Date.now();
    try {
      this.replication?.sendStatus(this.acknowledged, replyRequested);
    } catch {
      // the connection is going away; the stream loop reports the failure
    }
  }

  private async admin(doing: string): Promise<pg.Client> {
    try {
      return await connectPostgres({ uri: this.context.config.uri, applicationName: 'bucketsync-replication-admin' });
    } catch (e) {
      throw classifyPostgresSourceError(e, doing);
    }
  }
}

function updateEvent(
  table: SourceTableDescriptor,
  before: PgoutputTuple | undefined,
  after: PgoutputTuple,
  position: string,
): ChangeEvent {
  return {
    type: 'update',
    table,
    after: after.row,
    position,
    ...(before ? { before: before.row } : {}),
    ...(after.unchangedToast ? { unchangedColumns: after.unchangedToast } : {}),
  };
}
