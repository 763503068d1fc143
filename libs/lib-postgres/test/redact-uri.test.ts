import { describe, expect, it } from 'vitest';
import { redactUri } from '../src/index.js';

describe('redactUri', () => {
  it('hides the password of the user part and of secret query parameters, keeping the rest', () => {
    expect(redactUri('postgres://app:s3cret@db:5432/app')).toBe('postgres://app:***@db:5432/app');
    const redacted = redactUri('postgres://app@db/app?password=s3cret&sslmode=require&sslpassword=k3y&sslkey=/x');
    expect(redacted).not.toContain('s3cret');
    expect(redacted).not.toContain('k3y');
    expect(redacted).toContain('sslmode=require');
    expect(redactUri('not a uri')).toBe('(unparseable connection URI)');
  });
});
