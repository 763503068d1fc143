import { ServiceError } from '@bucketsync/service-errors';
import { describe, expect, it } from 'vitest';
import { decodeSyncRequest, MAX_REQUEST_BUCKETS, MAX_REQUEST_SUBSCRIPTIONS } from '../src/sync/sync-request.js';

function refusal(body: unknown): string {
  try {
    decodeSyncRequest(body);
  } catch (e) {
    expect(e).toBeInstanceOf(ServiceError);
    expect((e as ServiceError).status).toBe(400);
    return (e as ServiceError).message;
  }
  throw new Error('the request was accepted');
}

describe('sync request caps', () => {
  it('refuses more buckets or subscriptions than a client can hold, naming the field', () => {
    const buckets = Array.from({ length: MAX_REQUEST_BUCKETS + 1 }, (_, i) => ({ name: `b${i}`, after: '1' }));
    expect(refusal({ buckets })).toContain('buckets: at most 10000 buckets');
    const subscriptions = Array.from({ length: MAX_REQUEST_SUBSCRIPTIONS + 1 }, () => ({ stream: 's' }));
    expect(refusal({ streams: { subscriptions } })).toContain('streams.subscriptions: at most 1000 subscriptions');
    expect(refusal({ buckets: [{ name: 'x'.repeat(5000), after: '0' }] })).toContain('buckets[0].name');
  });

  it('accepts a request at the caps', () => {
    const buckets = Array.from({ length: MAX_REQUEST_BUCKETS }, (_, i) => ({ name: `b${i}`, after: '1' }));
    expect(decodeSyncRequest({ buckets }).buckets).toHaveLength(MAX_REQUEST_BUCKETS);
  });
});
