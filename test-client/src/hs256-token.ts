/**
 * Mints an HS256 JWT (RFC 7519) with node:crypto: base64url header and payload, HMAC-SHA256
 * over `header.payload`. Only for development and tests: the secret comes from the service
 * config, so anyone holding the config can mint a token for any user.
 */
import { createHmac } from 'node:crypto';

/** What goes into a development token. */
export interface Hs256TokenOptions {
  secret: Buffer;
  /** Goes into the header so the service can pick the key; left out when undefined. */
  kid?: string | undefined;
  /** The user id (`sub` claim). */
  subject: string;
  /** `aud` claim; left out when undefined. */
  audience?: string | undefined;
  /** Lifetime in seconds from `now`. */
  expiresIn: number;
  /** Unix seconds; defaults to the current time. */
  now?: number;
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** Returns the signed compact JWT. */
export function signHs256Token(options: Hs256TokenOptions): string {
  const iat = options.now ?? Math.floor(Date.now() / 1000);
  const header = { alg: 'HS256', typ: 'JWT', ...(options.kid === undefined ? {} : { kid: options.kid }) };
  const payload = {
    sub: options.subject,
    ...(options.audience === undefined ? {} : { aud: options.audience }),
    iat,
    exp: iat + Math.floor(options.expiresIn),
  };
  const signingInput = `${base64url(header)}.${base64url(payload)}`;
  const signature = createHmac('sha256', options.secret).update(signingInput).digest('base64url');
  return `${signingInput}.${signature}`;
}
