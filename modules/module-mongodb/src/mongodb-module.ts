/**
 * Registration of the MongoDB source module. The snapshotter, streamer and source API
 * arrive with the replication issues; this declares the module's type key.
 */
export const mongodbModule = {
  /** Key used in the service config: `replication.connections[].type`. */
  type: 'mongodb',
} as const;
