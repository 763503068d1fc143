/**
 * The Postgres source connection config: the only place raw config is read. Accepts a URI or
 * separate fields, and defaults the publication name to `powersync` so existing setups work.
 */
import { decodeConfig } from '@bucketsync/lib-services';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { z } from 'zod';

const rawConfigSchema = z
  .object({
    type: z.literal('postgresql'),
    /** Which source connection this is; tables are keyed by it. */
    tag: z.string().min(1).default('default'),
    uri: z.string().url().optional(),
    hostname: z.string().optional(),
    port: z.number().int().positive().default(5432),
    database: z.string().optional(),
    username: z.string().optional(),
    password: z.string().optional(),
    sslmode: z.enum(['disable', 'prefer', 'require', 'verify-ca', 'verify-full']).optional(),
    publication_name: z.string().min(1).default('powersync'),
  })
  .strict()
  .refine((c) => c.uri !== undefined || (c.hostname !== undefined && c.database !== undefined), {
    message: 'set either uri, or hostname and database (with username and password)',
  });

export interface PostgresSourceConfig {
  tag: string;
  /** Full connection URI. */
  uri: string;
  publicationName: string;
}

/** Decodes a `replication.connections[]` entry of type `postgresql`; throws naming every bad field. */
export function decodePostgresConfig(raw: unknown, source = 'replication.connections'): PostgresSourceConfig {
  const config = decodeConfig(rawConfigSchema, raw, source);
  let uri = config.uri;
  if (uri === undefined) {
    const url = new URL('postgres://localhost');
    // An IPv6 address goes in brackets; without them the URL keeps its placeholder host.
    const host = config.hostname!;
    url.hostname = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    if (url.hostname === 'localhost' && host !== 'localhost') {
      throw new ServiceError(
        ErrorCode.CONFIG_INVALID,
        `${source}.hostname: ${JSON.stringify(host)} is not a host name or address`,
      );
    }
    url.port = String(config.port);
    url.pathname = `/${encodeURIComponent(config.database!)}`;
    if (config.username) url.username = encodeURIComponent(config.username);
    if (config.password) url.password = encodeURIComponent(config.password);
    uri = url.toString();
  }
  if (config.sslmode) {
    const url = new URL(uri);
    url.searchParams.set('sslmode', config.sslmode);
    uri = url.toString();
  }
  return { tag: config.tag, uri, publicationName: config.publication_name };
}

/** Slot name for a replication job: lower-case, `[a-z0-9_]`, at most 63 bytes (a Postgres name). */
export function slotNameFor(replicationId: string): string {
  return `bucketsync_${replicationId.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
}
