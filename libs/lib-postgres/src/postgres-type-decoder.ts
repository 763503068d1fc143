/**
 * Postgres text-format values -> sync values (docs/sync-config.md "Values and types").
 * Table-driven by type OID; a decoder is chosen once per column, so decoding a row is one
 * function call per value. Domains decode as their base type, enums as text, arrays as JSON.
 */
import { formatTimestamp, type SqliteValue } from '@bucketsync/sync-rules';
import { parseArrayLiteral, type ArrayLiteralElement } from './postgres-array-literal.js';

/** Decodes one value given in Postgres text format. */
export type ColumnDecoder = (text: string) => SqliteValue;

/** Renders one array element (text format) as a JSON fragment. */
type JsonElementRenderer = (text: string) => string;

/** What `pg_type` says about a type the built-in table does not know. */
export interface PostgresTypeInfo {
  oid: number;
  name: string;
  /** typtype: b base, c composite, d domain, e enum, m multirange, p pseudo, r range */
  kind: string;
  /** typcategory: `A` for arrays (other types may have a typelem too, e.g. point) */
  category: string;
  /** typelem of an array type (0 otherwise) */
  elementOid: number;
  /** typbasetype of a domain (0 otherwise) */
  baseOid: number;
  /** typdelim of the element type */
  delimiter: string;
}

/** Well-known type OIDs (pg_type.h); stable across Postgres versions. */
export const PgOid = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
} as const;

/** Array type OID -> element type OID for the built-in scalar types. */
const BUILTIN_ARRAYS: Record<number, number> = {
  1000: PgOid.bool,
  1001: PgOid.bytea,
  1002: PgOid.char,
  1003: PgOid.name,
  1005: PgOid.int2,
  1007: PgOid.int4,
  1009: PgOid.text,
  1014: PgOid.bpchar,
  1015: PgOid.varchar,
  1016: PgOid.int8,
  1021: PgOid.float4,
  1022: PgOid.float8,
  1028: PgOid.oid,
  1115: PgOid.timestamp,
  1182: PgOid.date,
  1183: PgOid.time,
  1185: PgOid.timestamptz,
  1187: PgOid.interval,
  1231: PgOid.numeric,
  1270: PgOid.timetz,
  199: PgOid.json,
  2951: PgOid.uuid,
  3807: PgOid.jsonb,
};

const decodeText: ColumnDecoder = (text) => text;
const decodeInteger: ColumnDecoder = (text) => BigInt(text);
const decodeReal: ColumnDecoder = (text) => {
  const value = Number(text); // accepts NaN, Infinity, -Infinity spelled as Postgres does
  return Number.isNaN(value) ? null : value; // SQLite stores NaN as NULL
};
const decodeBool: ColumnDecoder = (text) => (text === 't' ? 1n : 0n);

/** `\x0a0b` (hex output, the default since Postgres 9.0) -> bytes. */
export function decodeByteaHex(text: string): Uint8Array {
  if (!text.startsWith('\\x')) throw new Error('bytea value is not in hex format; set bytea_output = hex');
  return Uint8Array.from(Buffer.from(text.slice(2), 'hex'));
}

const NUMBER_TEXT = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;

const jsonString: JsonElementRenderer = (text) => JSON.stringify(text);
const jsonNumber: JsonElementRenderer = (text) => (NUMBER_TEXT.test(text) ? text : 'null');
const jsonNumeric: JsonElementRenderer = (text) => (NUMBER_TEXT.test(text) ? text : JSON.stringify(text));
const jsonBool: JsonElementRenderer = (text) => (text === 't' ? 'true' : 'false');
const jsonRaw: JsonElementRenderer = (text) => text;

export interface PostgresTypeDecoderOptions {
  /** Sync config edition: decides the timestamp format (1: space, 2: `T`). */
  edition: number;
}

/**
 * Chooses decoders by type OID. Types outside the built-in table (enums, domains, arrays of
 * them) must be registered from `pg_type` first (see loadPostgresTypes); an unregistered
 * unknown type decodes as text, which is right for enums and most extension types.
 */
