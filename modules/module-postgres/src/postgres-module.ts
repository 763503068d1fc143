/**
 * Registration of the Postgres source module: type key `postgresql`, config codec,
 * capabilities and the factories for its snapshotter, streamer and source API.
 */
import type { SourceModule } from '@bucketsync/service-core';
import { decodePostgresConfig, type PostgresSourceConfig } from './postgres-config.js';
import { PostgresSnapshotter } from './postgres-snapshotter.js';
import { PostgresSourceApi } from './postgres-source-api.js';
import { PostgresStreamer } from './postgres-streamer.js';

export const postgresModule: SourceModule<PostgresSourceConfig> = {
  type: 'postgresql',
  decodeConfig: (raw) => decodePostgresConfig(raw),
  capabilities: { concurrentSnapshot: true, partialUpdates: true },
  createSnapshotter: (context) => new PostgresSnapshotter(context),
  createStreamer: (context) => new PostgresStreamer(context),
  createSourceApi: (context) => new PostgresSourceApi(context),
};
