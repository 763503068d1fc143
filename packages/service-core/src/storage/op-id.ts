/**
 * Op ids are unsigned 64-bit integers, sent on the wire as base-10 strings. These helpers
 * parse client-supplied text strictly (a bad `after` is a request error, not a crash).
 */
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import type { OpId } from './storage-types.js';

/** Largest op id: 2^64 - 1. */
export const MAX_OP_ID: OpId = (1n << 64n) - 1n;

/** Parses a base-10 op id; throws ServiceError REQUEST_INVALID naming `what` when malformed. */
export function parseOpId(text: string, what = 'op id'): OpId {
  if (!/^(0|[1-9][0-9]{0,19})$/.test(text)) {
    throw new ServiceError(
      ErrorCode.REQUEST_INVALID,
      `${what} must be an unsigned 64-bit integer, got ${JSON.stringify(text)}`,
    );
  }
  const value = BigInt(text);
  if (value > MAX_OP_ID) {
    throw new ServiceError(ErrorCode.REQUEST_INVALID, `${what} is larger than 2^64-1: ${text}`);
  }
  return value;
}

/** The wire form of an op id. */
export function formatOpId(opId: OpId): string {
  return opId.toString(10);
}

/** The larger of two op ids. */
export function maxOpId(a: OpId, b: OpId): OpId {
  return a > b ? a : b;
}
