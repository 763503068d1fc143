/**
 * The `client_auth` section of the service config: the only place its raw form is read.
 * Normalises `audience`, `issuer` and `jwks_uri` to lists and checks every static key's members
 * (including the HMAC key length), so a bad key fails at startup rather than on the first
 * client request (docs/auth.md).
 */
import { decodeConfig } from '@bucketsync/lib-services';
import type { JWK } from 'jose';
import { z } from 'zod';

/** Default cap on `exp - iat` of client tokens: one day. */
export const DEFAULT_MAX_LIFETIME_SECONDS = 86_400;

/** JWS algorithms BucketSync verifies, by key type. `none` is never accepted. */
export const SUPPORTED_ALGORITHMS = {
  oct: ['HS256', 'HS384', 'HS512'],
  RSA: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
  EC: ['ES256', 'ES384', 'ES512'],
  OKP: ['EdDSA', 'Ed25519'],
} as const;

export type AuthKeyType = keyof typeof SUPPORTED_ALGORITHMS;

/**
 * Fewest bytes of key material (the decoded `k`) an `oct` key may have: 32, the output size of
 * SHA-256 (RFC 7518 section 3.2). Shorter secrets can be brute-forced from one captured token.
 */
export const MIN_HMAC_KEY_BYTES = 32;

/** The curve each ES algorithm needs. */
const EC_CURVE_FOR_ALG: Readonly<Record<string, string>> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

/** One verification key, normalised from a static JWKS entry or a fetched JWKS. */
export interface AuthKey {
  /** Key id matched against the token header's `kid`; absent keys only match kid-less tokens. */
  readonly kid: string | undefined;
  readonly kty: AuthKeyType;
  /** When set, the only algorithm this key verifies; otherwise any algorithm of its `kty`. */
  readonly alg: string | undefined;
  /** The public key material only (no `d`, `use`, `key_ops`), ready for `importJWK`. */
  readonly jwk: JWK;
  /** Where the key came from (`client_auth.jwks` or the JWKS URL), for messages and logs. */
  readonly source: string;
}

/** The decoded, normalised `client_auth` section. */
export interface AuthConfig {
  /** Static keys from `client_auth.jwks.keys`, in config order. */
  readonly keys: readonly AuthKey[];
  /** JWKS URLs from `client_auth.jwks_uri`, fetched and cached by the TokenVerifier. */
  readonly jwksUris: readonly string[];
  /** Accepted `aud` values; a token must carry at least one of them. */
  readonly audiences: readonly string[];
  /**
   * Accepted `iss` values (`client_auth.issuer`). When set, a token's `iss` must be one of them
   * (else PSYNC_S2105); undefined (the default) means `iss` is not checked.
   */
  readonly issuers: readonly string[] | undefined;
  /** Cap on `exp - iat`, in seconds. Default {@link DEFAULT_MAX_LIFETIME_SECONDS}. */
  readonly maxLifetimeSeconds: number;
}

const base64url = z
  .string({ required_error: 'Required' })
  .min(1, 'must not be empty')
  .regex(/^[A-Za-z0-9_-]+$/, 'must be base64url (A-Z, a-z, 0-9, - and _, no padding)');

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const;

const commonMembers = {
  kid: z.string().min(1, 'must not be empty').optional(),
  use: z.string().optional(),
  // Kept so a private key can be rejected with a clear message instead of silently stripped.
  d: z.unknown().optional(),
  p: z.unknown().optional(),
  q: z.unknown().optional(),
  dp: z.unknown().optional(),
  dq: z.unknown().optional(),
  qi: z.unknown().optional(),
};

const jwkSchema = z
  .discriminatedUnion('kty', [
    z.object({
      kty: z.literal('oct'),
      k: base64url,
      alg: z.enum(SUPPORTED_ALGORITHMS.oct).optional(),
      ...commonMembers,
    }),
    z.object({
      kty: z.literal('RSA'),
      n: base64url,
      e: base64url,
      alg: z.enum(SUPPORTED_ALGORITHMS.RSA).optional(),
      ...commonMembers,
    }),
    z.object({
      kty: z.literal('EC'),
      crv: z.enum(['P-256', 'P-384', 'P-521']),
      x: base64url,
      y: base64url,
      alg: z.enum(SUPPORTED_ALGORITHMS.EC).optional(),
      ...commonMembers,
    }),
    z.object({
      kty: z.literal('OKP'),
      crv: z.literal('Ed25519'),
      x: base64url,
      alg: z.enum(SUPPORTED_ALGORITHMS.OKP).optional(),
      ...commonMembers,
    }),
  ])
  .superRefine((key, ctx) => {
    if (key.kty === 'oct' && typeof key.k === 'string') {
      const bytes = Buffer.from(key.k, 'base64url').length;
      if (bytes < MIN_HMAC_KEY_BYTES) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['k'],
          // Only the length: `k` is the secret itself.
          message:
            `is ${bytes} bytes of key material; an HMAC key needs at least ${MIN_HMAC_KEY_BYTES} random bytes ` +
            '(make one with: bucketsync-test-client generate-key)',
        });
      }
    }
    if (key.kty !== 'oct') {
      for (const member of PRIVATE_MEMBERS) {
        if (key[member] !== undefined) {
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: [member],
            message: 'is private key material; configure the public key only',
          });
          break;
        }
      }
    }
    if (key.use !== undefined && key.use !== 'sig') {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['use'],
        message: `must be "sig" (a "${key.use}" key cannot verify signatures)`,
      });
    }
    if (key.kty === 'EC' && key.alg !== undefined && EC_CURVE_FOR_ALG[key.alg] !== key.crv) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['alg'],
        message: `${key.alg} needs crv ${EC_CURVE_FOR_ALG[key.alg]}, but the key's crv is ${key.crv}`,
      });
    }
  });

