/**
 * The random workload: the source schema, the sync config that partitions it, and a generator
 * of random transactions. Everything is drawn from a seeded `Random`, and rows are chosen by
 * their rank in key order, so the same seed applied to the same starting state writes the same
 * rows. The oracle never replays this log: expected rows are read from the source itself.
 */
import type pg from 'pg';
import type { Random } from './random.js';

export const USERS = ['u0', 'u1', 'u2', 'u3'] as const;
export const GROUPS = ['g0', 'g1', 'g2', 'g3', 'g4'] as const;
export const TAGS = ['t0', 't1', 't2', 't3', 't4', 't5'] as const;
const PAIR_B = ['x', 'y', 'z', 'w'] as const;

/**
 * Tables and the keys they exercise: settings (text key, global bucket), memberships
 * (composite key, parameter query only), docs (uuid key, large TOASTed bodies), events (bigint
 * key, REPLICA IDENTITY FULL), pairs (composite key, a stream with a subscription parameter),
 * notes (bigint key; created while running).
 */
export const SCHEMA_SQL = `
  CREATE TABLE settings (key text PRIMARY KEY, value text);
  CREATE TABLE memberships (user_id text NOT NULL, group_id text NOT NULL, PRIMARY KEY (user_id, group_id));
  CREATE TABLE docs (id uuid PRIMARY KEY, group_id text NOT NULL, title text, body text, version int NOT NULL DEFAULT 0);
  CREATE TABLE events (id bigint PRIMARY KEY, group_id text NOT NULL, kind text, amount bigint);
  ALTER TABLE events REPLICA IDENTITY FULL;
  CREATE TABLE pairs (a int NOT NULL, b text NOT NULL, tag text NOT NULL, val text, PRIMARY KEY (a, b));
  CREATE PUBLICATION oracle FOR TABLES IN SCHEMA public;
`;

export const NOTES_SQL = 'CREATE TABLE IF NOT EXISTS notes (id bigint PRIMARY KEY, group_id text NOT NULL, note text)';

export const SYNC_CONFIG = `
bucket_definitions:
  global:
    data:
      - SELECT key AS id, value FROM settings
  by_group:
    parameters: SELECT group_id FROM memberships WHERE user_id = request.user_id()
    data:
      - SELECT * FROM docs WHERE group_id = bucket.group_id
      - SELECT * FROM events WHERE group_id = bucket.group_id
      - SELECT * FROM notes WHERE group_id = bucket.group_id
streams:
  tagged:
    query: SELECT a || '/' || b AS id, a, b, tag, val FROM pairs WHERE tag = subscription.parameter('tag')
`;

/** A text of `hexChunks` x 32 incompressible characters: over 2 kB, it is TOASTed out of line. */
const LARGE_TEXT = (tag: string, hexChunks = 100) =>
  `(SELECT string_agg(md5(${tag} || ':' || i), '') FROM generate_series(1, ${hexChunks}) i)`;

export interface Statement {
  sql: string;
  params: unknown[];
}

export interface Transaction {
  label: string;
  statements: Statement[];
  rollback: boolean;
}

/** What the generator believes about the schema; re-read from the source after any failure. */
export interface SchemaState {
  hasNotes: boolean;
  hasExtra: boolean;
}

/** Rows of `table` chosen by rank in key order: `count` rows starting at fraction `at` of the table. */
function ranked(table: string, key: string, at: number, count: number): string {
  return `SELECT ${key} FROM ${table} ORDER BY ${key} OFFSET (SELECT floor(${at.toFixed(6)} * count(*))::int FROM ${table}) LIMIT ${count}`;
}

export class WorkloadGenerator {
  private counter = 0;
  private nextEventId: number;
  private nextNoteId = 1;

  constructor(
    private readonly rng: Random,
    readonly schema: SchemaState,
    options: { firstEventId: number },
  ) {
    this.nextEventId = options.firstEventId;
  }

