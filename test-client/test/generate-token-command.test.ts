import { execFile } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const bin = path.resolve(import.meta.dirname, '../bin/bucketsync-test-client');
const devSecret = Buffer.from('a development secret of 32 bytes');
const otherSecret = Buffer.from('another secret');

const dir = mkdtempSync(path.join(tmpdir(), 'test-client-token-'));
const config = path.join(dir, 'config.yaml');
writeFileSync(
  config,
  [
    'client_auth:',
    '  jwks:',
    '    keys:',
    '      - { kty: RSA, kid: rsa, n: AQAB, e: AQAB }',
    `      - { kty: oct, alg: HS256, kid: dev, k: !env TEST_CLIENT_DEV_KEY }`,
    `      - { kty: oct, alg: HS256, kid: other, k: ${otherSecret.toString('base64url')} }`,
    '  audience: [bucketsync, other-audience]',
    'port: 8080',
    '',
  ].join('\n'),
);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      bin,
      ['generate-token', '--config', config, ...args],
      { env: { ...process.env, TEST_CLIENT_DEV_KEY: devSecret.toString('base64url'), ...env } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
    );
  });
}

/** Decodes a compact JWT and checks its HS256 signature with node:crypto. */
function decode(token: string, secret: Buffer) {
  const [header, payload, signature] = token.split('.');
  const expected = createHmac('sha256', secret).update(`${header}.${payload}`).digest();
  const signatureValid = timingSafeEqual(expected, Buffer.from(signature!, 'base64url'));
  const json = (part: string | undefined) => JSON.parse(Buffer.from(part!, 'base64url').toString('utf8')) as unknown;
  return { header: json(header), payload: json(payload) as Record<string, number | string>, signatureValid };
}

describe('bucketsync-test-client generate-token (built CLI)', () => {
  it("signs an HS256 token with the config's first oct key (read through !env) and first audience", async () => {
    const before = Math.floor(Date.now() / 1000);
    const result = await run(['--sub', 'user-1']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const token = decode(result.stdout.trim(), devSecret);
    expect(token.signatureValid).toBe(true);
    expect(token.header).toEqual({ alg: 'HS256', typ: 'JWT', kid: 'dev' });
    expect(token.payload).toMatchObject({ sub: 'user-1', aud: 'bucketsync' });
    expect(token.payload.iat).toBeGreaterThanOrEqual(before);
    expect(Number(token.payload.exp) - Number(token.payload.iat)).toBe(3600);
  });

  it('uses the key named by --kid, --aud and --expires-in', async () => {
    const result = await run(['--sub', 'u2', '--kid', 'other', '--aud', 'custom', '--expires-in', '60']);
    expect(result.code).toBe(0);
    const token = decode(result.stdout.trim(), otherSecret);
    expect(token.signatureValid).toBe(true);
    expect(decode(result.stdout.trim(), devSecret).signatureValid).toBe(false);
    expect(token.header).toMatchObject({ kid: 'other' });
    expect(token.payload).toMatchObject({ sub: 'u2', aud: 'custom' });
    expect(Number(token.payload.exp) - Number(token.payload.iat)).toBe(60);
  });

  it('exits 2 for an unknown --kid or a missing --sub, and 1 when the !env variable is unset', async () => {
    const unknownKid = await run(['--sub', 'u', '--kid', 'rsa']);
    expect(unknownKid.code).toBe(2);
    expect(unknownKid.stderr).toContain('has no HS256 (kty: oct) key with kid "rsa" (key ids: rsa, dev, other)');

    const noSub = await run([]);
    expect(noSub.code).toBe(2);
    expect(noSub.stderr).toContain('--sub is required');

    const { TEST_CLIENT_DEV_KEY: _unset, ...env } = process.env;
    const missingEnv = await new Promise<Run>((resolve) =>
      execFile(bin, ['generate-token', '--config', config, '--sub', 'u'], { env }, (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
      ),
    );
    expect(missingEnv.code).toBe(1);
    expect(missingEnv.stderr).toContain(
      'client_auth.jwks.keys[1].k is empty (environment variable TEST_CLIENT_DEV_KEY is not set)',
    );
  });
});
