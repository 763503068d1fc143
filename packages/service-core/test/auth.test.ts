import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '@bucketsync/lib-services';
import { ServiceError } from '@bucketsync/service-errors';
import {
  base64url,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  generateSecret,
  SignJWT,
  UnsecuredJWT,
  type CryptoKey,
  type JWK,
} from 'jose';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeAuthConfig,
  signDevToken,
  TokenVerifier,
  type AuthConfig,
  type TokenVerifierOptions,
} from '../src/auth/index.js';

const silent = createLogger({ level: 'error', write: () => {} });
const AUD = 'bucketsync';
/** 32 bytes of HMAC key material, the minimum. */
const K32 = base64url.encode(new Uint8Array(32).fill(7));
const nowSeconds = () => Math.floor(Date.now() / 1000);

interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey | Uint8Array;
  publicJwk: JWK;
}

async function asymmetricKey(
  kid: string,
  alg: 'RS256' | 'ES256' | 'EdDSA',
): Promise<SigningKey & { publicKey: CryptoKey }> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg } };
}

async function hmacKey(kid: string): Promise<SigningKey> {
  const secret = (await exportJWK(await generateSecret('HS256', { extractable: true }))).k!;
  return {
    kid,
    alg: 'HS256',
    privateKey: base64url.decode(secret),
    publicJwk: { kty: 'oct', alg: 'HS256', kid, k: secret },
  };
}

interface SignOptions {
  claims?: Record<string, unknown>;
  header?: Record<string, unknown>;
  omit?: string[];
  iat?: number;
  exp?: number;
}

async function sign(key: SigningKey, options: SignOptions = {}): Promise<string> {
  const iat = options.iat ?? nowSeconds();
  const claims: Record<string, unknown> = {
    sub: 'user-1',
    aud: AUD,
    iat,
    exp: options.exp ?? iat + 600,
    ...options.claims,
  };
  for (const name of options.omit ?? []) delete claims[name];
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, ...options.header }).sign(key.privateKey);
}

function config(raw: Record<string, unknown>): AuthConfig {
  return decodeAuthConfig({ audience: [AUD], ...raw });
}

function configError(raw: unknown): ServiceError {
  try {
    decodeAuthConfig(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ServiceError);
    return error as ServiceError;
  }
  throw new Error('expected a config error');
}

function verifier(keys: JWK[], options: TokenVerifierOptions = {}, extra: Record<string, unknown> = {}): TokenVerifier {
  return new TokenVerifier(config({ jwks: { keys }, ...extra }), { logger: silent, ...options });
}

async function rejection(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ServiceError);
    return error as ServiceError;
  }
  throw new Error('expected a rejection');
}

let hs: SigningKey;
let rs: SigningKey & { publicKey: CryptoKey };
let es: SigningKey;
let ed: SigningKey;

beforeAll(async () => {
  hs = await hmacKey('dev');
  rs = await asymmetricKey('rsa1', 'RS256');
  es = await asymmetricKey('ec1', 'ES256');
  ed = await asymmetricKey('ed1', 'EdDSA');
});

