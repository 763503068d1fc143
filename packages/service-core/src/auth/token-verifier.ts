/**
 * Verifies client JWTs: parse the Authorization header, pick the key by `kid` (static keys,
 * then JWKS URLs, refetching once on an unknown kid), check the header `alg` against the key,
 * verify the signature with jose, then check `sub` / `iat` / `exp` / `nbf` / `aud` / `iss` and
 * the lifetime cap. Every failure is a ServiceError with a PSYNC_S21xx code (docs/auth.md),
 * counted by code and logged at a bounded rate (AuthFailureLog).
 */
import { createLogger, type Logger } from '@bucketsync/lib-services';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { compactVerify, decodeProtectedHeader, errors as joseErrors, importJWK, type CryptoKey } from 'jose';
import { SUPPORTED_ALGORITHMS, type AuthConfig, type AuthKey, type AuthKeyType } from './auth-config.js';
import { AuthFailureLog } from './auth-failure-log.js';
import { RemoteJwks } from './remote-jwks.js';

/** A token that passed every check. */
export interface VerifiedToken {
  /** The `sub` claim: the user id (`auth.user_id()` / `request.user_id()` in the sync config). */
  userId: string;
  /** Every claim of the token, including `sub`, `iat`, `exp` and `aud`. */
  claims: Record<string, unknown>;
  /** `exp`, epoch seconds: the sync stream ends then. */
  expiresAt: number;
  /** `iat`, epoch seconds. */
  issuedAt: number;
}

export interface TokenVerifierOptions {
  /** Tolerated clock difference for `iat` / `nbf` in the future, in seconds. Default 30. */
  clockSkewSeconds?: number;
  /** Timeout of one JWKS URL fetch, in milliseconds. Default 5000. */
  jwksTimeoutMs?: number;
  /**
   * Largest JWKS response accepted, in bytes; a larger one is aborted while reading and the
   * fetch fails (PSYNC_S2106). Default 1 MiB, far above any real key set.
   */
  jwksMaxBytes?: number;
  /** Refetch JWKS URLs when their keys are older than this, in seconds. Default 300. */
  jwksRefreshIntervalSeconds?: number;
  /**
   * Minimum time between two fetches of one JWKS URL, in seconds; bounds the requests caused
   * by unknown kids and by a down JWKS server. Default 30.
   */
  jwksMinRefreshIntervalSeconds?: number;
  /** Clock in epoch milliseconds. Default `Date.now`; tests inject their own. */
  now?: () => number;
  /** Default: the process logger with `component: auth`. Failed authentications are logged here. */
  logger?: Logger;
  /** Lines logged per error code per `failureLogWindowSeconds`; the rest are counted. Default 5. */
  failureLogLines?: number;
  /** The window of `failureLogLines`, in seconds. Default 30. */
  failureLogWindowSeconds?: number;
  /** Fetch implementation for JWKS URLs. Default the global `fetch`. */
  fetch?: typeof fetch;
}

/** Longest token accepted, in characters; larger headers are rejected before any parsing. */
const MAX_TOKEN_LENGTH = 16_384;

const ALG_TO_KTY = new Map<string, AuthKeyType>(
  (Object.entries(SUPPORTED_ALGORITHMS) as [AuthKeyType, readonly string[]][]).flatMap(([kty, algs]) =>
    algs.map((alg) => [alg, kty] as [string, AuthKeyType]),
  ),
);

const EC_CURVE_FOR_ALG: Readonly<Record<string, string>> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

/** Quotes an attacker-controlled value for a message, bounded in length. */
function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 66 ? `${text.slice(0, 64)}…"` : text;
}

