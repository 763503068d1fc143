/**
 * Registration of the Postgres source module. The snapshotter, streamer and source API
 * arrive with the replication issues; this declares the module's type key.
 */
export const postgresModule = {
  /** Key used in the service config: `replication.connections[].type`. */
  type: 'postgresql',
} as const;