describe('client_auth config codec', () => {
  it('normalises a string audience and jwks_uri to lists and defaults the lifetime cap', () => {
    const decoded = decodeAuthConfig({
      jwks: { keys: [{ kty: 'oct', alg: 'HS256', kid: 'dev', k: K32 }] },
      jwks_uri: 'https://issuer.example/.well-known/jwks.json',
      audience: 'bucketsync',
    });
    expect(decoded.audiences).toEqual(['bucketsync']);
    expect(decoded.jwksUris).toEqual(['https://issuer.example/.well-known/jwks.json']);
    expect(decoded.maxLifetimeSeconds).toBe(86_400);
    expect(decoded.issuers).toBeUndefined();
    expect(decoded.keys).toEqual([
      {
        kid: 'dev',
        kty: 'oct',
        alg: 'HS256',
        jwk: { kty: 'oct', k: K32 },
        source: 'client_auth.jwks',
      },
    ]);
  });

  it('names the full path of every bad field', () => {
    const error = (() => {
      try {
        decodeAuthConfig({
          jwks: {
            keys: [
              { kty: 'oct', kid: 'dev', k: 'not base64!' },
              { kty: 'RSA', n: 'abc', e: 'AQAB', d: 'secret' },
            ],
          },
          jwks_uri: ['ftp://nope'],
          max_lifetime_seconds: -5,
        });
      } catch (caught) {
        return caught as ServiceError;
      }
      throw new Error('expected a config error');
    })();
    expect(error.code).toBe('BS1001');
    expect(error.message).toContain('client_auth.audience: Required (got nothing)');
    expect(error.message).toContain('client_auth.jwks.keys[0].k: must be base64url');
    expect(error.message).toContain('client_auth.jwks.keys[1].d: is private key material');
    expect(error.message).toContain('client_auth.jwks_uri[0]: must be an http:// or https:// URL');
    expect(error.message).toContain('client_auth.max_lifetime_seconds: Number must be greater than 0');
    expect(error.message).not.toContain('secret');
  });

  it('rejects a section without keys, an unknown kty, a duplicate kid and a wrong audience type', () => {
    expect(() => decodeAuthConfig({ audience: [] })).toThrow(/client_auth\.audience: list at least one audience/);
    expect(() => decodeAuthConfig({ audience: 'a' })).toThrow(/client_auth\.jwks: configure at least one key/);
    expect(() => decodeAuthConfig({ audience: 5, jwks_uri: 'https://x.example' })).toThrow(
      /client_auth\.audience: expected a string or a list of strings \(got number 5\)/,
    );
    expect(() => decodeAuthConfig({ audience: 'a', jwks: { keys: [{ kty: 'XYZ' }] } })).toThrow(
      /client_auth\.jwks\.keys\[0\]\.kty: Invalid discriminator value/,
    );
    const dup = { kty: 'oct', kid: 'dev', k: K32 };
    expect(() => decodeAuthConfig({ audience: 'a', jwks: { keys: [dup, dup] } })).toThrow(
      /client_auth\.jwks\.keys\[1\]\.kid: duplicate kid "dev" \(also jwks\.keys\[0\]\)/,
    );
    expect(() => decodeAuthConfig(undefined)).toThrow(/client_auth: Required/);
    expect(() => decodeAuthConfig({ audience: 'a', jwks: { keys: [] }, extra: 1 })).toThrow(
      /client_auth\.extra: unknown key \(expected one of/,
    );
  });

  it('refuses an http:// JWKS URL unless client_auth.allow_http_jwks is set', () => {
    const error = configError({ audience: 'a', jwks_uri: ['https://ok.example/jwks', 'http://127.0.0.1:1/jwks'] });
    expect(error.message).toContain(
      'client_auth.jwks_uri[1]: is http://, so the keys could be replaced in transit; use https://, ' +
        'or set client_auth.allow_http_jwks: true',
    );
    expect(error.message).not.toContain('jwks_uri[0]');
    const allowed = decodeAuthConfig({ audience: 'a', jwks_uri: 'http://127.0.0.1:1/jwks', allow_http_jwks: true });
    expect(allowed.jwksUris).toEqual(['http://127.0.0.1:1/jwks']);
    expect(() => decodeAuthConfig({ audience: 'a', jwks_uri: 'http://x.example', allow_http_jwks: 'yes' })).toThrow(
      /client_auth\.allow_http_jwks: Expected boolean, received string/,
    );
  });

  it('refuses an HMAC key under 32 bytes, naming its path and how to make one, never its value', () => {
    const short = base64url.encode(new TextEncoder().encode('short-secret-of-20-b'));
    const error = configError({ audience: 'a', jwks: { keys: [{ kty: 'oct', alg: 'HS256', kid: 'dev', k: short }] } });
    expect(error.message).toContain(
      'client_auth.jwks.keys[0].k: is 20 bytes of key material; an HMAC key needs at least 32 random bytes ' +
        '(make one with: bucketsync-test-client generate-key)',
    );
    expect(error.message).not.toContain(short);
    const k31 = base64url.encode(new Uint8Array(31).fill(1));
    expect(() => decodeAuthConfig({ audience: 'a', jwks: { keys: [{ kty: 'oct', k: k31 }] } })).toThrow(
      /keys\[0\]\.k: is 31 bytes/,
    );
    expect(decodeAuthConfig({ audience: 'a', jwks: { keys: [{ kty: 'oct', k: K32 }] } }).keys).toHaveLength(1);
  });

  it('never echoes a secret given as a YAML number', () => {
    const error = configError({ audience: 'a', jwks: { keys: [{ kty: 'oct', kid: 'dev', k: 98765432 }] } });
    expect(error.message).toContain('client_auth.jwks.keys[0].k: Expected string, received number (got a number');
    expect(error.message).not.toContain('98765432');
  });

  it('normalises client_auth.issuer to a list', () => {
    const keys = { jwks: { keys: [hs.publicJwk] } };
    expect(decodeAuthConfig({ audience: 'a', issuer: 'https://id.example', ...keys }).issuers).toEqual([
      'https://id.example',
    ]);
    expect(decodeAuthConfig({ audience: 'a', issuer: ['x', 'y'], ...keys }).issuers).toEqual(['x', 'y']);
    expect(() => decodeAuthConfig({ audience: 'a', issuer: [], ...keys })).toThrow(
      /client_auth\.issuer: list at least one issuer/,
    );
  });

  it('uses the given source as the path prefix', () => {
    expect(() => decodeAuthConfig({ jwks_uri: 'https://x.example' }, 'services[0].client_auth')).toThrow(
      /services\[0\]\.client_auth\.audience: Required/,
    );
  });
});

describe('TokenVerifier: header', () => {
  it('rejects a missing or empty Authorization header with PSYNC_S2101', async () => {
    const v = verifier([hs.publicJwk]);
    for (const header of [undefined, '', '   ']) {
      const error = await rejection(v.verify(header));
      expect(error.code).toBe('PSYNC_S2101');
      expect(error.status).toBe(401);
    }
  });

  it('rejects another scheme, a bare token and a scheme without token with PSYNC_S2101, never echoing the token', async () => {
    const v = verifier([hs.publicJwk]);
    const token = await sign(hs);
    const basic = await rejection(v.verify('Basic dXNlcjpwYXNz'));
    expect(basic.code).toBe('PSYNC_S2101');
    expect(basic.message).toContain('scheme "Basic" is not supported');
    const bare = await rejection(v.verify(token));
    expect(bare.code).toBe('PSYNC_S2101');
    expect(bare.message).not.toContain(token.slice(0, 20));
    expect((await rejection(v.verify('Token'))).message).toContain('has the Token scheme but no token');
    const split = await rejection(v.verify(`Token ${token.slice(0, 30)} ${token.slice(30)}`));
    expect(split.code).toBe('PSYNC_S2101');
    expect(split.message).toContain('has 3 space-separated parts; send "Token <jwt>"');
  });

  it('accepts both the Token and the Bearer scheme, case-insensitively', async () => {
    const v = verifier([hs.publicJwk]);
    const token = await sign(hs);
    for (const header of [`Token ${token}`, `Bearer ${token}`, `bearer  ${token} `, `TOKEN ${token}`]) {
      expect((await v.verify(header)).userId).toBe('user-1');
    }
  });
});

describe('TokenVerifier: signature and keys', () => {
  it.each(['HS256', 'RS256', 'ES256', 'EdDSA'])('verifies a %s token against the static JWKS', async (alg) => {
    const key = { HS256: hs, RS256: rs, ES256: es, EdDSA: ed }[alg]!;
    const v = verifier([hs.publicJwk, rs.publicJwk, es.publicJwk, ed.publicJwk]);
    const iat = nowSeconds();
    const result = await v.verify(`Token ${await sign(key, { iat, claims: { role: 'admin' } })}`);
    expect(result).toEqual({
      userId: 'user-1',
      claims: { sub: 'user-1', aud: AUD, iat, exp: iat + 600, role: 'admin' },
      expiresAt: iat + 600,
      issuedAt: iat,
    });
  });

  it('rejects a bad signature with PSYNC_S2102', async () => {
    const v = verifier([hs.publicJwk]);
    const other = await hmacKey('dev'); // same kid, different secret
    const error = await rejection(v.verify(`Token ${await sign(other)}`));
    expect(error.code).toBe('PSYNC_S2102');
    expect(error.message).toContain('the signature does not verify with key "dev"');
  });

  it('rejects a tampered payload with PSYNC_S2102', async () => {
    const v = verifier([rs.publicJwk]);
    const [header, , signature] = (await sign(rs)).split('.');
    const forged = base64url.encode(
      JSON.stringify({ sub: 'admin', aud: AUD, iat: nowSeconds(), exp: nowSeconds() + 60 }),
    );
    expect((await rejection(v.verify(`Token ${header}.${forged}.${signature}`))).code).toBe('PSYNC_S2102');
  });

  it('rejects an unknown key id with PSYNC_S2104 saying how many keys there are, not their kids', async () => {
    const v = verifier([hs.publicJwk, rs.publicJwk]);
    const error = await rejection(v.verify(`Token ${await sign(hs, { header: { kid: 'k9' } })}`));
    expect(error.code).toBe('PSYNC_S2104');
    expect(error.message).toContain('unknown key id "k9"; 2 keys are configured, none with this kid');
    expect(error.message).not.toMatch(/\bdev\b|rsa1/);
  });

  it('does not name the configured kid to a token that sent none', async () => {
    const v = verifier([hs.publicJwk]);
    const other = await hmacKey('dev');
    const error = await rejection(v.verify(`Token ${await sign(other, { header: { kid: undefined } })}`));
    expect(error.code).toBe('PSYNC_S2102');
    expect(error.message).toContain('the signature does not verify with the configured key');
    expect(error.message).not.toContain('"dev"');
  });

  it('uses a single key without kid, but asks for a kid when several keys accept the alg', async () => {
    const noKid = { ...hs.publicJwk, kid: undefined };
    const single = new TokenVerifier(config({ jwks: { keys: [noKid] } }), { logger: silent });
    const token = await new SignJWT({ sub: 'u', aud: AUD })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(hs.privateKey);
    expect((await single.verify(`Token ${token}`)).userId).toBe('u');
    const other = await hmacKey('dev2');
    const error = await rejection(verifier([hs.publicJwk, other.publicJwk]).verify(`Token ${token}`));
    expect(error.code).toBe('PSYNC_S2104');
    expect(error.message).toContain('no kid and 2 configured keys accept alg "HS256"');
  });

  it('rejects alg confusion: an HS256 token whose HMAC secret is the RSA public key', async () => {
    const pem = await exportSPKI(rs.publicKey);
    const jwkBytes = JSON.stringify(rs.publicJwk);
    const rsaNoAlg = { ...rs.publicJwk, alg: undefined };
    for (const [keys, secret] of [
      [[rs.publicJwk], pem],
      [[rsaNoAlg], pem],
      [[rs.publicJwk, hs.publicJwk], jwkBytes],
    ] as const) {
      const forged: SigningKey = {
        kid: 'rsa1',
        alg: 'HS256',
        privateKey: new TextEncoder().encode(secret),
        publicJwk: {},
      };
      const v = verifier([...keys]);
      for (const header of [{ kid: 'rsa1' }, keys.length === 1 ? { kid: undefined } : { kid: 'rsa1' }]) {
        const error = await rejection(v.verify(`Token ${await sign(forged, { header })}`));
        expect(error.code).toBe('PSYNC_S2102');
        expect(error.message).toMatch(/alg "HS256" cannot be verified with (key "rsa1"|the configured key) .*\(RSA/);
      }
    }
  });

  it('rejects an RS256 token for an ES256 key and a key whose alg differs', async () => {
    const v = verifier([{ ...es.publicJwk, kid: 'rsa1' }]);
    expect((await rejection(v.verify(`Token ${await sign(rs)}`))).message).toContain(
      'alg "RS256" cannot be verified with key "rsa1" (EC, ES256)',
    );
    const pinned = verifier([{ ...hs.publicJwk, alg: 'HS512' }]);
    const error = await rejection(pinned.verify(`Token ${await sign(hs)}`));
    expect(error.code).toBe('PSYNC_S2102');
    expect(error.message).toContain('alg "HS256" does not match key "dev" (oct, HS512)');
  });

  it('never accepts alg "none"', async () => {
    const v = verifier([hs.publicJwk]);
    const unsigned = new UnsecuredJWT({ sub: 'admin', aud: AUD }).setIssuedAt().setExpirationTime('10m').encode();
    for (const token of [unsigned, unsigned.replace(/^[^.]+/, base64url.encode('{"alg":"NONE","kid":"dev"}'))]) {
      const error = await rejection(v.verify(`Token ${token}`));
      expect(error.code).toBe('PSYNC_S2102');
      expect(error.message).toContain('alg "none" (an unsigned token) is never accepted');
    }
  });

  it('rejects malformed tokens with PSYNC_S2102 without echoing them', async () => {
    const v = verifier([hs.publicJwk]);
    const valid = await sign(hs);
    const cases: Array<[string, string]> = [
      ['not-a-jwt', 'is not a JWT'],
      ['a.b', 'is not a JWT'],
      ['a.b.c.d.e', 'encrypted tokens (JWE) are not supported'],
      ['e30!.e30.sig', 'is not a JWT'],
      [`${base64url.encode('{nope')}.e30.c2ln`, 'header is not base64url-encoded JSON'],
      [`${base64url.encode('{"alg":"HS999"}')}.e30.c2ln`, 'alg "HS999" is not supported'],
      [valid.replace(/\.[^.]+$/, '.'), 'has no signature'],
      [`${valid.split('.')[0]}.${base64url.encode('[1,2]')}.${valid.split('.')[2]}`, 'signature does not verify'],
      ['x'.repeat(20_000), 'at most 16384 are accepted'],
    ];
    for (const [token, message] of cases) {
      const error = await rejection(v.verify(`Bearer ${token}`));
      expect(error.code, token.slice(0, 40)).toBe('PSYNC_S2102');
      expect(error.message).toContain(message);
      if (token.length > 12) expect(error.message).not.toContain(token);
    }
  });

  it('rejects a signed payload that is not a JSON object', async () => {
    const v = verifier([hs.publicJwk]);
    const { CompactSign } = await import('jose');
    const token = await new CompactSign(new TextEncoder().encode('[1,2]'))
      .setProtectedHeader({ alg: 'HS256', kid: 'dev' })
      .sign(hs.privateKey);
    expect((await rejection(v.verify(`Token ${token}`))).message).toContain('the payload is not a JSON object');
  });
});

describe('TokenVerifier: claims', () => {
  it('rejects an expired token with PSYNC_S2103 naming the time', async () => {
    const exp = Date.UTC(2026, 0, 1) / 1000;
    const v = verifier([hs.publicJwk], { now: () => (exp + 1) * 1000 });
    const error = await rejection(v.verify(`Token ${await sign(hs, { iat: exp - 600, exp })}`));
    expect(error.code).toBe('PSYNC_S2103');
    expect(error.message).toContain('token expired at 2026-01-01T00:00:00Z');
    expect(error.toResponseBody()).toEqual({
      error: { code: 'PSYNC_S2103', status: 401, description: error.message },
    });
  });

  it('rejects a token that is not valid yet (nbf or iat beyond the clock skew) with PSYNC_S2103', async () => {
    const now = nowSeconds();
    const v = verifier([hs.publicJwk], { clockSkewSeconds: 30 });
    const nbf = await rejection(v.verify(`Token ${await sign(hs, { claims: { nbf: now + 120 } })}`));
    expect(nbf.code).toBe('PSYNC_S2103');
    expect(nbf.message).toContain('token not valid before');
    const iat = await rejection(v.verify(`Token ${await sign(hs, { iat: now + 120 })}`));
    expect(iat.code).toBe('PSYNC_S2103');
    expect(iat.message).toContain('token issued in the future');
    // Within the skew: accepted.
    expect((await v.verify(`Token ${await sign(hs, { iat: now + 10, claims: { nbf: now + 10 } })}`)).userId).toBe(
      'user-1',
    );
  });

  it('rejects a wrong audience with PSYNC_S2105', async () => {
    const v = verifier([hs.publicJwk], {}, { audience: ['bucketsync', 'other'] });
    const error = await rejection(v.verify(`Token ${await sign(hs, { claims: { aud: 'x' } })}`));
    expect(error.code).toBe('PSYNC_S2105');
    expect(error.message).toContain('aud "x" is not one of: bucketsync, other');
    const list = await rejection(v.verify(`Token ${await sign(hs, { claims: { aud: ['x', 'y'] } })}`));
    expect(list.message).toContain('aud ["x", "y"] is not one of');
    const none = await rejection(v.verify(`Token ${await sign(hs, { omit: ['aud'] })}`));
    expect(none.message).toContain('no aud claim');
    expect((await v.verify(`Token ${await sign(hs, { claims: { aud: ['x', 'other'] } })}`)).userId).toBe('user-1');
  });

  it('checks iss against client_auth.issuer when set (PSYNC_S2105), and not at all when unset', async () => {
    const v = verifier([hs.publicJwk], {}, { issuer: ['https://id.example', 'https://id2.example'] });
    const none = await rejection(v.verify(`Token ${await sign(hs)}`));
    expect(none.code).toBe('PSYNC_S2105');
    expect(none.message).toContain(
      'the token has no iss claim; expected one of: https://id.example, https://id2.example (client_auth.issuer)',
    );
    const wrong = await rejection(v.verify(`Token ${await sign(hs, { claims: { iss: 'https://evil.example' } })}`));
    expect(wrong.code).toBe('PSYNC_S2105');
    expect(wrong.message).toContain('iss "https://evil.example" is not one of: https://id.example');
    const typed = await rejection(v.verify(`Token ${await sign(hs, { claims: { iss: ['https://id.example'] } })}`));
    expect(typed.message).toContain('iss ["https://id.example"] is not one of');
    expect((await v.verify(`Token ${await sign(hs, { claims: { iss: 'https://id2.example' } })}`)).userId).toBe(
      'user-1',
    );
    const unchecked = verifier([hs.publicJwk]);
    expect((await unchecked.verify(`Token ${await sign(hs, { claims: { iss: 'anyone' } })}`)).userId).toBe('user-1');
    expect((await unchecked.verify(`Token ${await sign(hs)}`)).userId).toBe('user-1');
  });

  it('rejects a token without sub (or iat, exp) with PSYNC_S2105', async () => {
    const v = verifier([hs.publicJwk]);
    const error = await rejection(v.verify(`Token ${await sign(hs, { omit: ['sub'] })}`));
    expect(error.code).toBe('PSYNC_S2105');
    expect(error.message).toContain('the token has no sub claim');
    expect((await rejection(v.verify(`Token ${await sign(hs, { omit: ['iat', 'exp'] })}`))).message).toContain(
      'no iat, exp claims',
    );
    expect((await rejection(v.verify(`Token ${await sign(hs, { claims: { sub: 42 } })}`))).message).toContain(
      'sub must be a non-empty string, got 42',
    );
    expect((await rejection(v.verify(`Token ${await sign(hs, { claims: { exp: 'soon' } })}`))).code).toBe(
      'PSYNC_S2105',
    );
  });

  it('rejects a lifetime over the cap with PSYNC_S2105', async () => {
    const v = verifier([hs.publicJwk], {}, { max_lifetime_seconds: 3600 });
    const iat = nowSeconds();
    const error = await rejection(v.verify(`Token ${await sign(hs, { iat, exp: iat + 7200 })}`));
    expect(error.code).toBe('PSYNC_S2105');
    expect(error.message).toContain('token lifetime 7200s (exp - iat) is over the cap of 3600s');
    expect((await v.verify(`Token ${await sign(hs, { iat, exp: iat + 3600 })}`)).expiresAt).toBe(iat + 3600);
  });
});

describe('TokenVerifier: JWKS URL', () => {
  interface JwksServer {
    url: string;
    requests: number;
    keys: JWK[];
    status: number;
    hang: boolean;
    /** When set, answers every request with this handler instead of the keys. */
    respond?: (res: ServerResponse) => void;
    server: Server;
  }
  const servers: JwksServer[] = [];

  async function jwksServer(keys: JWK[]): Promise<JwksServer> {
    const state = { requests: 0, keys, status: 200, hang: false } as JwksServer;
    state.server = createServer((req, res) => {
      state.requests += 1;
      if (state.hang) return;
      if (state.respond) return state.respond(res);
      res.writeHead(state.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(state.status === 200 ? { keys: state.keys } : { error: 'down' }));
    });
    await new Promise<void>((resolve) => state.server.listen(0, '127.0.0.1', resolve));
    state.url = `http://127.0.0.1:${(state.server.address() as AddressInfo).port}/.well-known/jwks.json`;
    servers.push(state);
    return state;
  }

  afterEach(async () => {
    for (const s of servers.splice(0)) {
      s.server.closeAllConnections();
      await new Promise((resolve) => s.server.close(resolve));
    }
  });

  function remoteVerifier(uri: string, clock: { ms: number }, options: TokenVerifierOptions = {}) {
    return new TokenVerifier(config({ jwks_uri: uri, allow_http_jwks: true }), {
      logger: silent,
      now: () => clock.ms,
      jwksMinRefreshIntervalSeconds: 30,
      jwksRefreshIntervalSeconds: 300,
      ...options,
    });
  }

  it('fetches the JWKS once and caches it', async () => {
    const server = await jwksServer([rs.publicJwk, es.publicJwk, { kty: 'oct', k: 'AAAA', use: 'enc' }]);
    const clock = { ms: Date.now() };
    const v = remoteVerifier(server.url, clock);
    expect(server.requests).toBe(0); // lazy: nothing fetched before the first token
    for (let i = 0; i < 5; i++) {
      expect((await v.verify(`Bearer ${await sign(i % 2 ? rs : es)}`)).userId).toBe('user-1');
    }
    const concurrent = await Promise.all([sign(rs), sign(es)].map(async (t) => v.verify(`Token ${await t}`)));
    expect(concurrent).toHaveLength(2);
    expect(server.requests).toBe(1);
  });

  it('refetches periodically once the keys are older than the refresh interval', async () => {
    const server = await jwksServer([rs.publicJwk]);
    const clock = { ms: Date.now() };
    const v = remoteVerifier(server.url, clock);
    await v.verify(`Token ${await sign(rs)}`);
    clock.ms += 299_000;
    await v.verify(`Token ${await sign(rs)}`);
    expect(server.requests).toBe(1);
    clock.ms += 2_000;
    await v.verify(`Token ${await sign(rs, { iat: Math.floor(clock.ms / 1000) })}`);
    expect(server.requests).toBe(2);
  });

  it('refetches on an unknown kid, at most once per minimum interval', async () => {
    const server = await jwksServer([rs.publicJwk]);
    const clock = { ms: Date.now() };
    const v = remoteVerifier(server.url, clock);
    await v.verify(`Token ${await sign(rs)}`);
    expect(server.requests).toBe(1);

    // The issuer rotates in a new key; the first token signed with it triggers one refetch.
    clock.ms += 31_000;
    server.keys = [rs.publicJwk, es.publicJwk];
    expect((await v.verify(`Token ${await sign(es)}`)).userId).toBe('user-1');
    expect(server.requests).toBe(2);

    // A flood of made-up kids within the interval fetches nothing more.
    const bogus = await Promise.all(
      Array.from({ length: 20 }, async (_, i) =>
        rejection(v.verify(`Token ${await sign(es, { header: { kid: `k${i}` } })}`)),
      ),
    );
    expect(bogus.every((e) => e.code === 'PSYNC_S2104')).toBe(true);
    expect(bogus[0]!.message).toContain('unknown key id "k0"; 2 keys are configured, none with this kid');
    expect(bogus[0]!.message).not.toMatch(/rsa1|ec1/);
    expect(server.requests).toBe(2);

    clock.ms += 31_000;
    await rejection(v.verify(`Token ${await sign(es, { header: { kid: 'k99' } })}`));
    expect(server.requests).toBe(3);
  });

  it('answers PSYNC_S2106 when the JWKS URL is down, without retrying on every token', async () => {
    const server = await jwksServer([rs.publicJwk]);
    server.status = 503;
    const clock = { ms: Date.now() };
    const v = remoteVerifier(server.url, clock);
    const error = await rejection(v.verify(`Token ${await sign(rs)}`));
    expect(error.code).toBe('PSYNC_S2106');
    expect(error.status).toBe(401);
    expect(error.retryable).toBe(true);
    expect(error.message).toContain(`JWKS from ${server.url}: HTTP 503`);
    expect((await rejection(v.verify(`Token ${await sign(rs)}`))).code).toBe('PSYNC_S2106');
    expect(server.requests).toBe(1);

    // Back up: the next attempt after the interval succeeds.
    server.status = 200;
    clock.ms += 31_000;
    expect((await v.verify(`Token ${await sign(rs)}`)).userId).toBe('user-1');
    expect(server.requests).toBe(2);
  });

  it('answers PSYNC_S2106 for a refused connection and for a timeout', async () => {
    const closed = await jwksServer([]);
    const url = closed.url;
    closed.server.close();
    servers.splice(servers.indexOf(closed), 1);
    const refused = await rejection(remoteVerifier(url, { ms: Date.now() }).verify(`Token ${await sign(rs)}`));
    expect(refused.code).toBe('PSYNC_S2106');
    expect(refused.message).toContain('request failed (ECONNREFUSED)');

    const hanging = await jwksServer([rs.publicJwk]);
    hanging.hang = true;
    const v = remoteVerifier(hanging.url, { ms: Date.now() }, { jwksTimeoutMs: 200 });
    const timedOut = await rejection(v.verify(`Token ${await sign(rs)}`));
    expect(timedOut.code).toBe('PSYNC_S2106');
    expect(timedOut.message).toContain('no answer within 200 ms');
  });

  it('keeps serving the cached keys when a refresh fails', async () => {
    const server = await jwksServer([rs.publicJwk]);
    const clock = { ms: Date.now() };
    const v = remoteVerifier(server.url, clock);
    await v.verify(`Token ${await sign(rs)}`);
    server.status = 500;
    clock.ms += 301_000;
    expect((await v.verify(`Token ${await sign(rs, { iat: Math.floor(clock.ms / 1000) })}`)).userId).toBe('user-1');
    expect(server.requests).toBe(2);
  });

  it('combines static keys with the JWKS URL, static first', async () => {
    const server = await jwksServer([rs.publicJwk]);
    const v = new TokenVerifier(
      config({ jwks: { keys: [hs.publicJwk] }, jwks_uri: [server.url], allow_http_jwks: true }),
      { logger: silent },
    );
    expect((await v.verify(`Token ${await sign(hs)}`)).userId).toBe('user-1');
    expect((await v.verify(`Token ${await sign(rs)}`)).userId).toBe('user-1');
    expect((await rejection(v.verify(`Token ${await sign(rs, { header: { kid: 'zz' } })}`))).message).toContain(
      '2 keys are configured',
    );
  });

  it('refuses a redirect (PSYNC_S2106 naming the URL) and never fetches its target', async () => {
    const target = await jwksServer([rs.publicJwk]);
    const redirecting = await jwksServer([]);
    redirecting.respond = (res) => {
      res.writeHead(302, { location: `${target.url}?sig=secret` });
      res.end();
    };
    const error = await rejection(
      remoteVerifier(redirecting.url, { ms: Date.now() }).verify(`Token ${await sign(rs)}`),
    );
    expect(error.code).toBe('PSYNC_S2106');
    expect(error.message).toContain(
      `JWKS from ${redirecting.url}: answered with a redirect (HTTP 302 to ${target.url}); redirects are not followed`,
    );
    expect(error.message).not.toContain('sig=secret');
    expect(target.requests).toBe(0);
  });

  it('refuses a JWKS larger than the limit, declared or streamed, without reading it all', async () => {
    const declared = await jwksServer([]);
    declared.respond = (res) => {
      const padding = 'x'.repeat(2 * 1024 * 1024);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [rs.publicJwk], padding }));
    };
    const big = await rejection(remoteVerifier(declared.url, { ms: Date.now() }).verify(`Token ${await sign(rs)}`));
    expect(big.code).toBe('PSYNC_S2106');
    expect(big.message).toContain('the response is larger than 1048576 bytes');

    // No content-length: an endless chunked body is cut off once past the limit.
    let written = 0;
    const streamed = await jwksServer([]);
    streamed.respond = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"keys":[],"padding":"');
      const chunk = 'y'.repeat(16 * 1024);
      const pump = () => {
        while (!res.destroyed && written < 64 * 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      pump();
    };
    const v = remoteVerifier(streamed.url, { ms: Date.now() }, { jwksMaxBytes: 256 * 1024 });
    const endless = await rejection(v.verify(`Token ${await sign(rs)}`));
    expect(endless.code).toBe('PSYNC_S2106');
    expect(endless.message).toContain('the response is larger than 262144 bytes');
    expect(written).toBeLessThan(16 * 1024 * 1024);

    // Within the limit: accepted.
    const small = await jwksServer([rs.publicJwk]);
    const ok = remoteVerifier(small.url, { ms: Date.now() }, { jwksMaxBytes: 4096 });
    expect((await ok.verify(`Token ${await sign(rs)}`)).userId).toBe('user-1');
  });
});

