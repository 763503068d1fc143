import { describe, expect, it } from 'vitest';
import { decodePostgresConfig } from '../src/postgres-config.js';

const base = { type: 'postgresql', database: 'app', username: 'u', password: 'p' };

describe('Postgres source config', () => {
  it('keeps an IPv6 host (it used to become localhost), bracketed or not', () => {
    expect(new URL(decodePostgresConfig({ ...base, hostname: '2001:db8::1' }).uri).hostname).toBe('[2001:db8::1]');
    expect(new URL(decodePostgresConfig({ ...base, hostname: '[::1]' }).uri).hostname).toBe('[::1]');
    expect(new URL(decodePostgresConfig({ ...base, hostname: 'db.internal' }).uri).hostname).toBe('db.internal');
    expect(new URL(decodePostgresConfig({ ...base, hostname: 'localhost' }).uri).hostname).toBe('localhost');
  });

  it('refuses a host that is neither a name nor an address, naming the field', () => {
    expect(() => decodePostgresConfig({ ...base, hostname: 'bad host/x' })).toThrow(
      'replication.connections.hostname: "bad host/x" is not a host name or address',
    );
  });
});
