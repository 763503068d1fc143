/**
 * The lines of a sync stream, in wire shape (snake_case; op ids as base-10 strings;
 * checksums as signed 32-bit). The HTTP layer encodes each as one NDJSON line or one BSON
 * document. Shapes follow sync-protocol.md exactly: clients parse them.
 */

export interface WireBucketChecksum {
  bucket: string;
  checksum: number;
  count: number;
  priority: number;
  subscriptions?: ({ default: number } | { sub: number })[];
}

export interface WireStreamStatus {
  name: string;
  is_default: boolean;
  errors: { subscription: 'default' | number; message: string }[];
}

export interface WireOp {
  op_id: string;
  op: 'PUT' | 'REMOVE' | 'MOVE' | 'CLEAR';
  object_type?: string;
  object_id?: string;
  subkey?: string;
  checksum: number;
  data?: string | null;
}

export type SyncLine =
  | {
      checkpoint: {
        last_op_id: string;
        write_checkpoint?: string;
        buckets: WireBucketChecksum[];
        streams: WireStreamStatus[];
      };
    }
  | {
      checkpoint_diff: {
        last_op_id: string;
        write_checkpoint?: string;
        updated_buckets: WireBucketChecksum[];
        removed_buckets: string[];
      };
    }
  | { data: { bucket: string; after: string; next_after: string; has_more: boolean; data: WireOp[] } }
  | { partial_checkpoint_complete: { last_op_id: string; priority: number } }
  | { checkpoint_complete: { last_op_id: string } }
  | { token_expires_in: number };