/** Epoch seconds as `2026-01-01T00:00:00Z`. */
function isoSeconds(epochSeconds: number): string {
  const date = new Date(epochSeconds * 1000);
  return Number.isNaN(date.getTime()) ? String(epochSeconds) : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * How a message names `key`. Its kid is shown only when the token named it (`showKid`): a
 * client must not learn the configured kids by sending tokens without one.
 */
function keyName(key: AuthKey, showKid: boolean): string {
  if (key.kid === undefined) return `the key without kid from ${key.source}`;
  return showKid ? `key ${quote(key.kid)}` : 'the configured key';
}

function describeKey(key: AuthKey): string {
  return `${key.kty}${key.alg ? `, ${key.alg}` : ''}`;
}

/** `EdDSA` and `Ed25519` name the same algorithm for Ed25519 keys. */
function isEdDsa(alg: string): boolean {
  return alg === 'EdDSA' || alg === 'Ed25519';
}

/** Why `key` cannot verify a token signed with `alg`, or undefined when it can. */
function algMismatch(key: AuthKey, alg: string, showKid = true): string | undefined {
  if (ALG_TO_KTY.get(alg) !== key.kty) {
    return `alg ${quote(alg)} cannot be verified with ${keyName(key, showKid)} (${describeKey(key)})`;
  }
  if (key.alg !== undefined && key.alg !== alg && !(isEdDsa(key.alg) && isEdDsa(alg))) {
    return `alg ${quote(alg)} does not match ${keyName(key, showKid)} (${describeKey(key)})`;
  }
  if (key.kty === 'EC' && EC_CURVE_FOR_ALG[alg] !== key.jwk.crv) {
    return `alg ${quote(alg)} needs curve ${EC_CURVE_FOR_ALG[alg]}, but ${keyName(key, showKid)} is ${key.jwk.crv}`;
  }
  return undefined;
}

function invalid(details: string, cause?: unknown): ServiceError {
  return new ServiceError(ErrorCode.AUTH_INVALID_TOKEN, details, { cause });
}

function badClaims(details: string): ServiceError {
  return new ServiceError(ErrorCode.AUTH_BAD_CLAIMS, details);
}

/**
 * Verifies the tokens clients send. One instance per service process: it caches imported keys
 * and fetched JWKS. Used by the HTTP sync and write-checkpoint routes and the RSocket setup.
 */
export class TokenVerifier {
  private readonly config: AuthConfig;
  private readonly clockSkewSeconds: number;
  private readonly now: () => number;
  private readonly logger: Logger;
  private readonly remotes: RemoteJwks[];
  private readonly failureLog: AuthFailureLog;
  // Keyed by the AuthKey object: a JWKS refresh yields new objects, so stale entries go away.
  private readonly imported = new WeakMap<AuthKey, Map<string, Promise<CryptoKey | Uint8Array>>>();

  constructor(config: AuthConfig, options: TokenVerifierOptions = {}) {
    this.config = config;
    this.clockSkewSeconds = options.clockSkewSeconds ?? 30;
    this.now = options.now ?? Date.now;
    this.logger = options.logger ?? createLogger().child({ component: 'auth' });
    this.remotes = config.jwksUris.map(
      (uri) =>
        new RemoteJwks({
          uri,
          timeoutMs: options.jwksTimeoutMs ?? 5000,
          maxBytes: options.jwksMaxBytes ?? 1024 * 1024,
          refreshIntervalMs: (options.jwksRefreshIntervalSeconds ?? 300) * 1000,
          minRefreshIntervalMs: (options.jwksMinRefreshIntervalSeconds ?? 30) * 1000,
          now: this.now,
          logger: this.logger,
          fetch: options.fetch,
        }),
    );
    this.failureLog = new AuthFailureLog({
      logger: this.logger,
      now: this.now,
      maxLinesPerWindow: options.failureLogLines ?? 5,
      windowMs: (options.failureLogWindowSeconds ?? 30) * 1000,
    });
  }

  /**
   * Failed verifications since this verifier was created, by error code
   * (`{ PSYNC_S2103: 12, PSYNC_S2104: 3 }`); for metrics and tests. Codes that never failed are
   * absent.
   */
  failures(): Record<string, number> {
    return this.failureLog.snapshot();
  }

  /**
   * Verifies `Authorization: Token <jwt>` (or `Bearer <jwt>`) and returns the token's user and
   * claims. Throws ServiceError with a PSYNC_S21xx code (HTTP 401) on any failure; the message
   * never contains the token itself.
   */
  async verify(authorizationHeader: string | undefined): Promise<VerifiedToken> {
    let token: string;
    try {
      token = parseAuthorizationHeader(authorizationHeader);
    } catch (error) {
      this.failureLog.record(error, authorizationHeader);
      throw error;
    }
    return this.verifyJwt(token);
  }

  /** Verifies a bare JWT (no scheme); failures are counted and logged like `verify`'s. */
  async verifyJwt(token: string): Promise<VerifiedToken> {
    try {
      const { alg, kid } = checkStructure(token);
      const key = await this.selectKey(kid, alg);
      const payload = await this.verifySignature(token, alg, key, kid !== undefined);
      return this.checkClaims(payload);
    } catch (error) {
      this.failureLog.record(error, token);
      throw error;
    }
  }

  private async selectKey(kid: string | undefined, alg: string): Promise<AuthKey> {
    if (kid === undefined) return this.selectKeyWithoutKid(alg);

    const fromStatic = pickByKid(this.config.keys, kid, alg);
    if (fromStatic) return fromStatic;
    if (this.remotes.length > 0) {
      const found = pickByKid(await this.remoteKeys(false), kid, alg);
      if (found) return found;
      // Unknown kid: the issuer may have rotated keys; refetch (rate-limited by RemoteJwks).
      const refreshed = pickByKid(await this.remoteKeys(true), kid, alg);
      if (refreshed) return refreshed;
    }
    // The configured kids are not listed: a client must not learn them (only how many there are).
    const count = (await this.allKeys(false)).length;
    throw new ServiceError(
      ErrorCode.AUTH_UNKNOWN_KEY,
      `unknown key id ${quote(kid)}; ${count} key${count === 1 ? ' is' : 's are'} configured, none with this kid`,
    );
  }

  private async selectKeyWithoutKid(alg: string): Promise<AuthKey> {
    const keys = await this.allKeys(false);
    // A single configured key may be used without kid; its alg is still checked below.
    if (keys.length === 1) return keys[0]!;
    const candidates = keys.filter((key) => algMismatch(key, alg) === undefined);
    if (candidates.length === 1) return candidates[0]!;
    if (candidates.length === 0) {
      throw invalid(`the token has no kid and no configured key accepts alg ${quote(alg)}`);
    }
    throw new ServiceError(
      ErrorCode.AUTH_UNKNOWN_KEY,
      `the token has no kid and ${candidates.length} configured keys accept alg ${quote(alg)}; sign with a kid`,
    );
  }

  /** Static keys first, then every JWKS URL's keys. */
  private async allKeys(refresh: boolean): Promise<AuthKey[]> {
    return [...this.config.keys, ...(this.remotes.length > 0 ? await this.remoteKeys(refresh) : [])];
  }

  /**
   * Keys of every JWKS URL. One unreachable URL is tolerated while another answers; when none
   * answers (and no keys are cached) the first failure is thrown (AUTH_KEYS_UNAVAILABLE).
   */
  private async remoteKeys(refresh: boolean): Promise<AuthKey[]> {
    const results = await Promise.allSettled(this.remotes.map((remote) => remote.getKeys(refresh)));
    const keys: AuthKey[] = [];
    let failure: unknown;
    for (const result of results) {
      if (result.status === 'fulfilled') keys.push(...result.value);
      else failure ??= result.reason;
    }
    if (failure !== undefined && results.every((result) => result.status === 'rejected')) throw failure;
    return keys;
  }

  private async verifySignature(
    token: string,
    alg: string,
    key: AuthKey,
    showKid: boolean,
  ): Promise<Record<string, unknown>> {
    const mismatch = algMismatch(key, alg, showKid);
    if (mismatch) throw invalid(mismatch);
    let cryptoKey: CryptoKey | Uint8Array;
    try {
      cryptoKey = await this.importKey(key, alg);
    } catch (error) {
      throw invalid(`${keyName(key, showKid)} from ${key.source} could not be imported for ${alg}`, error);
    }
    let payloadBytes: Uint8Array;
    try {
      ({ payload: payloadBytes } = await compactVerify(token, cryptoKey, { algorithms: [alg] }));
    } catch (error) {
      if (error instanceof joseErrors.JWSSignatureVerificationFailed) {
        throw invalid(`the signature does not verify with ${keyName(key, showKid)}`, error);
      }
      throw invalid(`the token could not be verified: ${(error as Error).message}`, error);
    }
    let payload: unknown;
    try {
      payload = JSON.parse(new TextDecoder().decode(payloadBytes));
    } catch (error) {
      throw invalid('the payload is not JSON', error);
    }
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
      throw invalid('the payload is not a JSON object');
    }
    return payload as Record<string, unknown>;
  }

  private importKey(key: AuthKey, alg: string): Promise<CryptoKey | Uint8Array> {
    let byAlg = this.imported.get(key);
    if (!byAlg) {
      byAlg = new Map();
      this.imported.set(key, byAlg);
    }
    let imported = byAlg.get(alg);
    if (!imported) {
      imported = importJWK(key.jwk, alg).catch((error: unknown) => {
        byAlg.delete(alg);
        throw error;
      });
      byAlg.set(alg, imported);
    }
    return imported;
  }

  private checkClaims(claims: Record<string, unknown>): VerifiedToken {
    const { sub, iat, exp, nbf, aud } = claims;
    const missing = (['sub', 'iat', 'exp'] as const).filter((name) => claims[name] === undefined);
    if (missing.length > 0) {
      throw badClaims(`the token has no ${missing.join(', ')} claim${missing.length > 1 ? 's' : ''}`);
    }
    if (typeof sub !== 'string' || sub === '') throw badClaims(`sub must be a non-empty string, got ${quote(sub)}`);
    for (const [name, value] of [
      ['iat', iat],
      ['exp', exp],
      ['nbf', nbf],
    ] as const) {
      if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) {
        throw badClaims(`${name} must be a number of seconds since the epoch, got ${quote(value)}`);
      }
    }
    const issuedAt = iat as number;
    const expiresAt = exp as number;
    const notBefore = nbf as number | undefined;

    const nowSeconds = this.now() / 1000;
    if (notBefore !== undefined && notBefore > nowSeconds + this.clockSkewSeconds) {
      throw new ServiceError(
        ErrorCode.AUTH_EXPIRED,
        `token not valid before ${isoSeconds(notBefore)} (nbf); the service's time is ${isoSeconds(nowSeconds)}`,
      );
    }
    if (issuedAt > nowSeconds + this.clockSkewSeconds) {
      throw new ServiceError(
        ErrorCode.AUTH_EXPIRED,
        `token issued in the future at ${isoSeconds(issuedAt)} (iat); the service's time is ${isoSeconds(nowSeconds)}`,
      );
    }
    // No skew on expiry: the sync stream ends at `exp`, and a client refreshes before then.
    if (expiresAt <= nowSeconds) {
      throw new ServiceError(ErrorCode.AUTH_EXPIRED, `token expired at ${isoSeconds(expiresAt)}`);
    }

    const audiences = aud === undefined ? [] : Array.isArray(aud) ? aud : [aud];
    const accepted = this.config.audiences;
    if (aud === undefined) {
      throw badClaims(`the token has no aud claim; expected one of: ${accepted.join(', ')}`);
    }
    if (!audiences.some((value) => typeof value === 'string' && accepted.includes(value))) {
      const shown = Array.isArray(aud) ? `[${aud.slice(0, 5).map(quote).join(', ')}]` : quote(aud);
      throw badClaims(`aud ${shown} is not one of: ${accepted.join(', ')}`);
    }

    const issuers = this.config.issuers;
    if (issuers !== undefined) {
      const { iss } = claims;
      if (iss === undefined) {
        throw badClaims(`the token has no iss claim; expected one of: ${issuers.join(', ')} (client_auth.issuer)`);
      }
      if (typeof iss !== 'string' || !issuers.includes(iss)) {
        throw badClaims(`iss ${quote(iss)} is not one of: ${issuers.join(', ')} (client_auth.issuer)`);
      }
    }

    const lifetime = expiresAt - issuedAt;
    if (lifetime > this.config.maxLifetimeSeconds) {
      throw badClaims(
        `token lifetime ${lifetime}s (exp - iat) is over the cap of ${this.config.maxLifetimeSeconds}s ` +
          `(client_auth.max_lifetime_seconds)`,
      );
    }
    return { userId: sub, claims, expiresAt, issuedAt };
  }
}

