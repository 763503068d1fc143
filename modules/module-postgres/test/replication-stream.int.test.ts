import { randomBytes } from 'node:crypto';
import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { connectPostgres, loadPostgresTypes, PostgresTypeDecoder } from '@bucketsync/lib-postgres';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PostgresPgoutputDecoder, type PgoutputMessage } from '../src/postgres-pgoutput-decoder.js';
import { lsnToText } from '../src/postgres-position.js';
import { PostgresReplicationConnection } from '../src/postgres-replication-connection.js';

describeIntegration('postgres', 'pgoutput stream from a real server', (url) => {
  const slot = `test_stream_${process.pid}`;
  let admin: pg.Client;

  beforeAll(async () => {
    admin = await connectPostgres({ uri: url });
    await admin.query(`
      DROP TABLE IF EXISTS stream_items, stream_full;
      CREATE TABLE stream_items (id int8 PRIMARY KEY, title text, big text, tags text[]);
      CREATE TABLE stream_full (k text PRIMARY KEY, v int4);
      ALTER TABLE stream_full REPLICA IDENTITY FULL;
      DROP PUBLICATION IF EXISTS stream_pub;
      CREATE PUBLICATION stream_pub FOR TABLE stream_items, stream_full;
    `);
  });

  afterAll(async () => {
    // A walsender may still hold the slot for a moment after its connection closed.
    await admin.query(
      'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active',
      [slot],
    );
    for (let i = 0; i < 50; i++) {
      const { rows } = await admin.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [slot]);
      if (rows.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await admin.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [
      slot,
    ]);
    await admin.end();
  });

  it('decodes inserts, updates, deletes, truncates, messages and commits, and acknowledges positions', async () => {
    const replication = await PostgresReplicationConnection.connect(url);
    const { consistentPoint } = await replication.createSlot(slot);

    const bigValue = randomBytes(60_000).toString('base64'); // incompressible: stored out of line (TOAST)
    await admin.query('INSERT INTO stream_items VALUES (1, $1, $2, $3)', ['first', bigValue, ['a', 'b c']]);
    await admin.query("UPDATE stream_items SET title = 'renamed' WHERE id = 1"); // big unchanged: not resent
    await admin.query("INSERT INTO stream_full VALUES ('k1', 1)");
    await admin.query("UPDATE stream_full SET v = 2 WHERE k = 'k1'");
    await admin.query('DELETE FROM stream_items WHERE id = 1');
    await admin.query('TRUNCATE stream_full');
    const { rows } = await admin.query<{ lsn: string }>(
      "SELECT pg_logical_emit_message(true, 'bucketsync', 'marker')::text AS lsn",
    );
    expect(rows[0]?.lsn).toMatch(/\//);

    const types = new PostgresTypeDecoder({ edition: 1 });
    const decoder = new PostgresPgoutputDecoder(types);
    const messages: PgoutputMessage[] = [];
    const abort = new AbortController();
    let lastCommit = 0n;
    for await (const frames of replication.start({
      slot,
      publication: 'stream_pub',
      startLsn: consistentPoint,
      signal: abort.signal,
    })) {
      for (const frame of frames) {
        if (frame.kind !== 'data') continue;
        const message = decoder.decode(frame.message);
        if (message.tag === 'relation') {
          await loadPostgresTypes(admin, types, PostgresPgoutputDecoder.relationTypeOids(message.relation));
          decoder.refreshDecoders();
        }
        if (message.tag === 'commit') lastCommit = message.endLsn;
        messages.push(message);
      }
      if (messages.some((m) => m.tag === 'message' && m.content.toString() === 'marker')) {
        const commit = messages.findLast((m) => m.tag === 'commit');
        if (commit && messages.indexOf(commit) > messages.findIndex((m) => m.tag === 'message')) break;
      }
    }
    replication.sendStatus(lastCommit);

    const changes = messages.filter((m) => !['begin', 'commit', 'relation'].includes(m.tag));
    expect(changes.map((m) => m.tag)).toEqual([
      'insert',
      'update',
      'insert',
      'update',
      'delete',
      'truncate',
      'message',
    ]);
    const [insert, update, , fullUpdate, del, truncate] = changes;
    expect(insert).toMatchObject({ after: { row: { id: 1n, title: 'first', big: bigValue, tags: '["a","b c"]' } } });
    expect(update).toMatchObject({
      before: undefined,
      after: { row: { id: 1n, title: 'renamed', tags: '["a","b c"]' }, unchangedToast: ['big'] },
    });
    expect(fullUpdate).toMatchObject({ before: { row: { k: 'k1', v: 1n } }, after: { row: { k: 'k1', v: 2n } } });
    expect(del).toMatchObject({
      relation: { name: 'stream_items', replicaIdentity: 'd' },
      before: { row: { id: 1n } },
    });
    expect(truncate).toMatchObject({ relations: [{ schema: 'public', name: 'stream_full' }] });

    // The acknowledgement reaches the server: the slot's confirmed position moves forward.
    let confirmed = '';
    for (let i = 0; i < 100; i++) {
      const slotState = await admin.query<{ confirmed: string }>(
        'SELECT confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1',
        [slot],
      );
      confirmed = slotState.rows[0]!.confirmed;
      if (confirmed === lsnToText(lastCommit)) break;
      replication.sendStatus(lastCommit, true);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(confirmed).toBe(lsnToText(lastCommit));
    abort.abort();
    await replication.close();
  }, 30_000);
});