export class PostgresTypeDecoder {
  private readonly types = new Map<number, PostgresTypeInfo>();
  private readonly cache = new Map<number, ColumnDecoder>();

  constructor(private readonly options: PostgresTypeDecoderOptions) {}

  /** OIDs among `oids` that need a `pg_type` lookup before decoding. */
  unknownOids(oids: Iterable<number>): number[] {
    const out: number[] = [];
    for (const oid of oids) if (!this.isBuiltin(oid) && !this.types.has(oid)) out.push(oid);
    return out;
  }

  registerTypes(infos: Iterable<PostgresTypeInfo>): void {
    for (const info of infos) this.types.set(info.oid, info);
    this.cache.clear();
  }

  /** The decoder for a column of type `oid` (cached). */
  decoder(oid: number): ColumnDecoder {
    let decoder = this.cache.get(oid);
    if (!decoder) {
      decoder = this.build(oid, 0);
      this.cache.set(oid, decoder);
    }
    return decoder;
  }

  private isBuiltin(oid: number): boolean {
    return oid in BUILTIN_ARRAYS || (Object.values(PgOid) as number[]).includes(oid);
  }

  private baseOf(oid: number, depth: number): number {
    const info = this.types.get(oid);
    if (info?.kind === 'd' && info.baseOid && depth < 10) return this.baseOf(info.baseOid, depth + 1);
    return oid;
  }

  private arrayElement(oid: number): { elementOid: number; delimiter: string } | undefined {
    const builtin = BUILTIN_ARRAYS[oid];
    if (builtin !== undefined) return { elementOid: builtin, delimiter: ',' };
    const info = this.types.get(oid);
    if (info?.category === 'A' && info.elementOid) return { elementOid: info.elementOid, delimiter: info.delimiter };
    return undefined;
  }

  private build(oid: number, depth: number): ColumnDecoder {
    const base = this.baseOf(oid, depth);
    const edition = this.options.edition;
    switch (base) {
      case PgOid.int2:
      case PgOid.int4:
      case PgOid.int8:
      case PgOid.oid:
        return decodeInteger;
      case PgOid.float4:
      case PgOid.float8:
        return decodeReal;
      case PgOid.bool:
        return decodeBool;
      case PgOid.bytea:
        return decodeByteaHex;
      case PgOid.timestamptz:
        return (text) => formatTimestamp(text, edition);
      case PgOid.timestamp:
        // No zone in the source: keep it zone-less, only the separator follows the edition.
        return edition >= 2 ? (text) => text.replace(' ', 'T') : decodeText;
      default:
        break;
    }
    const array = this.arrayElement(base);
    if (array) {
      const render = this.jsonRenderer(array.elementOid);
      return (text) => renderArray(parseArrayLiteral(text, array.delimiter), render);
    }
    // text, varchar, bpchar, name, uuid, numeric (exact text), json/jsonb (text unchanged),
    // date, time, interval, enums, and unknown extension types.
    return decodeText;
  }

  private jsonRenderer(elementOid: number): JsonElementRenderer {
    const base = this.baseOf(elementOid, 0);
    const edition = this.options.edition;
    switch (base) {
      case PgOid.int2:
      case PgOid.int4:
      case PgOid.int8:
      case PgOid.oid:
      case PgOid.float4:
      case PgOid.float8:
        return jsonNumber;
      case PgOid.numeric:
        return jsonNumeric;
      case PgOid.bool:
        return jsonBool;
      case PgOid.json:
      case PgOid.jsonb:
        return jsonRaw;
      case PgOid.timestamptz:
        return (text) => JSON.stringify(formatTimestamp(text, edition));
      case PgOid.timestamp:
        return edition >= 2 ? (text) => JSON.stringify(text.replace(' ', 'T')) : jsonString;
      default:
        return jsonString;
    }
  }
}

function renderArray(elements: ArrayLiteralElement[], render: JsonElementRenderer): string {
  let out = '[';
  for (let i = 0; i < elements.length; i++) {
    if (i > 0) out += ',';
    const element = elements[i]!;
    out += element === null ? 'null' : Array.isArray(element) ? renderArray(element, render) : render(element);
  }
  return `${out}]`;
}