/** Picks the key with `kid`, preferring one that accepts `alg` when several share the kid. */
function pickByKid(keys: readonly AuthKey[], kid: string, alg: string): AuthKey | undefined {
  const matching = keys.filter((key) => key.kid === kid);
  return matching.find((key) => algMismatch(key, alg) === undefined) ?? matching[0];
}

/** Extracts the JWT from `Token <jwt>` or `Bearer <jwt>`; S2101 for anything else. */
export function parseAuthorizationHeader(header: string | undefined): string {
  const value = header?.trim() ?? '';
  if (value === '') {
    throw new ServiceError(ErrorCode.AUTH_MISSING, 'no Authorization header');
  }
  const [scheme = '', token = '', ...rest] = value.split(/\s+/);
  if (!/^(token|bearer)$/i.test(scheme)) {
    // A value without a scheme is most likely a bare token: never echo it.
    const shown = token !== '' && scheme.length <= 20 ? `scheme ${quote(scheme)}` : 'value';
    throw new ServiceError(
      ErrorCode.AUTH_MISSING,
      `the Authorization header ${shown} is not supported; send "Token <jwt>" or "Bearer <jwt>"`,
    );
  }
  if (token === '') {
    throw new ServiceError(ErrorCode.AUTH_MISSING, `the Authorization header has the ${scheme} scheme but no token`);
  }
  if (rest.length > 0) {
    throw new ServiceError(
      ErrorCode.AUTH_MISSING,
      `the Authorization header has ${rest.length + 2} space-separated parts; send "${scheme} <jwt>"`,
    );
  }
  return token;
}

