/**
 * Fuzz suite of what clients send: request bodies, query strings, headers and tokens. Every
 * generated input gets a decoded value or a ServiceError naming what is wrong, never another
 * exception, and a good request still works afterwards. The generators live here so the suite
 * grows with the protocol; each property runs a few thousand inputs in `npm test`.
 */
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { createLogger } from '@bucketsync/lib-services';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeAuthConfig, signDevToken, TokenVerifier } from '../src/index.js';
import { RequestErrors } from '../src/http/request-errors.js';
import { acceptsGzip, chooseStreamCompression } from '../src/http/stream-compression.js';
import { chooseEncoding } from '../src/http/sync-line-encoder.js';
import { clientIdProblem } from '../src/http/sync-server.js';
import { decodeSyncRequest } from '../src/sync/sync-request.js';

const RUNS = 2000;

/** JSON-like values, including the shapes the protocol uses with wrong types inside. */
const jsonValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double(),
    fc.string(),
    fc.constantFrom('', '0', '18446744073709551615', '99999999999999999999999', '-1', '1e3'),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 5 }),
  ),
})).value;

/** Bodies shaped like sync requests, with every field sometimes wrong. */
const syncBody = fc.record(
  {
    buckets: fc.oneof(
      fc.array(fc.record({ name: fc.oneof(fc.string(), jsonValue), after: jsonValue }, { requiredKeys: [] }), {
        maxLength: 5,
      }),
      jsonValue,
    ),
    include_checksum: jsonValue,
    raw_data: jsonValue,
    client_id: fc.oneof(fc.string(), jsonValue),
    parameters: jsonValue,
    streams: fc.oneof(
      fc.record(
        {
          include_defaults: jsonValue,
          subscriptions: fc.oneof(
            fc.array(
              fc.record(
                { stream: fc.oneof(fc.string(), jsonValue), parameters: jsonValue, override_priority: jsonValue },
                {
                  requiredKeys: [],
                },
              ),
              { maxLength: 5 },
            ),
            jsonValue,
          ),
        },
        { requiredKeys: [] },
      ),
      jsonValue,
    ),
  },
  { requiredKeys: [] },
);

/** Runs `f`; returns the error it threw, if any. */
function thrown(f: () => unknown): unknown {
  try {
    f();
    return undefined;
  } catch (e) {
    return e;
  }
}

describe('fuzz: what clients send never crashes the service', () => {
  it('a sync request body decodes, or is a 400 naming a field', () => {
    fc.assert(
      fc.property(fc.oneof(syncBody, jsonValue, fc.string()), (body) => {
        const error = thrown(() => decodeSyncRequest(body));
        if (error === undefined) return;
        expect(error).toBeInstanceOf(ServiceError);
        expect((error as ServiceError).status).toBe(400);
        expect((error as ServiceError).details).toMatch(/^[\w.[\]]+: /);
      }),
      { numRuns: RUNS },
    );
    expect(decodeSyncRequest({ buckets: [{ name: 'b', after: '1' }] }).buckets[0]?.after).toBe(1n);
  });

  it('a client_id from a query string is accepted or refused with a reason, never thrown', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), jsonValue), (value) => {
        const problem = clientIdProblem(value);
        expect(problem === undefined || typeof problem === 'string').toBe(true);
        if (problem === undefined) expect(typeof value).toBe('string');
      }),
      { numRuns: RUNS },
    );
  });

  it('Accept and Accept-Encoding headers of any content choose an encoding and a compression', () => {
    const header = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 2000 }),
      fc
        .array(fc.tuple(fc.constantFrom('gzip', 'identity', '*', 'br', 'x', ''), fc.string({ maxLength: 6 })), {
          maxLength: 6,
        })
        .map((parts) => parts.map(([c, q]) => `${c};q=${q}`).join(', ')),
    );
    fc.assert(
      fc.property(header, header, (accept, encoding) => {
        expect(['application/x-ndjson', 'application/vnd.powersync.bson-stream']).toContain(chooseEncoding(accept));
        expect(typeof acceptsGzip(encoding)).toBe('boolean');
        expect(['gzip', 'identity']).toContain(
          chooseStreamCompression({ acceptEncoding: encoding, userAgent: accept, policy: 'auto' }),
        );
      }),
      { numRuns: RUNS },
    );
  });

  it('any Authorization header is refused with a PSYNC_S21xx 401 that never echoes it, and a good token still verifies', async () => {
    const key = { kty: 'oct', alg: 'HS256', kid: 'k', k: 'a'.repeat(43) };
    const verifier = new TokenVerifier(decodeAuthConfig({ jwks: { keys: [key] }, audience: ['fuzz'] }), {
      logger: createLogger({ level: 'error' }),
    });
    const segment = fc.string({ unit: 'binary', maxLength: 40 });
    const header = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc
        .tuple(fc.constantFrom('Token ', 'Bearer ', 'token ', ''), segment, segment, segment)
        .map(([scheme, a, b, c]) => `${scheme}${a}.${b}.${c}`),
      fc
        .tuple(jsonValue, jsonValue)
        .map(
          ([h, p]) =>
            `Token ${Buffer.from(JSON.stringify(h) ?? 'null').toString('base64url')}.${Buffer.from(JSON.stringify(p) ?? 'null').toString('base64url')}.sig`,
        ),
    );
    await fc.assert(
      fc.asyncProperty(header, async (authorization) => {
        const error = await verifier.verify(authorization).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(ServiceError);
        expect((error as ServiceError).status).toBe(401);
        expect((error as ServiceError).code).toMatch(/^PSYNC_S21/);
        if (authorization.length > 20) expect((error as ServiceError).message).not.toContain(authorization);
      }),
      { numRuns: RUNS },
    );
    const good = await signDevToken({ key, sub: 'u1', audience: 'fuzz', expiresInSeconds: 60 });
    expect((await verifier.verify(`Token ${good}`)).userId).toBe('u1');
  });

  it('any thrown value becomes an answer whose body names no internals', () => {
    const errors = new RequestErrors(createLogger({ level: 'error', write: () => undefined }));
    fc.assert(
      fc.property(jsonValue, fc.string(), (value, message) => {
        for (const error of [value, new Error(message), new ServiceError(ErrorCode.STORAGE_UNREACHABLE, message)]) {
          const answer = errors.answer(error);
          expect(answer.status).toBeGreaterThanOrEqual(400);
          if (answer.status >= 500 && message.length > 3) {
            expect(answer.body.error.description).not.toContain(message);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });
});
