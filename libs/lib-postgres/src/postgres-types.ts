/**
 * Reads `pg_type` for OIDs the built-in decoder table does not know (enums, domains, arrays
 * of custom types), following domains and array elements until every type is known.
 */
import type pg from 'pg';
import type { PostgresTypeDecoder, PostgresTypeInfo } from './postgres-type-decoder.js';

interface PgTypeRow {
  oid: number;
  typname: string;
  typtype: string;
  typcategory: string;
  typelem: number;
  typbasetype: number;
  typdelim: string;
}

/** Loads and registers every type `oids` depend on. One query per level of nesting. */
export async function loadPostgresTypes(
  client: pg.ClientBase,
  decoder: PostgresTypeDecoder,
  oids: Iterable<number>,
): Promise<void> {
  let pending = decoder.unknownOids(new Set(oids));
  for (let depth = 0; pending.length > 0 && depth < 10; depth++) {
    const { rows } = await client.query<PgTypeRow>(
      `SELECT t.oid::int AS oid, t.typname, t.typtype, t.typcategory, t.typelem::int AS typelem, t.typbasetype::int AS typbasetype,
              coalesce(e.typdelim, t.typdelim)::text AS typdelim
         FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem
        WHERE t.oid = ANY($1::oid[])`,
      [pending],
    );
    const infos: PostgresTypeInfo[] = rows.map((r) => ({
      oid: r.oid,
      name: r.typname,
      kind: r.typtype,
      category: r.typcategory,
      elementOid: r.typelem,
      baseOid: r.typbasetype,
      delimiter: r.typdelim,
    }));
    decoder.registerTypes(infos);
    const next = new Set<number>();
    for (const info of infos) {
      if (info.category === 'A' && info.elementOid) next.add(info.elementOid);
      if (info.baseOid) next.add(info.baseOid);
    }
    pending = decoder.unknownOids(next);
  }
}
