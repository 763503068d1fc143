/**
 * Mints HS256 development tokens from a configured `oct` key, for the test-client's
 * `generate-token`, the demo and tests. Not for production issuers: they sign with their own
 * (preferably asymmetric) keys and BucketSync only verifies.
 */
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { base64url, SignJWT, type JWK } from 'jose';

export interface DevTokenOptions {
  /** An `oct` JWK with `alg` HS256 (or no alg), e.g. from `client_auth.jwks.keys`; its kid goes in the header. */
  key: JWK;
  /** The user id (`sub`). */
  sub: string;
  /** `aud`: one of `client_auth.audience`. */
  audience: string | string[];
  /** Lifetime: `exp = iat + expiresInSeconds`. Must be within `client_auth.max_lifetime_seconds`. */
  expiresInSeconds: number;
  /** Extra claims (e.g. parameters for `auth.parameters()`); cannot override sub, aud, iat or exp. */
  claims?: Record<string, unknown>;
  /** `iat` in epoch seconds. Default now; tests set it to mint expired or future tokens. */
  issuedAt?: number;
}

/** Signs an HS256 JWT with `sub`, `aud`, `iat` and `exp`. Throws CONFIG_INVALID for a non-HS256 key. */
export async function signDevToken(options: DevTokenOptions): Promise<string> {
  const { key } = options;
  if (key.kty !== 'oct' || typeof key.k !== 'string' || (key.alg !== undefined && key.alg !== 'HS256')) {
    throw new ServiceError(
      ErrorCode.CONFIG_INVALID,
      `dev tokens are signed with an HS256 oct key (kty "oct", alg "HS256", k); got kty ${JSON.stringify(key.kty)}` +
        `${key.alg ? `, alg ${JSON.stringify(key.alg)}` : ''}`,
    );
  }
  if (!Number.isFinite(options.expiresInSeconds) || options.expiresInSeconds <= 0) {
    throw new ServiceError(
      ErrorCode.CONFIG_INVALID,
      `expiresInSeconds must be a positive number, got ${options.expiresInSeconds}`,
    );
  }
  const issuedAt = Math.floor(options.issuedAt ?? Date.now() / 1000);
  const header: { alg: 'HS256'; typ: 'JWT'; kid?: string } = { alg: 'HS256', typ: 'JWT' };
  if (key.kid !== undefined) header.kid = key.kid;
  return new SignJWT({ ...options.claims })
    .setProtectedHeader(header)
    .setSubject(options.sub)
    .setAudience(options.audience)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + Math.floor(options.expiresInSeconds))
    .sign(base64url.decode(key.k));
}
