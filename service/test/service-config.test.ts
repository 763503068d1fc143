import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadServiceConfig } from '../src/service-config.js';

const dir = mkdtempSync(path.join(tmpdir(), 'bucketsync-config-'));
function configFile(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}
writeFileSync(path.join(dir, 'sync.yaml'), 'bucket_definitions:\n  global:\n    data: [SELECT * FROM todos]\n');

const VALID = `
replication:
  connections:
    - type: postgresql
      uri: !env TEST_SOURCE_URL
storage:
  type: postgresql
  uri: postgres://localhost/storage
sync_rules:
  path: sync.yaml
telemetry:
  disable_telemetry_sharing: true
`;

describe('service config file', () => {
  afterEach(() => {
    delete process.env.TEST_SOURCE_URL;
  });

  it('substitutes !env values, reads the sync config relative to the file, and warns about unused PowerSync keys', () => {
    process.env.TEST_SOURCE_URL = 'postgres://user:pw@db:5432/app';
    const config = loadServiceConfig(configFile('valid.yaml', VALID));
    expect(config.connections[0]?.config).toEqual({
      tag: 'default',
      uri: 'postgres://user:pw@db:5432/app',
      publicationName: 'powersync',
    });
    expect(config.syncConfig.content).toContain('global');
    expect(config.syncConfig.source).toBe(path.join(dir, 'sync.yaml'));
    expect(config.warnings).toEqual(['telemetry: a PowerSync setting BucketSync does not use; ignored']);
  });

  it('names every problem by its path in one error', () => {
    const file = configFile(
      'bad.yaml',
      `
replication:
  connections:
    - type: postgresql
      uri: !env TEST_SOURCE_URL
      publication_name: 7
    - type: mongodb
storage:
  type: sqlite
sync_config:
  path: missing.yaml
`,
    );
    expect(() => loadServiceConfig(file)).toThrow(
      [
        'environment variable TEST_SOURCE_URL (used with !env) is not set',
        'storage.type: expected one of "postgresql" (got "sqlite")',
        'replication.connections[0].uri: Invalid url',
        'replication.connections[0].publication_name: Expected string, received number (got number 7)',
        'replication.connections[1].type: MongoDB replication is not available yet in this version',
      ].join('\n  - '),
    );
    expect(() => loadServiceConfig(file)).toThrow(/sync_config\.path: cannot read .*missing\.yaml \(ENOENT\)/);
  });

  it('refuses misspelt keys at every level with a did-you-mean, and only warns about PowerSync keys', () => {
    process.env.TEST_SOURCE_URL = 'postgres://user:pw@db:5432/app';
    const file = configFile(
      'typos.yaml',
      `
replication:
  connections:
    - type: postgresql
      uri: !env TEST_SOURCE_URL
      publication_nmae: pub
storage:
  type: postgresql
  uri: postgres://localhost/storage
  max_pool_szie: 4
sync_confg:
  path: sync.yaml
prot: 18599
api:
  gzpi: false
  parameters: { max_concurrent_connections: 10 }
client_auth:
  audeince: [x]
  audience: [x]
  jwks: { keys: [{ kty: oct, alg: HS256, k: c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0 }] }
  supabase: false
migrations: { disable_auto_migration: true }
totally_unrelated_thing: 1
`,
    );
    let message = '';
    try {
      loadServiceConfig(file);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('sync_confg: unknown key; did you mean sync_config?');
    expect(message).toContain('prot: unknown key; did you mean port?');
    expect(message).toContain('api.gzpi: unknown key; did you mean gzip?');
    expect(message).toContain('storage.max_pool_szie: unknown key; did you mean max_pool_size?');
    expect(message).toContain(
      'replication.connections[0].publication_nmae: unknown key; did you mean publication_name?',
    );
    expect(message).toContain('client_auth.audeince: unknown key; did you mean audience?');
    expect(message).toMatch(/totally_unrelated_thing: unknown key \(expected one of api, client_auth, .*\)/);
    // The misspelling is named first, before what its absence caused.
    expect(message.indexOf('sync_confg: unknown key')).toBeLessThan(message.indexOf('sync_config: required'));
    // Keys PowerSync configs carry are not errors.
    expect(message).not.toContain('- migrations');
    expect(message).not.toContain('- api.parameters');
    expect(message).not.toContain('max_concurrent_connections');
    expect(message).not.toContain('- client_auth.supabase');
  });

  it('warns about the PowerSync keys it ignores, by path', () => {
    process.env.TEST_SOURCE_URL = 'postgres://user:pw@db:5432/app';
    const config = loadServiceConfig(
      configFile(
        'powersync-keys.yaml',
        `${VALID}
api:
  parameters: { max_buckets_per_connection: 100, max_data_fetch_concurrency: 10 }
migrations:
  disable_auto_migration: true
`,
      ),
    );
    expect(config.warnings).toEqual([
      'telemetry: a PowerSync setting BucketSync does not use; ignored',
      'migrations: a PowerSync setting BucketSync does not use; ignored',
      'api.parameters.max_data_fetch_concurrency: a PowerSync setting BucketSync does not use; ignored',
    ]);
    // The connection caps of api.parameters are read.
    expect(config.api.parameters).toEqual({ maxBucketsPerConnection: 100 });
    expect(() =>
      loadServiceConfig(
        configFile('bad-caps.yaml', `${VALID}api:\n  parameters: { max_concurrent_connections: -1 }\n`),
      ),
    ).toThrow('api.parameters.max_concurrent_connections: expected a whole number from 1 to 1000000 (got -1)');
  });

  it('reads api.cors.origins: any origin by default, else exact origins, refusing paths and typos', () => {
    process.env.TEST_SOURCE_URL = 'postgres://user:pw@db:5432/app';
    expect(loadServiceConfig(configFile('cors-default.yaml', VALID)).api.cors.origins).toBe('*');
    const listed = loadServiceConfig(
      configFile(
        'cors-list.yaml',
        `${VALID}api:\n  cors:\n    origins: [https://app.example.com, http://localhost:5173]\n`,
      ),
    );
    expect(listed.api.cors.origins).toEqual(['https://app.example.com', 'http://localhost:5173']);
    expect(() =>
      loadServiceConfig(
        configFile('cors-bad.yaml', `${VALID}api:\n  cors:\n    origins: [https://app.example.com/]\n`),
      ),
    ).toThrow('api.cors.origins: "https://app.example.com/" is not an origin');
    expect(() => loadServiceConfig(configFile('cors-typo.yaml', `${VALID}api:\n  cors:\n    orgins: '*'\n`))).toThrow(
      'api.cors.orgins: unknown key; did you mean origins?',
    );
  });

  it('explains a missing file and required sections', () => {
    expect(() => loadServiceConfig(path.join(dir, 'nope.yaml'))).toThrow(
      /\[BS1002\] The config file could not be read/,
    );
    expect(() => loadServiceConfig(configFile('empty.yaml', 'port: 8080\n'))).toThrow(
      /storage: required \(a mapping with type and uri\)\n {2}- replication\.connections: required/,
    );
  });

  it('reads the api section, and names a bad value', () => {
    process.env.TEST_SOURCE_URL = 'postgres://db/app';
    const withApi = VALID + 'api:\n  bson: false\n  gzip: false\n';
    const config = loadServiceConfig(configFile('api.yaml', withApi));
    expect(config.api).toEqual({ bson: false, gzip: 'off', tokens: [], cors: { origins: '*' }, parameters: {} });
    expect(loadServiceConfig(configFile('default-api.yaml', VALID)).api).toEqual({
      bson: true,
      gzip: 'auto',
      tokens: [],
      cors: { origins: '*' },
      parameters: {},
    });
    expect(() => loadServiceConfig(configFile('bad-api.yaml', VALID + 'api:\n  gzip: sometimes\n'))).toThrow(
      'api.gzip: expected true (or auto',
    );
  });

  it('reads api.sync_buffer_mb, the memory sync streams may hold, and refuses a value out of range', () => {
    process.env.TEST_SOURCE_URL = 'postgres://db/app';
    expect(loadServiceConfig(configFile('buffer.yaml', VALID + 'api:\n  sync_buffer_mb: 64\n')).api.syncBufferMb).toBe(
      64,
    );
    expect(loadServiceConfig(configFile('buffer-default.yaml', VALID)).api.syncBufferMb).toBeUndefined();
    expect(() => loadServiceConfig(configFile('buffer-bad.yaml', VALID + 'api:\n  sync_buffer_mb: 1\n'))).toThrow(
      'api.sync_buffer_mb: expected a whole number of megabytes from 8 to 65536 (got 1)',
    );
  });

  it('reports YAML syntax errors with their line', () => {
    expect(() => loadServiceConfig(configFile('syntax.yaml', 'storage:\n  type: [postgresql\n'))).toThrow(/line \d+:/);
  });
});