  /** A unique, seed-derived text used to make generated content distinct. */
  private tag(): string {
    return `'${this.rng.seed}-${++this.counter}'`;
  }

  transaction(): Transaction {
    const statements: Statement[] = [];
    const labels: string[] = [];
    const n = this.rng.chance(0.6) ? 1 : this.rng.int(2, 4);
    for (let i = 0; i < n; i++) {
      const op = this.operation();
      labels.push(op.label);
      statements.push(...op.statements);
    }
    return { label: labels.join('; '), statements, rollback: this.rng.chance(0.08) };
  }

  /** A bulk insert of `rows` docs into one group: a burst for faults to land in. */
  burst(rows: number): Transaction {
    const group = this.rng.pick(GROUPS);
    const tag = this.tag();
    return {
      label: `burst: insert ${rows} docs into ${group}`,
      statements: [
        {
          sql: `INSERT INTO docs (id, group_id, title, body) SELECT md5(${tag} || ':' || n)::uuid, $1, 'burst ' || n,
                  CASE WHEN n % 10 = 0 THEN ${LARGE_TEXT(`${tag} || ':' || n`)} ELSE 'small ' || n END
                FROM generate_series(1, ${rows}) n`,
          params: [group],
        },
      ],
      rollback: false,
    };
  }

  private operation(): { label: string; statements: Statement[] } {
    const r = this.rng;
    const kinds = {
      docInsert: 14,
      docBulk: 2,
      docTitle: 10,
      docMove: 8,
      docBody: 4,
      docDelete: 6,
      eventInsert: 8,
      eventUpdate: 6,
      eventMove: 4,
      eventDelete: 4,
      settingUpsert: 4,
      settingDelete: 2,
      pairInsert: 6,
      pairRetag: 5,
      pairVal: 3,
      pairDelete: 3,
      memberAdd: 4,
      memberRemove: 4,
      // Rare: each truncate empties a table, each column change copies docs again.
      truncate: 0.3,
      createNotes: this.schema.hasNotes ? 0 : 0.5,
      noteChange: this.schema.hasNotes ? 5 : 0,
      toggleExtra: 0.1,
      extraUpdate: this.schema.hasExtra ? 3 : 0,
    };
    const kind = r.weighted(kinds);
    const at = r.next();
    const group = r.pick(GROUPS);
    const one = (label: string, sql: string, params: unknown[] = []) => ({ label, statements: [{ sql, params }] });
    switch (kind) {
      case 'docInsert': {
        const rows = r.int(1, 10);
        const values: string[] = [];
        const params: unknown[] = [];
        for (let i = 0; i < rows; i++) {
          const large = r.chance(0.15);
          params.push(r.uuid(), r.pick(GROUPS), `title ${r.hex(6)}`);
          const p = params.length;
          values.push(`($${p - 2}, $${p - 1}, $${p}, ${large ? LARGE_TEXT(this.tag()) : `'small ${r.hex(8)}'`})`);
        }
        return one(
          `insert ${rows} docs`,
          `INSERT INTO docs (id, group_id, title, body) VALUES ${values.join(', ')}`,
          params,
        );
      }
      case 'docBulk':
        return this.burst(r.int(200, 2000));
      case 'docTitle': {
        const rows = r.int(1, 20);
        // Leaves a large body unchanged: the source sends it as an unchanged TOAST value.
        return one(
          `retitle ${rows} docs`,
          `UPDATE docs SET title = $1, version = version + 1 WHERE id IN (${ranked('docs', 'id', at, rows)})`,
          [`retitled ${r.hex(6)}`],
        );
      }
      case 'docMove': {
        const rows = r.int(1, 10);
        return one(
          `move ${rows} docs to ${group}`,
          `UPDATE docs SET group_id = $1, version = version + 1 WHERE id IN (${ranked('docs', 'id', at, rows)})`,
          [group],
        );
      }
      case 'docBody': {
        const large = r.chance(0.5);
        return one(
          `rewrite body of a doc (${large ? 'large' : 'small'})`,
          `UPDATE docs SET body = ${large ? LARGE_TEXT(this.tag(), r.int(70, 140)) : `'small ${r.hex(8)}'`} WHERE id IN (${ranked('docs', 'id', at, 1)})`,
        );
      }
      case 'docDelete': {
        const rows = r.int(1, 8);
        return one(`delete ${rows} docs`, `DELETE FROM docs WHERE id IN (${ranked('docs', 'id', at, rows)})`);
      }
      case 'eventInsert': {
        const rows = r.int(1, 30);
        const first = this.nextEventId;
        this.nextEventId += rows;
        return one(
          `insert ${rows} events`,
          `INSERT INTO events (id, group_id, kind, amount) SELECT n, $1, 'k' || (n % 5), n % 1000 FROM generate_series($2::bigint, $3::bigint) n`,
          [group, first, first + rows - 1],
        );
      }
      case 'eventUpdate': {
        const rows = r.int(1, 20);
        return one(
          `update ${rows} events`,
          `UPDATE events SET amount = amount + $1, kind = $2 WHERE id IN (${ranked('events', 'id', at, rows)})`,
          [r.int(1, 100), `k${r.int(0, 9)}`],
        );
      }
      case 'eventMove': {
        const rows = r.int(1, 10);
        return one(
          `move ${rows} events to ${group}`,
          `UPDATE events SET group_id = $1 WHERE id IN (${ranked('events', 'id', at, rows)})`,
          [group],
        );
      }
      case 'eventDelete': {
        const rows = r.int(1, 10);
        return one(`delete ${rows} events`, `DELETE FROM events WHERE id IN (${ranked('events', 'id', at, rows)})`);
      }
      case 'settingUpsert': {
        const key = `s${r.int(0, 40)}`;
        return one(
          `upsert setting ${key}`,
          'INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
          [key, `v ${r.hex(6)}`],
        );
      }
      case 'settingDelete':
        return one(
          'delete a setting',
          `DELETE FROM settings WHERE key IN (${ranked("settings WHERE key LIKE 's%'", 'key', at, 1)})`,
        );
      case 'pairInsert': {
        const rows = r.int(1, 6);
        const statements: Statement[] = [];
        for (let i = 0; i < rows; i++) {
          statements.push({
            sql: 'INSERT INTO pairs (a, b, tag, val) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
            params: [r.int(0, 99), r.pick(PAIR_B), r.pick(TAGS), `val ${r.hex(4)}`],
          });
        }
        return { label: `insert ${rows} pairs`, statements };
      }
      case 'pairRetag': {
        const rows = r.int(1, 6);
        return one(
          `retag ${rows} pairs`,
          `UPDATE pairs SET tag = $1 WHERE (a, b) IN (${ranked('pairs', 'a, b', at, rows)})`,
          [r.pick(TAGS)],
        );
      }
      case 'pairVal':
        return one('update a pair', `UPDATE pairs SET val = $1 WHERE (a, b) IN (${ranked('pairs', 'a, b', at, 1)})`, [
          `val ${r.hex(4)}`,
        ]);
      case 'pairDelete': {
        const rows = r.int(1, 4);
        return one(`delete ${rows} pairs`, `DELETE FROM pairs WHERE (a, b) IN (${ranked('pairs', 'a, b', at, rows)})`);
      }
      case 'memberAdd': {
        const user = r.pick(USERS);
        return one(
          `add ${user} to ${group}`,
          'INSERT INTO memberships (user_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING',
          [user, group],
        );
      }
      case 'memberRemove':
        return one(
          'remove a membership',
          `DELETE FROM memberships WHERE (user_id, group_id) IN (${ranked('memberships', 'user_id, group_id', at, 1)})`,
        );
      case 'truncate': {
        const table = r.pick(['docs', 'events', 'pairs', 'settings', 'memberships']);
        return one(`truncate ${table}`, `TRUNCATE ${table}`);
      }
      case 'createNotes':
        this.schema.hasNotes = true;
        return one('create table notes', NOTES_SQL);
      case 'noteChange': {
        const what = r.pick(['insert', 'insert', 'update', 'delete'] as const);
        if (what === 'insert') {
          const rows = r.int(1, 10);
          const first = this.nextNoteId;
          this.nextNoteId += rows;
          return one(
            `insert ${rows} notes`,
            `INSERT INTO notes (id, group_id, note) SELECT n, $1, 'note ' || n FROM generate_series($2::bigint, $3::bigint) n ON CONFLICT DO NOTHING`,
            [group, first, first + rows - 1],
          );
        }
        if (what === 'update') {
          return one(
            'update notes',
            `UPDATE notes SET note = $1, group_id = $2 WHERE id IN (${ranked('notes', 'id', at, 3)})`,
            [`edited ${r.hex(4)}`, group],
          );
        }
        return one('delete notes', `DELETE FROM notes WHERE id IN (${ranked('notes', 'id', at, 2)})`);
      }
      case 'toggleExtra':
        this.schema.hasExtra = !this.schema.hasExtra;
        return this.schema.hasExtra
          ? one('add column docs.extra', 'ALTER TABLE docs ADD COLUMN IF NOT EXISTS extra text')
          : one('drop column docs.extra', 'ALTER TABLE docs DROP COLUMN IF EXISTS extra');
      case 'extraUpdate':
        return one('set docs.extra', `UPDATE docs SET extra = $1 WHERE id IN (${ranked('docs', 'id', at, 5)})`, [
          `extra ${r.hex(4)}`,
        ]);
    }
  }
}

