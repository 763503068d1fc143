import { describe, expect, it } from 'vitest';
import { SyncClientState, SyncProtocolError, addChecksum } from '../src/sync-client-state.js';

interface Op {
  op_id: string;
  op: 'PUT' | 'REMOVE' | 'MOVE' | 'CLEAR';
  checksum: number;
  object_type?: string;
  object_id?: string;
  subkey?: string;
  data?: string;
}

const put = (op_id: string, object_type: string, object_id: string, checksum: number, row: object): Op => ({
  op_id,
  op: 'PUT',
  object_type,
  object_id,
  checksum,
  data: JSON.stringify(row),
});
const remove = (op_id: string, object_type: string, object_id: string, checksum: number): Op => ({
  op_id,
  op: 'REMOVE',
  object_type,
  object_id,
  checksum,
});

function checkpoint(
  lastOpId: string,
  buckets: { bucket: string; checksum: number; count?: number; priority?: number }[],
) {
  return { checkpoint: { last_op_id: lastOpId, buckets: buckets.map((b) => ({ count: 0, ...b })) } };
}
const data = (bucket: string, ops: object[]) => ({ data: { bucket, after: '0', has_more: false, data: ops } });
const complete = (lastOpId: string) => ({ checkpoint_complete: { last_op_id: lastOpId } });

