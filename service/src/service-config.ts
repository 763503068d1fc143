/**
 * The service config file: YAML (or JSON) with `!env NAME` substitution, validated into the
 * modules it names. Errors name the path (`storage.uri: ...`); keys BucketSync does not use
 * but PowerSync configs carry are accepted with a warning so existing configs load.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { unknownKeyProblem } from '@bucketsync/lib-services';
import { decodeAuthConfig, type AuthConfig, type GzipPolicy, type SourceModule } from '@bucketsync/service-core';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { parseDocument, type ScalarTag } from 'yaml';
import {
  PLANNED_SOURCE_TYPES,
  SOURCE_MODULES,
  STORAGE_MODULES,
  storageIdentity,
  type StorageModule,
} from './module-table.js';

export interface SourceConnection {
  module: SourceModule<unknown>;
  config: unknown;
}

export interface ServiceConfig {
  /** Absolute path of the file the config was read from. */
  file: string;
  connections: SourceConnection[];
  storage: { module: StorageModule; config: unknown; identity: string };
  syncConfig: { content: string; source: string };
  /** `client_auth`: how client tokens are verified; required to serve the API. */
  clientAuth: AuthConfig | undefined;
  /** HTTP port of the API (`port`, default 8080; 0 picks a free one). */
  port: number;
  /** Address the API listens on (`host`, default 0.0.0.0). */
  host: string;
  /**
   * `api` section: `bson` (default true) offers the BSON stream; `gzip` when streams are compressed
   * (`true` = `auto`, the default, `always`, `false` = `off`); `tokens`
   * are admin API tokens; `cors.origins` the browser origins allowed (default any: `'*'`).
   */
  api: {
    bson: boolean;
    gzip: GzipPolicy;
    tokens: string[];
    cors: { origins: '*' | string[] };
    /** `api.sync_buffer_mb`: memory all sync streams may hold for data not yet sent (default 256). */
    syncBufferMb?: number;
    /** `api.parameters` (PowerSync's keys): connection caps; unset ones keep the service defaults. */
    parameters: {
      maxConcurrentConnections?: number;
      maxBucketsPerConnection?: number;
      maxParameterQueryResults?: number;
    };
  };
  /** Unused keys and other things worth a warning at start. */
  warnings: string[];
}

/**
 * The keys BucketSync reads, per section, and the keys PowerSync configs carry that BucketSync
 * does not use. A key in neither is a mistake (most often a typo): an error with a did-you-mean,
 * never a silent default (`prot: 18599` must not leave the service on 8080). A PowerSync key is
 * accepted with a warning, so existing configs load.
 */
const SECTIONS: Record<string, { known?: readonly string[]; established: readonly string[] }> = {
  '': {
    known: ['replication', 'storage', 'sync_config', 'sync_rules', 'client_auth', 'api', 'port', 'host'],
    established: ['dev', 'metadata', 'migrations', 'telemetry', 'healthcheck', 'parameters'],
  },
  api: { known: ['bson', 'gzip', 'tokens', 'cors', 'parameters', 'sync_buffer_mb'], established: [] },
  'api.cors': { known: ['origins'], established: [] },
  'api.parameters': {
    known: ['max_concurrent_connections', 'max_buckets_per_connection', 'max_parameter_query_results'],
    established: ['max_data_fetch_concurrency'],
  },
  sync_config: { known: ['path', 'content'], established: ['exit_on_error'] },
  replication: { known: ['connections'], established: [] },
  // client_auth's own decoder (strict) reports keys it does not read, with a did-you-mean.
  client_auth: { established: ['block_local_jwks', 'jwks_reject_ip_ranges', 'supabase', 'supabase_jwt_secret'] },
  storage: {
    known: ['type', 'uri', 'schema', 'max_pool_size', 'max_row_bytes'],
    established: [
      'sslmode',
      'cacert',
      'client_certificate',
      'client_private_key',
      'tls_servername',
      'reject_ip_ranges',
    ],
  },
};

