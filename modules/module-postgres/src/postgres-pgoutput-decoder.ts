/**
 * Decodes pgoutput (protocol version 1) messages from logical replication into change
 * events. Relation messages are cached per relation id; tuple columns go straight from the
 * wire bytes through per-column decoders to sync values, in one pass.
 */
import type { SqliteRow } from '@bucketsync/sync-rules';
import type { ColumnDecoder, PostgresTypeDecoder } from '@bucketsync/lib-postgres';

/** A relation (table) as the stream describes it. */
export interface PgoutputRelation {
  relationId: number;
  schema: string;
  name: string;
  /** d default (primary key), n nothing, f full, i index */
  replicaIdentity: 'd' | 'n' | 'f' | 'i';
  columns: { name: string; typeOid: number; typeMod: number; isKey: boolean }[];
}

/** A decoded tuple: the row, plus the names of columns sent as "unchanged TOAST" (value not sent). */
export interface PgoutputTuple {
  row: SqliteRow;
  unchangedToast: string[] | undefined;
}

export type PgoutputMessage =
  | { tag: 'begin'; finalLsn: bigint; xid: number }
  | { tag: 'commit'; commitLsn: bigint; endLsn: bigint }
  | { tag: 'relation'; relation: PgoutputRelation }
  | { tag: 'insert'; relation: PgoutputRelation; after: PgoutputTuple }
  | { tag: 'update'; relation: PgoutputRelation; before: PgoutputTuple | undefined; after: PgoutputTuple }
  | { tag: 'delete'; relation: PgoutputRelation; before: PgoutputTuple }
  | { tag: 'truncate'; relations: PgoutputRelation[]; cascade: boolean; restartIdentity: boolean }
  | { tag: 'message'; lsn: bigint; transactional: boolean; prefix: string; content: Buffer }
  | { tag: 'type'; oid: number; schema: string; name: string }
  | { tag: 'origin'; lsn: bigint; name: string };

export class PgoutputProtocolError extends Error {
  constructor(message: string) {
    super(`pgoutput: ${message}`);
    this.name = 'PgoutputProtocolError';
  }
}

interface RelationState {
  relation: PgoutputRelation;
  decoders: ColumnDecoder[];
}

export class PostgresPgoutputDecoder {
  private readonly relations = new Map<number, RelationState>();
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;

  constructor(private readonly types: PostgresTypeDecoder) {}

  /** Type OIDs used by a relation message, to load unknown ones before its rows decode. */
  static relationTypeOids(relation: PgoutputRelation): number[] {
    return relation.columns.map((c) => c.typeOid);
  }

  /** The relation last described for this id. */
  relation(relationId: number): PgoutputRelation | undefined {
    return this.relations.get(relationId)?.relation;
  }

  /** Rebuilds column decoders (after new types were registered with the type decoder). */
  refreshDecoders(): void {
    for (const state of this.relations.values()) {
      state.decoders = state.relation.columns.map((c) => this.types.decoder(c.typeOid));
    }
  }