describe('SyncClientState', () => {
  describe('checksums', () => {
    it('adds op checksums modulo 2^32 and keeps them as signed 32-bit integers', () => {
      expect(addChecksum(0x7fffffff, 1)).toBe(-0x80000000);
      expect(addChecksum(-1, 1)).toBe(0);
      expect(addChecksum(0, 0xffffffff)).toBe(-1);
      expect(addChecksum(-0x80000000, -1)).toBe(0x7fffffff);
    });

    it('verifies a bucket whose op checksums wrap past 2^31', () => {
      const state = new SyncClientState();
      // 2147483647 + 10 + 5 = 2147483662, which is -2147483634 as a signed 32-bit integer.
      state.apply(checkpoint('3', [{ bucket: 'b', checksum: -2147483634, count: 3 }]));
      state.apply(
        data('b', [put('1', 't', 'a', 2147483647, {}), put('2', 't', 'b', 10, {}), put('3', 't', 'a', 5, {})]),
      );
      const event = state.apply(complete('3'));
      expect(event).toEqual({ kind: 'checkpoint_complete', lastOpId: '3', mismatches: [] });
    });

    it('accepts negative op checksums and an unsigned checkpoint checksum for the same value', () => {
      const state = new SyncClientState();
      // -5 + -7 = -12, sent by the server in its unsigned form 2^32 - 12.
      state.apply(checkpoint('2', [{ bucket: 'b', checksum: 4294967284 }]));
      state.apply(data('b', [put('1', 't', 'a', -5, {}), put('2', 't', 'b', 4294967289, {})]));
      expect(state.apply(complete('2'))).toMatchObject({ mismatches: [] });
      expect(state.snapshot().buckets[0]).toMatchObject({ checksum: -12, computedChecksum: -12, verified: true });
    });

    it('reports a checksum mismatch naming the bucket, the expected and the computed sum', () => {
      const state = new SyncClientState();
      state.apply(
        checkpoint('2', [
          { bucket: 'good', checksum: 1 },
          { bucket: 'todos["u1"]', checksum: 99 },
        ]),
      );
      state.apply(data('good', [put('1', 't', 'a', 1, {})]));
      state.apply(data('todos["u1"]', [put('2', 'todos', 't1', 98, {})]));
      expect(state.apply(complete('2'))).toEqual({
        kind: 'checkpoint_complete',
        lastOpId: '2',
        mismatches: [{ bucket: 'todos["u1"]', expected: 99, actual: 98, opsReceived: 1 }],
      });
      expect(state.snapshot().buckets.find((b) => b.bucket === 'todos["u1"]')?.verified).toBe(false);
    });

    it('takes int64 checksums and op ids from BSON as bigint', () => {
      const state = new SyncClientState();
      state.apply({ checkpoint: { last_op_id: 5n, buckets: [{ bucket: 'b', checksum: -1n, count: 1n }] } });
      state.apply({ data: { bucket: 'b', data: [{ op_id: 5n, op: 'MOVE', checksum: 0xffffffffn }] } });
      expect(state.apply({ checkpoint_complete: { last_op_id: '5' } })).toMatchObject({ mismatches: [] });
    });
  });

  describe('ops', () => {
    it('applies PUT, REMOVE, MOVE and CLEAR to the bucket rows and checksum', () => {
      const state = new SyncClientState();
      // CLEAR resets the bucket to its own checksum (70), then 1 + 2 + 3 follow: 76.
      state.apply(checkpoint('9', [{ bucket: 'b', checksum: 76, count: 5 }]));
      state.apply(
        data('b', [
          put('1', 'todos', 't1', 11, { title: 'old' }),
          put('2', 'todos', 't2', 12, { title: 'gone' }),
          { op_id: '3', op: 'CLEAR', checksum: 70 },
          put('4', 'todos', 't3', 1, { title: 'kept' }),
          put('5', 'todos', 't4', 2, { title: 'x' }),
          remove('6', 'todos', 't4', 3),
        ]),
      );
      state.apply(data('b', [{ op_id: '7', op: 'MOVE', checksum: 0 }, put('9', 'lists', 'l1', 0, { name: 'L' })]));
      expect(state.apply(complete('9'))).toMatchObject({ mismatches: [] });
      const snapshot = state.snapshot();
      expect(snapshot.tables).toEqual({ lists: { l1: { name: 'L' } }, todos: { t3: { title: 'kept' } } });
      expect(snapshot.rowCounts).toEqual({ lists: 1, todos: 1 });
      expect(snapshot.buckets[0]).toMatchObject({ opsReceived: 8, lastOpId: '9' });
    });

    it('replaces a row on a second PUT and keeps a row another bucket still holds', () => {
      const state = new SyncClientState();
      state.apply(
        checkpoint('4', [
          { bucket: 'a', checksum: 3 },
          { bucket: 'b', checksum: 7 },
        ]),
      );
      state.apply(data('a', [put('1', 'todos', 't1', 1, { v: 1 }), put('2', 'todos', 't1', 2, { v: 2 })]));
      state.apply(data('b', [put('3', 'todos', 't1', 3, { v: 3 }), remove('4', 'todos', 't1', 4)]));
      expect(state.apply(complete('4'))).toMatchObject({ mismatches: [] });
      expect(state.snapshot().tables).toEqual({ todos: { t1: { v: 2 } } });
    });

    it('lets the op with the highest 64-bit op id win across buckets', () => {
      const state = new SyncClientState();
      state.apply(
        checkpoint('18446744073709551615', [
          { bucket: 'a', checksum: 0 },
          { bucket: 'b', checksum: 0 },
        ]),
      );
      // As numbers these two ids are equal (2^53 + 1 rounds to 2^53); as bigint the first is larger.
      state.apply(data('a', [put('9007199254740993', 'todos', 't1', 0, { from: 'a' })]));
      state.apply(data('b', [put('9007199254740992', 'todos', 't1', 0, { from: 'b' })]));
      state.apply(data('b', [put('18446744073709551615', 'lists', 'l1', 0, {})]));
      expect(state.snapshot().tables.todos).toEqual({ t1: { from: 'a' } });
      expect(state.snapshot().buckets.find((b) => b.bucket === 'b')?.lastOpId).toBe('18446744073709551615');
    });

    it('keeps rows with different subkeys of one object apart within a bucket', () => {
      const state = new SyncClientState();
      state.apply(checkpoint('3', [{ bucket: 'b', checksum: 0 }]));
      state.apply(
        data('b', [
          { ...put('1', 'todos', 't1', 0, { v: 1 }), subkey: 's1' },
          { ...put('2', 'todos', 't1', 0, { v: 2 }), subkey: 's2' },
          { ...remove('3', 'todos', 't1', 0), subkey: 's2' },
        ]),
      );
      expect(state.snapshot().tables).toEqual({ todos: { t1: { v: 1 } } });
    });
  });

  describe('checkpoints', () => {
    it('applies a checkpoint_diff: removed buckets lose their rows, updated buckets take new checksums', () => {
      const state = new SyncClientState();
      state.apply({
        checkpoint: {
          last_op_id: '2',
          write_checkpoint: '5',
          buckets: [
            { bucket: 'keep', checksum: 1, count: 1, priority: 3 },
            { bucket: 'drop', checksum: 2, count: 1, priority: 3 },
          ],
        },
      });
      state.apply(data('keep', [put('1', 'todos', 't1', 1, {})]));
      state.apply(data('drop', [put('2', 'todos', 't2', 2, {})]));
      state.apply(complete('2'));

      const diff = state.apply({
        checkpoint_diff: {
          last_op_id: '4',
          updated_buckets: [
            { bucket: 'keep', checksum: 4, count: 2, priority: 3 },
            { bucket: 'new', checksum: 9, count: 1, priority: 1 },
          ],
          removed_buckets: ['drop'],
        },
      });
      expect(diff).toEqual({ kind: 'checkpoint_diff', lastOpId: '4', removedBuckets: ['drop'] });
      expect(state.snapshot()).toMatchObject({ complete: false, writeCheckpoint: null, rowCounts: { todos: 1 } });
      state.apply(data('keep', [put('3', 'todos', 't3', 3, {})]));
      state.apply(data('new', [put('4', 'lists', 'l1', 9, {})]));
      expect(state.apply(complete('4'))).toMatchObject({ mismatches: [] });
      const snapshot = state.snapshot();
      expect(snapshot.buckets.map((b) => b.bucket)).toEqual(['new', 'keep']);
      expect(snapshot.rowCounts).toEqual({ lists: 1, todos: 2 });
      expect(snapshot.tables.todos).not.toHaveProperty('t2');
      expect(snapshot.checkpointsReceived).toBe(2);
      expect(snapshot.abandonedCheckpoints).toBe(0);
    });

    it('restarts on a new checkpoint before completion: drops unlisted buckets, keeps the rest, completes the new one', () => {
      const state = new SyncClientState();
      state.apply(
        checkpoint('5', [
          { bucket: 'a', checksum: 3, count: 2 },
          { bucket: 'gone', checksum: 1, count: 1 },
        ]),
      );
      state.apply(data('a', [put('1', 't', 'r1', 1, {})]));
      state.apply(data('gone', [put('2', 't', 'r2', 1, {})]));
      expect(state.progress()).toEqual({ received: 2, total: 3 });

      const restart = state.apply(
        checkpoint('8', [
          { bucket: 'a', checksum: 10, count: 3 },
          { bucket: 'c', checksum: 5, count: 1 },
        ]),
      );
      expect(restart).toEqual({ kind: 'checkpoint', lastOpId: '8', abandoned: true });
      expect(state.progress()).toEqual({ received: 1, total: 4 });
      // The old checkpoint can no longer complete.
      expect(() => state.apply(complete('5'))).toThrow(/checkpoint_complete.last_op_id is 5 .* last_op_id is 8/);
      state.apply(data('a', [put('6', 't', 'r3', 2, {}), put('7', 't', 'r4', 7, {})]));
      state.apply(data('c', [put('8', 't', 'r5', 5, {})]));
      expect(state.progress()).toEqual({ received: 4, total: 4 });
      expect(state.apply(complete('8'))).toMatchObject({ mismatches: [] });
      expect(state.snapshot()).toMatchObject({
        complete: true,
        rowCounts: { t: 4 },
        checkpointsReceived: 2,
        abandonedCheckpoints: 1,
      });
    });

    it('verifies only buckets of the completed priority on partial_checkpoint_complete', () => {
      const state = new SyncClientState();
      state.apply(
        checkpoint('3', [
          { bucket: 'urgent', checksum: 1, priority: 0 },
          { bucket: 'later', checksum: 2, priority: 3 },
        ]),
      );
      state.apply(data('urgent', [put('1', 't', 'a', 1, {})]));
      expect(state.apply({ partial_checkpoint_complete: { last_op_id: '3', priority: 0 } })).toEqual({
        kind: 'partial_checkpoint_complete',
        priority: 0,
        mismatches: [],
      });
      state.apply(data('later', [put('2', 't', 'b', 3, {})]));
      expect(state.apply(complete('3'))).toMatchObject({ mismatches: [{ bucket: 'later', expected: 2, actual: 3 }] });
      expect(state.snapshot().partialCompletions).toEqual([0]);
    });

    it('reports a partial_checkpoint_complete whose buckets do not match', () => {
      const state = new SyncClientState();
      state.apply(checkpoint('1', [{ bucket: 'urgent', checksum: 5, priority: 1 }]));
      const event = state.apply({ partial_checkpoint_complete: { last_op_id: '1', priority: 1 } });
      expect(event).toMatchObject({ mismatches: [{ bucket: 'urgent', expected: 5, actual: 0, opsReceived: 0 }] });
    });

    it('records token_expires_in, stream errors and the write checkpoint', () => {
      const state = new SyncClientState();
      expect(state.apply({ token_expires_in: 3600 })).toEqual({ kind: 'token_expires_in', seconds: 3600 });
      state.apply({
        checkpoint: {
          last_op_id: '0',
          write_checkpoint: '7',
          buckets: [],
          streams: [
            { name: 'todos', is_default: true, errors: [] },
            { name: 'shared', is_default: false, errors: [{ subscription: 0, message: 'list_id is missing' }] },
          ],
        },
      });
      state.apply(complete('0'));
      expect(state.snapshot()).toMatchObject({
        lastOpId: '0',
        writeCheckpoint: '7',
        tokenExpiresIn: 3600,
        streamErrors: [{ stream: 'shared', subscription: 0, message: 'list_id is missing' }],
        rowCounts: {},
      });
    });
  });

  describe('protocol errors', () => {
    it('rejects lines the protocol does not allow, naming the field', () => {
      const state = new SyncClientState();
      expect(() => state.apply({ checkpoint_diff: { last_op_id: '1', updated_buckets: [] } })).toThrow(
        /checkpoint_diff arrived before any checkpoint/,
      );
      expect(() => state.apply(data('b', []))).toThrow(/before any checkpoint/);
      expect(() => state.apply(checkpoint('18446744073709551616', []))).toThrow(SyncProtocolError);
      expect(() => state.apply({ checkpoint: { last_op_id: '1', buckets: [{ bucket: 'b' }] } })).toThrow(
        /checkpoint.buckets\[0\].checksum/,
      );
      state.apply(checkpoint('1', [{ bucket: 'b', checksum: 0 }]));
      expect(() => state.apply(data('b', [{ op_id: '1', op: 'UPSERT', checksum: 0 }]))).toThrow(
        /data.data\[0\] \(bucket "b"\).op must be PUT, REMOVE, MOVE or CLEAR/,
      );
      expect(() => state.apply(data('b', [{ op_id: '-1', op: 'MOVE', checksum: 0 }]))).toThrow(/op_id/);
      expect(() => state.apply('hello')).toThrow(/not an object/);
    });

    it('ignores, with a warning, data for a bucket the checkpoint does not list and lines it does not know', () => {
      const state = new SyncClientState();
      state.apply(checkpoint('1', [{ bucket: 'b', checksum: 0 }]));
      expect(state.apply(data('other', [put('1', 't', 'x', 1, {})]))).toMatchObject({ ignored: true });
      expect(state.apply({ something_new: {} })).toEqual({ kind: 'unknown', keys: ['something_new'] });
      expect(state.snapshot().warnings).toHaveLength(2);
      expect(state.snapshot().rowCounts).toEqual({});
    });
  });
});