/**
 * Sorts the keys of one section: warnings for PowerSync keys BucketSync ignores (removed from
 * `section`), problems for keys nobody reads. `path` is the section's path (`''` at the top).
 */
function checkKeys(
  section: Record<string, unknown>,
  name: string,
  path: string,
  out: { problems: string[]; warnings: string[] },
): void {
  const { known, established } = SECTIONS[name]!;
  for (const key of Object.keys(section)) {
    if (known?.includes(key)) continue;
    const where = path ? `${path}.${key}` : key;
    if (established.includes(key)) {
      out.warnings.push(`${where}: a PowerSync setting BucketSync does not use; ignored`);
      delete section[key];
    } else if (known) {
      out.problems.push(unknownKeyProblem(where, [...known, ...established]));
    }
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

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(file: string, problems: string[]): ServiceError {
  return new ServiceError(ErrorCode.CONFIG_INVALID, `${file}:\n  - ${problems.join('\n  - ')}\n`);
}

/** Reads and validates the config file; throws ServiceError naming every problem. */
export function loadServiceConfig(
  file: string,
  options: { requireReplication?: boolean; requireClientAuth?: boolean } = {},
): ServiceConfig {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (e) {
    throw new ServiceError(ErrorCode.CONFIG_FILE_UNREADABLE, `${absolute}: ${(e as Error).message}`, { cause: e });
  }
  const missingEnv: string[] = [];
  const doc = parseDocument(text, { customTags: [envTag(missingEnv)], prettyErrors: true });
  if (doc.errors.length > 0) {
    throw invalid(
      absolute,
      doc.errors.map((e) => `line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`),
    );
  }
  const raw: unknown = doc.toJS();
  const problems: string[] = missingEnv.map((name) => `environment variable ${name} (used with !env) is not set`);
  const warnings: string[] = [];
  if (!isObject(raw))
    throw invalid(absolute, ['the file must contain a mapping of keys (replication, storage, sync_config)']);
  checkKeys(raw, '', '', { problems, warnings });
  if (isObject(raw.replication)) checkKeys(raw.replication, 'replication', 'replication', { problems, warnings });

  // storage
  let storage: ServiceConfig['storage'] | undefined;
  const rawStorage = raw.storage;
  if (!isObject(rawStorage)) {
    problems.push('storage: required (a mapping with type and uri)');
  } else {
    checkKeys(rawStorage, 'storage', 'storage', { problems, warnings });
    const module = STORAGE_MODULES.find((m) => m.type === rawStorage.type);
    if (!module) {
      problems.push(
        `storage.type: expected one of ${STORAGE_MODULES.map((m) => JSON.stringify(m.type)).join(', ')} (got ${JSON.stringify(rawStorage.type)})`,
      );
    } else {
      try {
        storage = { module, config: module.decodeConfig(rawStorage), identity: storageIdentity(rawStorage) };
      } catch (e) {
        problems.push(...detailLines(e));
      }
    }
  }

  // replication.connections
  const connections: SourceConnection[] = [];
  const replication = raw.replication;
  const rawConnections = isObject(replication) ? replication.connections : undefined;
  if (!Array.isArray(rawConnections) || rawConnections.length === 0) {
    if (options.requireReplication !== false) {
      problems.push('replication.connections: required (a list with one entry per source database)');
    }
  } else {
    rawConnections.forEach((entry, i) => {
      const where = `replication.connections[${i}]`;
      const type = isObject(entry) ? entry.type : undefined;
      const module = SOURCE_MODULES.find((m) => m.type === type);
      if (!module) {
        const planned = typeof type === 'string' ? PLANNED_SOURCE_TYPES[type] : undefined;
        problems.push(
          planned
            ? `${where}.type: ${planned} in this version`
            : `${where}.type: expected one of ${SOURCE_MODULES.map((m) => JSON.stringify(m.type)).join(', ')} (got ${JSON.stringify(type)})`,
        );
        return;
      }
      // Keys PowerSync configs carry that this module does not read are dropped with a warning.
      const cleaned = isObject(entry) ? { ...entry } : entry;
      if (isObject(cleaned)) {
        for (const key of [
          'id',
          'slot_name_prefix',
          'debug_api',
          'cacert',
          'client_certificate',
          'client_private_key',
        ]) {
          if (key in cleaned) {
            warnings.push(`${where}.${key}: not used by BucketSync; ignored`);
            delete cleaned[key];
          }
        }
      }
      try {
        connections.push({ module, config: module.decodeConfig(cleaned) });
      } catch (e) {
        problems.push(
          ...detailLines(e).map((l) =>
            l.startsWith('(top level): ')
              ? `${where}: ${l.slice(13)}`
              : l.startsWith('replication')
                ? l
                : `${where}.${l}`,
          ),
        );
      }
    });
    if (connections.length > 1)
      problems.push('replication.connections: only one source connection is supported for now');
  }

  // sync_config (alias sync_rules)
  let syncConfig: ServiceConfig['syncConfig'] | undefined;
  const rawSync = raw.sync_config ?? raw.sync_rules;
  const syncKey = raw.sync_config !== undefined ? 'sync_config' : 'sync_rules';
  if (isObject(rawSync)) checkKeys(rawSync, 'sync_config', syncKey, { problems, warnings });
  if (!isObject(rawSync)) {
    problems.push('sync_config: required (path: <file> relative to this config, or content: |)');
  } else if (typeof rawSync.content === 'string') {
    syncConfig = { content: rawSync.content, source: `${absolute} (${syncKey}.content)` };
  } else if (typeof rawSync.path === 'string') {
    const syncPath = path.resolve(path.dirname(absolute), rawSync.path);
    try {
      syncConfig = { content: readFileSync(syncPath, 'utf8'), source: syncPath };
    } catch (e) {
      problems.push(
        `${syncKey}.path: cannot read ${syncPath} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
  } else {
    problems.push(`${syncKey}: set path (a file relative to this config) or content`);
  }

  // client_auth, port, host (the API)
  let clientAuth: AuthConfig | undefined;
  if (raw.client_auth !== undefined) {
    if (isObject(raw.client_auth)) checkKeys(raw.client_auth, 'client_auth', 'client_auth', { problems, warnings });
    try {
      clientAuth = decodeAuthConfig(raw.client_auth);
    } catch (e) {
      problems.push(...detailLines(e).map((l) => (l.startsWith('client_auth') ? l : `client_auth.${l}`)));
    }
  } else if (options.requireClientAuth) {
    problems.push('client_auth: required to serve clients (jwks keys or jwks_uri, and audience)');
  }
  const port = raw.port ?? 8080;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    problems.push(`port: expected a port number 0-65535 (got ${JSON.stringify(port)})`);
  }
  const host = raw.host ?? '0.0.0.0';
  if (typeof host !== 'string')
    problems.push(`host: expected an address such as 0.0.0.0 (got ${JSON.stringify(host)})`);

  const rawApi = raw.api ?? {};
  const api: ServiceConfig['api'] = { bson: true, gzip: 'auto', tokens: [], cors: { origins: '*' }, parameters: {} };
  if (!isObject(rawApi)) problems.push('api: expected a mapping (bson, gzip, tokens)');
  else {
    checkKeys(rawApi, 'api', 'api', { problems, warnings });
    if (rawApi.bson !== undefined && typeof rawApi.bson !== 'boolean')
      problems.push('api.bson: expected true or false');
    else if (rawApi.bson === false) api.bson = false;
    const gzip = rawApi.gzip;
    if (gzip === false || gzip === 'off') api.gzip = 'off';
    else if (gzip === 'always') api.gzip = 'always';
    else if (gzip !== undefined && gzip !== true && gzip !== 'auto') {
      problems.push(
        'api.gzip: expected true (or auto: gzip for clients that benefit, the default), always, or false (or off)',
      );
    }
    if (rawApi.cors !== undefined) {
      const origins = isObject(rawApi.cors) ? rawApi.cors.origins : undefined;
      if (!isObject(rawApi.cors)) problems.push("api.cors: expected a mapping (origins: '*' or a list of origins)");
      else {
        checkKeys(rawApi.cors, 'api.cors', 'api.cors', { problems, warnings });
        const bad = corsOriginProblem(origins);
        if (bad) problems.push(`api.cors.origins: ${bad}`);
        else if (Array.isArray(origins)) api.cors.origins = origins as string[];
      }
    }
    const syncBufferMb = rawApi.sync_buffer_mb;
    if (syncBufferMb !== undefined) {
      if (
        typeof syncBufferMb !== 'number' ||
        !Number.isInteger(syncBufferMb) ||
        syncBufferMb < 8 ||
        syncBufferMb > 65536
      ) {
        problems.push(
          `api.sync_buffer_mb: expected a whole number of megabytes from 8 to 65536 (got ${JSON.stringify(syncBufferMb)}); it bounds the memory sync streams hold for data not yet sent`,
        );
      } else api.syncBufferMb = syncBufferMb;
    }
    if (rawApi.parameters !== undefined) {
      const parameters = rawApi.parameters;
      if (!isObject(parameters)) problems.push('api.parameters: expected a mapping (max_concurrent_connections, ...)');
      else {
        checkKeys(parameters, 'api.parameters', 'api.parameters', { problems, warnings });
        const limit = (key: string): number | undefined => {
          const value = parameters[key];
          if (value === undefined) return undefined;
          if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 1_000_000) {
            problems.push(
              `api.parameters.${key}: expected a whole number from 1 to 1000000 (got ${JSON.stringify(value)})`,
            );
            return undefined;
          }
          return value;
        };
        const maxConcurrentConnections = limit('max_concurrent_connections');
        const maxBucketsPerConnection = limit('max_buckets_per_connection');
        const maxParameterQueryResults = limit('max_parameter_query_results');
        if (maxConcurrentConnections !== undefined) api.parameters.maxConcurrentConnections = maxConcurrentConnections;
        if (maxBucketsPerConnection !== undefined) api.parameters.maxBucketsPerConnection = maxBucketsPerConnection;
        if (maxParameterQueryResults !== undefined) api.parameters.maxParameterQueryResults = maxParameterQueryResults;
      }
    }
    if (rawApi.tokens !== undefined) {
      if (!Array.isArray(rawApi.tokens) || rawApi.tokens.some((t) => typeof t !== 'string' || t.length < 16)) {
        problems.push('api.tokens: expected a list of tokens of at least 16 characters');
      } else api.tokens = rawApi.tokens as string[];
    }
  }

  if (problems.length > 0 || !storage || !syncConfig) throw invalid(absolute, problems);
  return {
    api,
    file: absolute,
    connections,
    storage,
    syncConfig,
    clientAuth,
    port: port as number,
    host: host as string,
    warnings,
  };
}

/**
 * What is wrong with `api.cors.origins`, if anything: `'*'` (or nothing) allows any origin; a
 * list holds exact origins as a browser sends them (`scheme://host[:port]`, no path or slash).
 */
function corsOriginProblem(origins: unknown): string | undefined {
  if (origins === undefined || origins === '*') return undefined;
  if (!Array.isArray(origins) || origins.length === 0) {
    return "expected '*' or a non-empty list of origins such as https://app.example.com";
  }
  for (const origin of origins) {
    let parsed: URL | undefined;
    try {
      parsed = typeof origin === 'string' ? new URL(origin) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!parsed || parsed.origin !== origin) {
      return `${JSON.stringify(origin)} is not an origin; write scheme://host[:port] with no path or trailing slash (e.g. https://app.example.com)`;
    }
  }
  return undefined;
}

/** The per-field lines of a module's CONFIG_INVALID error (or its message). */
function detailLines(error: unknown): string[] {
  if (error instanceof ServiceError && error.details) {
    return error.details
      .split('\n')
      .map((l) => l.replace(/^\s*-\s*/, '').trim())
      .filter((l) => l.length > 0 && !l.endsWith(':'));
  }
  return [(error as Error).message];
}
