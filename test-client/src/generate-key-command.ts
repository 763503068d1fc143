/**
 * `generate-key`: prints a fresh HS256 signing key as a JWK, or as the `client_auth` section
 * of a service config holding it, so a first setup needs no other tool to make a secret.
 */
import { randomBytes } from 'node:crypto';
import { parseCommandArguments, runCommand, UsageError } from './command-arguments.js';

export const GENERATE_KEY_USAGE =
  'bucketsync-test-client generate-key [--format jwk|config, default jwk] [--kid <key id, default hs256-<random>>] [--aud <audience for --format config, default bucketsync>]';

/** A symmetric JWK as `client_auth.jwks.keys` takes it. */
export interface Hs256Jwk {
  kty: 'oct';
  alg: 'HS256';
  kid: string;
  /** 32 random bytes, base64url without padding (docs/auth.md asks for at least 32). */
  k: string;
}

/** A new key with 32 random bytes; `kid` defaults to `hs256-` and 8 random hex digits. */
export function newHs256Jwk(kid?: string): Hs256Jwk {
  return {
    kty: 'oct',
    alg: 'HS256',
    kid: kid ?? `hs256-${randomBytes(4).toString('hex')}`,
    k: randomBytes(32).toString('base64url'),
  };
}

/**
 * The `client_auth` section of a service config with this key and one audience, as YAML.
 * Values are JSON-quoted, which YAML reads as plain strings whatever characters they hold.
 */
export function clientAuthSection(jwk: Hs256Jwk, audience: string): string {
  const q = (value: string) => JSON.stringify(value);
  return [
    'client_auth:',
    '  jwks:',
    '    keys:',
    `      - { kty: oct, alg: HS256, kid: ${q(jwk.kid)}, k: ${q(jwk.k)} }`,
    `  audience: [${q(audience)}]`,
    '',
  ].join('\n');
}

/** Runs the command; returns the exit code. */
export function generateKeyCommand(args: string[]): Promise<number> {
  return runCommand('generate-key', GENERATE_KEY_USAGE, () => {
    const parsed = parseCommandArguments(args, { options: ['format', 'kid', 'aud'] });
    const format = parsed.options.get('format') ?? 'jwk';
    if (format !== 'jwk' && format !== 'config') {
      throw new UsageError(`--format must be jwk or config, got "${format}"`);
    }
    const kid = parsed.options.get('kid');
    if (kid === '') throw new UsageError('--kid must not be empty');
    const audience = parsed.options.get('aud');
    if (audience !== undefined && format !== 'config') throw new UsageError('--aud only applies to --format config');
    if (audience === '') throw new UsageError('--aud must not be empty');
    const jwk = newHs256Jwk(kid);
    process.stdout.write(
      format === 'jwk' ? `${JSON.stringify(jwk)}\n` : clientAuthSection(jwk, audience ?? 'bucketsync'),
    );
    return 0;
  });
}