/** Creates the schema and the initial rows (a snapshot large enough for a kill to land in it). */
export async function createSourceData(
  client: pg.Client,
  rng: Random,
  size: { docs: number; events: number },
): Promise<{ firstEventId: number }> {
  await client.query(SCHEMA_SQL);
  const tag = `'${rng.seed}-initial'`;
  await client.query(
    `INSERT INTO docs (id, group_id, title, body, version)
       SELECT md5(${tag} || ':' || n)::uuid, 'g' || (n % ${GROUPS.length}), 'doc ' || n,
              CASE WHEN n % 10 = 0 THEN ${LARGE_TEXT(`${tag} || ':' || n`)} ELSE 'small ' || n END, 0
       FROM generate_series(1, ${size.docs}) n`,
  );
  await client.query(
    `INSERT INTO events (id, group_id, kind, amount)
       SELECT n, 'g' || (n % ${GROUPS.length}), 'k' || (n % 5), n % 1000 FROM generate_series(1, ${size.events}) n`,
  );
  await client.query(`INSERT INTO settings SELECT 's' || n, 'initial ' || n FROM generate_series(0, 19) n`);
  const pairs: string[] = [];
  for (let i = 0; i < 200; i++) {
    pairs.push(`(${rng.int(0, 99)}, '${rng.pick(PAIR_B)}', '${rng.pick(TAGS)}', 'v${i}')`);
  }
  await client.query(`INSERT INTO pairs VALUES ${pairs.join(', ')} ON CONFLICT DO NOTHING`);
  for (const user of USERS) {
    for (const group of GROUPS) {
      if (rng.chance(0.4)) await client.query('INSERT INTO memberships VALUES ($1, $2)', [user, group]);
    }
  }
  return { firstEventId: size.events + 1 };
}

/** Reads the schema facts the generator needs (after a failure left them uncertain). */
export async function readSchemaState(client: pg.Client): Promise<SchemaState> {
  const { rows } = await client.query<{ notes: boolean; extra: boolean }>(
    `SELECT to_regclass('public.notes') IS NOT NULL AS notes,
            EXISTS (SELECT 1 FROM information_schema.columns
                    WHERE table_schema = 'public' AND table_name = 'docs' AND column_name = 'extra') AS extra`,
  );
  return { hasNotes: rows[0]!.notes, hasExtra: rows[0]!.extra };
}