/** Checks the compact JWS shape and header; returns the header's `alg` and `kid`. */
function checkStructure(token: string): { alg: string; kid: string | undefined } {
  if (token.length > MAX_TOKEN_LENGTH) {
    throw invalid(`the token is ${token.length} characters long; at most ${MAX_TOKEN_LENGTH} are accepted`);
  }
  const parts = token.split('.');
  if (parts.length === 5) throw invalid('encrypted tokens (JWE) are not supported; send a signed JWT');
  if (parts.length !== 3 || parts.some((part) => !/^[A-Za-z0-9_-]*$/.test(part))) {
    throw invalid('the token is not a JWT (expected three base64url parts separated by dots)');
  }
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(token);
  } catch (error) {
    throw invalid('the token header is not base64url-encoded JSON', error);
  }
  const alg = header.alg;
  if (alg === undefined) throw invalid('the token header has no alg');
  if (typeof alg === 'string' && alg.toLowerCase() === 'none') {
    throw invalid('alg "none" (an unsigned token) is never accepted');
  }
  if (typeof alg !== 'string' || !ALG_TO_KTY.has(alg)) {
    throw invalid(`alg ${quote(alg)} is not supported; use one of: ${[...ALG_TO_KTY.keys()].join(', ')}`);
  }
  const kid = header.kid;
  if (kid !== undefined && (typeof kid !== 'string' || kid === '')) {
    throw invalid(`kid must be a non-empty string, got ${quote(kid)}`);
  }
  if (parts[2] === '') throw invalid('the token has no signature');
  return { alg, kid };
}
