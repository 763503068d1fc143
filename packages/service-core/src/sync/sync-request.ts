/**
 * The body of `POST /sync/stream` (docs: sync-protocol.md "Request body"), decoded with errors
 * that name the bad field. Unknown fields are ignored: clients add fields over time.
 */
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { z } from 'zod';

const opIdText = z
  .union([z.string().regex(/^\d{1,20}$/, 'expected a base-10 op id'), z.number().int().nonnegative()])
  .transform((v) => BigInt(v));

/**
 * Caps on what a client sends, checked before any work: a client holds at most the buckets the
 * service gave it (max_buckets_per_connection, default 1,000), so ten times that is generous.
 */
export const MAX_REQUEST_BUCKETS = 10_000;
export const MAX_REQUEST_SUBSCRIPTIONS = 1_000;
const MAX_BUCKET_NAME = 4096;
const MAX_STREAM_NAME = 256;

const syncRequestSchema = z.object({
  buckets: z
    .array(z.object({ name: z.string().min(1).max(MAX_BUCKET_NAME), after: opIdText }))
    .max(MAX_REQUEST_BUCKETS, `at most ${MAX_REQUEST_BUCKETS} buckets`)
    .default([]),
  include_checksum: z.boolean().default(true),
  raw_data: z.boolean().default(true),
  binary_data: z.boolean().optional(),
  client_id: z
    .string()
    .max(200)
    // eslint-disable-next-line no-control-regex
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters')
    .optional(),
  parameters: z
    .record(z.unknown())
    .nullish()
    .transform((v) => v ?? {}),
  app_metadata: z.record(z.unknown()).nullish(),
  streams: z
    .object({
      include_defaults: z.boolean().default(true),
      subscriptions: z
        .array(
          z.object({
            stream: z.string().min(1).max(MAX_STREAM_NAME),
            parameters: z
              .record(z.unknown())
              .nullish()
              .transform((v) => v ?? null),
            override_priority: z
              .number()
              .int()
              .min(0)
              .max(3)
              .nullish()
              .transform((v) => v ?? null),
          }),
        )
        .max(MAX_REQUEST_SUBSCRIPTIONS, `at most ${MAX_REQUEST_SUBSCRIPTIONS} subscriptions`)
        .default([]),
    })
    .optional(),
});

export type SyncRequest = z.output<typeof syncRequestSchema>;

/** Decodes a request body; throws ServiceError REQUEST_INVALID (HTTP 400) naming the field. */
export function decodeSyncRequest(body: unknown): SyncRequest {
  if (body === undefined || body === null || body === '') return syncRequestSchema.parse({});
  const result = syncRequestSchema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path
    .map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`))
    .join('')
    .replace(/^\./, '');
  throw new ServiceError(ErrorCode.REQUEST_INVALID, `${field || 'body'}: ${issue.message}`);
}
