/**
 * Reads what `generate-token` needs from a service config file: the HS256 keys of
 * `client_auth.jwks.keys` and the audiences of `client_auth.audience`. `!env NAME` tags are
 * resolved like the service does, so a config that keeps its secret in the environment works.
 */
import { readFileSync } from 'node:fs';
import { parseDocument, type ScalarTag } from 'yaml';

/** One symmetric key from the config's static JWKS. */
export interface Hs256Key {
  /** The JWK's `kid`, if it has one; it goes into the token header. */
  kid: string | undefined;
  /** The secret, decoded from the JWK's base64url `k`. */
  secret: Buffer;
}

/** The parts of `client_auth` a token minter needs. */
export interface ClientAuthConfig {
  /** `kty: oct` keys whose `alg` is HS256 (or unset), in file order. */
  hs256Keys: Hs256Key[];
  /** Key ids of every key in the JWKS, for error messages. */
  allKids: string[];
  /** `client_auth.audience`, a list even when the file has one string. */
  audiences: string[];
}

/** The config file is unreadable or lacks what is needed; the message names the file and key. */
export class ClientAuthConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClientAuthConfigError';
  }
}

function envTag(missing: string[]): ScalarTag {
  return {
    tag: '!env',
    resolve(name: string) {
      const value = process.env[name.trim()];
      if (value === undefined) missing.push(name.trim());
      return value ?? '';
    },
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses the `client_auth` section of a service config's text (YAML or JSON). */
export function parseClientAuthConfig(text: string, file: string): ClientAuthConfig {
  const missing: string[] = [];
  const doc = parseDocument(text, { customTags: [envTag(missing)] });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new ClientAuthConfigError(`${file}: line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`);
  }
  const raw: unknown = doc.toJS();
  const clientAuth = isRecord(raw) ? raw.client_auth : undefined;
  if (!isRecord(clientAuth)) throw new ClientAuthConfigError(`${file}: client_auth is missing`);
  const jwks = clientAuth.jwks;
  const keys = isRecord(jwks) ? jwks.keys : undefined;
  if (!Array.isArray(keys)) throw new ClientAuthConfigError(`${file}: client_auth.jwks.keys is missing or not a list`);

  const hs256Keys: Hs256Key[] = [];
  const allKids: string[] = [];
  keys.forEach((key: unknown, i) => {
    if (!isRecord(key)) return;
    if (typeof key.kid === 'string') allKids.push(key.kid);
    if (key.kty !== 'oct' || (key.alg !== undefined && key.alg !== 'HS256')) return;
    if (typeof key.k !== 'string' || key.k === '') {
      const env = missing.length > 0 ? ` (environment variable ${missing.join(', ')} is not set)` : '';
      throw new ClientAuthConfigError(`${file}: client_auth.jwks.keys[${i}].k is empty${env}`);
    }
    if (!/^[A-Za-z0-9_-]+={0,2}$/.test(key.k)) {
      throw new ClientAuthConfigError(`${file}: client_auth.jwks.keys[${i}].k is not base64url`);
    }
    hs256Keys.push({ kid: typeof key.kid === 'string' ? key.kid : undefined, secret: Buffer.from(key.k, 'base64url') });
  });

  const audience = clientAuth.audience;
  const audiences =
    typeof audience === 'string' ? [audience] : Array.isArray(audience) ? audience.map((a) => String(a)) : [];
  return { hs256Keys, allKids, audiences };
}

/** Reads and parses the config file's `client_auth` section. */
export function loadClientAuthConfig(file: string): ClientAuthConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ClientAuthConfigError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  return parseClientAuthConfig(text, file);
}
