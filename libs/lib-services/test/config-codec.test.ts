import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { decodeConfig, isSecretConfigPath } from '../src/config-codec.js';

function decodeError(schema: z.ZodTypeAny, input: unknown): string {
  try {
    decodeConfig(schema, input, 'config.yaml');
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected a config error');
}

describe('config errors never echo secrets', () => {
  const schema = z.object({
    client_auth: z.object({ jwks: z.object({ keys: z.array(z.object({ kty: z.string(), k: z.string() })) }) }),
    storage: z.object({ password: z.string(), port: z.string() }),
    api: z.object({ tokens: z.array(z.string()), mode: z.enum(['a', 'b']) }),
    supabase_jwt_secret: z.string(),
  });
  const input = {
    client_auth: { jwks: { keys: [{ kty: 'oct', k: 123456 }] } },
    storage: { password: 4242, port: 5432 },
    api: { tokens: [987654], mode: 'c' },
    supabase_jwt_secret: 777777,
  };

  it('prints the type only for a secret given as a YAML number', () => {
    const message = decodeError(schema, input);
    expect(message).toContain(
      'client_auth.jwks.keys[0].k: Expected string, received number (got a number (not shown: a secret))',
    );
    expect(message).toContain('storage.password: Expected string, received number (got a number (not shown');
    expect(message).toContain('api.tokens[0]: Expected string, received number (got a number (not shown');
    expect(message).toContain('supabase_jwt_secret: Expected string, received number (got a number (not shown');
    for (const secret of ['123456', '4242', '987654', '777777']) expect(message).not.toContain(secret);
  });

  it('still shows values that are not secrets', () => {
    const message = decodeError(schema, input);
    expect(message).toContain('storage.port: Expected string, received number (got number 5432)');
    expect(message).toContain("api.mode: Invalid enum value. Expected 'a' | 'b', received 'c'");
  });

  it('hides the received value of an enum at a secret path', () => {
    const message = decodeError(z.object({ secret_mode: z.enum(['x']) }), { secret_mode: 'hunter2' });
    expect(message).toContain('secret_mode: Invalid enum value');
    expect(message).not.toContain('hunter2');
  });

  it('names secret paths by their nearest key', () => {
    expect(isSecretConfigPath(['client_auth', 'jwks', 'keys', 0, 'k'])).toBe(true);
    expect(isSecretConfigPath(['api', 'tokens', 3])).toBe(true);
    expect(isSecretConfigPath(['storage', 'client_private_key'])).toBe(true);
    expect(isSecretConfigPath(['client_auth', 'jwks', 'keys', 0, 'kid'])).toBe(false);
    expect(isSecretConfigPath(['storage', 'uri'])).toBe(false);
    expect(isSecretConfigPath([])).toBe(false);
  });
});