describe('TokenVerifier: failed authentications', () => {
  it('counts failures by code and logs at most 5 lines per code per 30 s, then how many were not logged', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger({ level: 'info', format: 'json', write: (l) => lines.push(JSON.parse(l)) });
    const clock = { ms: Date.now() };
    const v = new TokenVerifier(config({ jwks: { keys: [hs.publicJwk] } }), { logger, now: () => clock.ms });
    const forged = await sign(await hmacKey('dev'));
    const expired = await sign(hs, { iat: nowSeconds() - 1200, exp: nowSeconds() - 600 });
    for (let i = 0; i < 20; i++) await rejection(v.verify(`Token ${forged}`));
    for (let i = 0; i < 3; i++) await rejection(v.verify(`Token ${expired}`));
    await rejection(v.verify(undefined));
    await v.verify(`Token ${await sign(hs)}`); // a success is not counted
    expect(v.failures()).toEqual({ PSYNC_S2102: 20, PSYNC_S2103: 3, PSYNC_S2101: 1 });

    const byCode = (code: string) =>
      lines.filter((l) => l.code === code && l.message === 'client authentication failed');
    expect(byCode('PSYNC_S2102')).toHaveLength(5);
    expect(byCode('PSYNC_S2103')).toHaveLength(3);
    expect(byCode('PSYNC_S2102')[0]).toMatchObject({
      level: 'warn',
      reason: 'the signature does not verify with key "dev"',
    });
    expect(byCode('PSYNC_S2102')[4]!.note).toBe('further PSYNC_S2102 failures in the next 30s are counted, not logged');

    // After the window, the next failure first reports what was not logged, then is logged itself.
    clock.ms += 30_000;
    await rejection(v.verify(`Token ${await sign(hs, { iat: Math.floor(clock.ms / 1000), header: { kid: 'k1' } })}`));
    expect(lines.at(-2)).toMatchObject({
      message: '15 more client authentication failures (PSYNC_S2102) were not logged',
      notLogged: 15,
    });
    expect(lines.at(-1)).toMatchObject({ code: 'PSYNC_S2104' });
    await rejection(v.verify(`Token ${forged}`));
    expect(byCode('PSYNC_S2102')).toHaveLength(6); // a new window
    expect(v.failures()).toMatchObject({ PSYNC_S2102: 21, PSYNC_S2104: 1 });

    const text = lines.map((l) => JSON.stringify(l)).join('\n');
    for (const token of [forged, expired]) {
      expect(text).not.toContain(token);
      expect(text).not.toContain(token.split('.')[2]);
    }
  });
});