type RawJwk = z.output<typeof jwkSchema>;

/** A string or a non-empty list of strings, normalised to a list. */
function stringList(item: z.ZodType<string>, what: string) {
  return z.preprocess(
    (value) => (typeof value === 'string' ? [value] : value),
    z.array(item, { invalid_type_error: `expected a string or a list of strings` }).min(1, `list at least one ${what}`),
  );
}

const httpUrl = z
  .string()
  .url('must be a URL')
  .refine((value) => /^https?:\/\//i.test(value), 'must be an http:// or https:// URL');

const isPlainHttp = (uri: string) => /^http:\/\//i.test(uri);

const clientAuthSchema = z
  .object(
    {
      jwks: z
        .object({ keys: z.array(jwkSchema) })
        .strict()
        .optional(),
      jwks_uri: stringList(httpUrl, 'URL').optional(),
      // Plain-http JWKS URLs let anyone on the path substitute keys; only for tests and local dev.
      allow_http_jwks: z.boolean().default(false),
      audience: stringList(z.string().min(1, 'must not be empty'), 'audience'),
      issuer: stringList(z.string().min(1, 'must not be empty'), 'issuer').optional(),
      max_lifetime_seconds: z.number().int().positive().default(DEFAULT_MAX_LIFETIME_SECONDS),
    },
    { invalid_type_error: 'expected an object with jwks / jwks_uri and audience' },
  )
  .strict()
  .superRefine((config, ctx) => {
    const keys = config.jwks?.keys ?? [];
    if (keys.length === 0 && (config.jwks_uri ?? []).length === 0) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['jwks'],
        message: 'configure at least one key: jwks.keys, or jwks_uri',
      });
    }
    if (!config.allow_http_jwks) {
      (config.jwks_uri ?? []).forEach((uri, index) => {
        if (!isPlainHttp(uri)) return;
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['jwks_uri', index],
          message:
            'is http://, so the keys could be replaced in transit; use https://, or set ' +
            'client_auth.allow_http_jwks: true (tests and local development only)',
        });
      });
    }
    const seen = new Map<string, number>();
    keys.forEach((key, index) => {
      if (key.kid === undefined) return;
      const first = seen.get(key.kid);
      if (first !== undefined) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['jwks', 'keys', index, 'kid'],
          message: `duplicate kid "${key.kid}" (also jwks.keys[${first}])`,
        });
      } else {
        seen.set(key.kid, index);
      }
    });
  });

function toAuthKey(raw: RawJwk, source: string): AuthKey {
  let jwk: JWK;
  switch (raw.kty) {
    case 'oct':
      jwk = { kty: 'oct', k: raw.k };
      break;
    case 'RSA':
      jwk = { kty: 'RSA', n: raw.n, e: raw.e };
      break;
    case 'EC':
      jwk = { kty: 'EC', crv: raw.crv, x: raw.x, y: raw.y };
      break;
    case 'OKP':
      jwk = { kty: 'OKP', crv: raw.crv, x: raw.x };
      break;
  }
  return { kid: raw.kid, kty: raw.kty, alg: raw.alg, jwk, source };
}

/**
 * Checks one key of a fetched JWKS. Returns the key, or a reason it is unusable (unsupported
 * kty or curve, encryption key, private material); the TokenVerifier skips unusable keys
 * with a warning, as a JWKS may legitimately publish keys for other purposes.
 */
export function parseJwksKey(raw: unknown, source: string): AuthKey | string {
  const result = jwkSchema.safeParse(raw);
  if (result.success) return toAuthKey(result.data, source);
  return result.error.issues
    .map((issue) => `${issue.path.map(String).join('.') || 'key'}: ${issue.message}`)
    .join('; ');
}

/**
 * Decodes the `client_auth` section. Throws ServiceError CONFIG_INVALID listing every bad
 * field by its full path (`client_auth.audience: Required (got nothing)`). `source` is the
 * section's path in the config file; the service passes `client_auth`.
 */
export function decodeAuthConfig(raw: unknown, source = 'client_auth'): AuthConfig {
  // Nest under `source` so decodeConfig reports `client_auth.audience`, not `audience`.
  const wrapped = decodeConfig(z.object({ [source]: clientAuthSchema }), { [source]: raw }, source);
  const config = wrapped[source]!;
  const keysSource = `${source}.jwks`;
  return {
    keys: (config.jwks?.keys ?? []).map((key) => toAuthKey(key, keysSource)),
    jwksUris: config.jwks_uri ?? [],
    audiences: config.audience,
    issuers: config.issuer,
    maxLifetimeSeconds: config.max_lifetime_seconds,
  };
}