  /** Decodes one pgoutput message (the payload of an XLogData frame). */
  decode(message: Buffer): PgoutputMessage {
    this.buf = message;
    this.pos = 1;
    const tag = String.fromCharCode(message[0]!);
    switch (tag) {
      case 'B': {
        const finalLsn = this.u64();
        this.pos += 8; // commit timestamp
        return { tag: 'begin', finalLsn, xid: this.u32() };
      }
      case 'C': {
        this.pos += 1; // flags
        const commitLsn = this.u64();
        const endLsn = this.u64();
        return { tag: 'commit', commitLsn, endLsn };
      }
      case 'R':
        return { tag: 'relation', relation: this.readRelation() };
      case 'I': {
        const state = this.relationState(this.u32());
        this.expect('N');
        return { tag: 'insert', relation: state.relation, after: this.readTuple(state) };
      }
      case 'U': {
        const state = this.relationState(this.u32());
        let before: PgoutputTuple | undefined;
        let kind = String.fromCharCode(this.u8());
        if (kind === 'K' || kind === 'O') {
          before = this.readTuple(state);
          kind = String.fromCharCode(this.u8());
        }
        if (kind !== 'N') throw new PgoutputProtocolError(`update without new tuple (got "${kind}")`);
        return { tag: 'update', relation: state.relation, before, after: this.readTuple(state) };
      }
      case 'D': {
        const state = this.relationState(this.u32());
        const kind = String.fromCharCode(this.u8());
        if (kind !== 'K' && kind !== 'O') throw new PgoutputProtocolError(`delete without old tuple (got "${kind}")`);
        return { tag: 'delete', relation: state.relation, before: this.readTuple(state) };
      }
      case 'T': {
        const count = this.i32();
        const options = this.u8();
        const relations: PgoutputRelation[] = [];
        for (let i = 0; i < count; i++) relations.push(this.relationState(this.u32()).relation);
        return { tag: 'truncate', relations, cascade: (options & 1) !== 0, restartIdentity: (options & 2) !== 0 };
      }
      case 'M': {
        const transactional = this.u8() === 1;
        const lsn = this.u64();
        const prefix = this.cstring();
        const length = this.i32();
        const content = this.buf.subarray(this.pos, this.pos + length);
        this.pos += length;
        return { tag: 'message', lsn, transactional, prefix, content };
      }
      case 'Y': {
        const oid = this.u32();
        return { tag: 'type', oid, schema: this.cstring(), name: this.cstring() };
      }
      case 'O': {
        const lsn = this.u64();
        return { tag: 'origin', lsn, name: this.cstring() };
      }
      default:
        throw new PgoutputProtocolError(`unknown message tag "${tag}" (0x${message[0]?.toString(16)})`);
    }
  }

  private readRelation(): PgoutputRelation {
    const relationId = this.u32();
    const schema = this.cstring();
    const name = this.cstring();
    const replicaIdentity = String.fromCharCode(this.u8()) as PgoutputRelation['replicaIdentity'];
    const count = this.i16();
    const columns: PgoutputRelation['columns'] = [];
    for (let i = 0; i < count; i++) {
      const flags = this.u8();
      const columnName = this.cstring();
      const typeOid = this.u32();
      const typeMod = this.i32();
      columns.push({ name: columnName, typeOid, typeMod, isKey: (flags & 1) !== 0 });
    }
    const relation: PgoutputRelation = { relationId, schema, name, replicaIdentity, columns };
    this.relations.set(relationId, { relation, decoders: columns.map((c) => this.types.decoder(c.typeOid)) });
    return relation;
  }

  private relationState(relationId: number): RelationState {
    const state = this.relations.get(relationId);
    if (!state) throw new PgoutputProtocolError(`row for relation ${relationId} before its relation message`);
    return state;
  }

  private readTuple(state: RelationState): PgoutputTuple {
    const count = this.i16();
    const columns = state.relation.columns;
    const row: SqliteRow = {};
    let unchangedToast: string[] | undefined;
    for (let i = 0; i < count; i++) {
      const kind = this.buf[this.pos++];
      const column = columns[i];
      if (!column) throw new PgoutputProtocolError(`tuple has more columns than relation ${state.relation.name}`);
      if (kind === 0x6e /* n */) {
        row[column.name] = null;
      } else if (kind === 0x75 /* u */) {
        (unchangedToast ??= []).push(column.name);
      } else if (kind === 0x74 /* t */) {
        const length = this.i32();
        const text = this.buf.toString('utf8', this.pos, this.pos + length);
        this.pos += length;
        row[column.name] = state.decoders[i]!(text);
      } else {
        throw new PgoutputProtocolError(`unsupported tuple column kind 0x${kind?.toString(16)} (binary mode is off)`);
      }
    }
    return { row, unchangedToast };
  }

  private expect(tag: string): void {
    const got = String.fromCharCode(this.u8());
    if (got !== tag) throw new PgoutputProtocolError(`expected "${tag}", got "${got}"`);
  }

  private u8(): number {
    return this.buf[this.pos++]!;
  }
  private i16(): number {
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  private i32(): number {
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  private u32(): number {
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  private u64(): bigint {
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  private cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new PgoutputProtocolError('unterminated string');
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
}
