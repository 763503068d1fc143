/**
 * Registration of the MySQL/MariaDB source module. The snapshotter, streamer and source API
 * arrive with the replication issues; this declares the module's type key.
 */
export const mysqlModule = {
  /** Key used in the service config: `replication.connections[].type`. */
  type: 'mysql',
} as const;
