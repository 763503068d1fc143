/**
 * Registration of the SQL Server source module. The snapshotter, streamer and source API
 * arrive with the replication issues; this declares the module's type key.
 */
export const mssqlModule = {
  /** Key used in the service config: `replication.connections[].type`. */
  type: 'mssql',
} as const;
