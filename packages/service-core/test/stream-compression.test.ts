import { describe, expect, it } from 'vitest';
import { acceptsGzip, chooseStreamCompression } from '../src/http/stream-compression.js';

describe('sync stream compression', () => {
  it('reads Accept-Encoding with q-values: q=0 refuses, * stands for gzip unless gzip is named', () => {
    expect(acceptsGzip('gzip, deflate, br')).toBe(true);
    expect(acceptsGzip('br;q=1.0, gzip;q=0.5')).toBe(true);
    expect(acceptsGzip('gzip;q=0')).toBe(false);
    expect(acceptsGzip('GZIP;Q=0.000, *')).toBe(false);
    expect(acceptsGzip('*')).toBe(true);
    expect(acceptsGzip('*;q=0')).toBe(false);
    expect(acceptsGzip('deflate, br')).toBe(false);
    expect(acceptsGzip('gzip;q=abc')).toBe(false);
    expect(acceptsGzip(undefined)).toBe(false);
    expect(acceptsGzip(`${'x, '.repeat(1000)}gzip`)).toBe(false); // capped before any work
  });

  it('gives browsers gzip and the Node SDK an uncompressed stream by default; always and off override it', () => {
    const web = 'powersync-js/1.30.0 powersync-web Chromium/156 linux';
    const node = 'powersync-js/1.30.0 powersync-node node/20.20.2 linux/6.1';
    expect(chooseStreamCompression({ acceptEncoding: 'gzip', userAgent: web, policy: 'auto' })).toBe('gzip');
    expect(chooseStreamCompression({ acceptEncoding: 'gzip', userAgent: node, policy: 'auto' })).toBe('identity');
    expect(chooseStreamCompression({ acceptEncoding: 'gzip', userAgent: undefined, policy: 'auto' })).toBe('gzip');
    expect(chooseStreamCompression({ acceptEncoding: 'gzip', userAgent: web, policy: 'off' })).toBe('identity');
    expect(chooseStreamCompression({ acceptEncoding: 'gzip;q=0', userAgent: web, policy: 'auto' })).toBe('identity');
    // `always`: the operator pays the Node SDK's decompression for fewer bytes on the wire.
    expect(chooseStreamCompression({ acceptEncoding: 'gzip', userAgent: node, policy: 'always' })).toBe('gzip');
    expect(chooseStreamCompression({ acceptEncoding: 'identity', userAgent: node, policy: 'always' })).toBe('identity');
  });
});