describe('signDevToken', () => {
  it('mints an HS256 token the verifier accepts, with kid and extra claims', async () => {
    const v = verifier([hs.publicJwk]);
    const token = await signDevToken({
      key: hs.publicJwk,
      sub: 'alice',
      audience: AUD,
      expiresInSeconds: 3600,
      claims: { team: 't1' },
    });
    const header = JSON.parse(new TextDecoder().decode(base64url.decode(token.split('.')[0]!)));
    expect(header).toEqual({ alg: 'HS256', typ: 'JWT', kid: 'dev' });
    const result = await v.verify(`Token ${token}`);
    expect(result.userId).toBe('alice');
    expect(result.claims.team).toBe('t1');
    expect(result.expiresAt - result.issuedAt).toBe(3600);
  });

  it('mints expired tokens with issuedAt and refuses non-HS256 keys', async () => {
    const v = verifier([hs.publicJwk]);
    const expired = await signDevToken({
      key: hs.publicJwk,
      sub: 'alice',
      audience: [AUD],
      expiresInSeconds: 60,
      issuedAt: nowSeconds() - 120,
    });
    expect((await rejection(v.verify(`Token ${expired}`))).code).toBe('PSYNC_S2103');
    await expect(signDevToken({ key: rs.publicJwk, sub: 'a', audience: AUD, expiresInSeconds: 60 })).rejects.toThrow(
      /HS256 oct key.*got kty "RSA"/,
    );
  });
});
