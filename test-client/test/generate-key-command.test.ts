import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseClientAuthConfig } from '../src/client-auth-config.js';

const bin = path.resolve(import.meta.dirname, '../bin/bucketsync-test-client');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(bin, args, (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }));
  });
}

describe('bucketsync-test-client generate-key (built CLI)', () => {
  it('prints a one-line HS256 JWK with a 32-byte base64url secret, new on every run', async () => {
    const [first, second] = await Promise.all([run(['generate-key']), run(['generate-key'])]);
    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(first.stdout.trim().split('\n')).toHaveLength(1);
    const jwk = JSON.parse(first.stdout) as Record<string, string>;
    expect(Object.keys(jwk).sort()).toEqual(['alg', 'k', 'kid', 'kty']);
    expect(jwk).toMatchObject({ kty: 'oct', alg: 'HS256' });
    expect(jwk.kid).toMatch(/^hs256-[0-9a-f]{8}$/);
    expect(jwk.k).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(jwk.k!, 'base64url')).toHaveLength(32);
    const other = JSON.parse(second.stdout) as Record<string, string>;
    expect(other.k).not.toBe(jwk.k);
    expect(other.kid).not.toBe(jwk.kid);
  });

  it('--format config prints a client_auth section that generate-token can sign with', async () => {
    const result = await run(['generate-key', '--format', 'config', '--kid', 'main: key', '--aud', 'my-app']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout.startsWith('client_auth:\n')).toBe(true);

    // The section parses as the service's client_auth, with the awkward kid kept verbatim.
    const parsed = parseClientAuthConfig(result.stdout, 'config.yaml');
    expect(parsed.audiences).toEqual(['my-app']);
    expect(parsed.hs256Keys).toHaveLength(1);
    expect(parsed.hs256Keys[0]!.kid).toBe('main: key');
    expect(parsed.hs256Keys[0]!.secret).toHaveLength(32);

    // Appended to a config, it is what generate-token signs with.
    const dir = mkdtempSync(path.join(tmpdir(), 'test-client-key-'));
    const config = path.join(dir, 'config.yaml');
    writeFileSync(config, `port: 8080\n${result.stdout}`);
    const token = await run(['generate-token', '--config', config, '--sub', 'alice']);
    expect(token).toMatchObject({ code: 0, stderr: '' });
    const [header, payload, signature] = token.stdout.trim().split('.');
    const expected = createHmac('sha256', parsed.hs256Keys[0]!.secret).update(`${header}.${payload}`).digest();
    expect(Buffer.from(signature!, 'base64url').equals(expected)).toBe(true);
    expect(JSON.parse(Buffer.from(header!, 'base64url').toString())).toMatchObject({ kid: 'main: key' });
    expect(JSON.parse(Buffer.from(payload!, 'base64url').toString())).toMatchObject({ sub: 'alice', aud: 'my-app' });
  });

  it.each([
    [['--format', 'pem'], '--format must be jwk or config, got "pem"'],
    [['--aud', 'x'], '--aud only applies to --format config'],
    [['--kid', ''], '--kid must not be empty'],
    [['--size', '64'], 'unknown option --size'],
  ])('rejects %j with exit code 2 and the usage', async (args, message) => {
    const result = await run(['generate-key', ...args]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(message);
    expect(result.stderr).toContain('Usage: bucketsync-test-client generate-key');
  });
});
