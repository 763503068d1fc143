/**
 * Backends of the soak's Postgres per database (pg_stat_activity), from one connection of its
 * own that is never counted: the service's storage pool and LISTEN connection in the storage
 * database, its replication and write-checkpoint connections in the source database.
 */
import pg from 'pg';

/** One backend, for the report when connections grew. */
export interface BackendRow {
  database: string;
  state: string | null;
  backendType: string;
  /** Seconds since the backend started. */
  ageSeconds: number;
  /** Seconds since its state last changed (how long an idle one has been idle). */
  stateSeconds: number;
  query: string;
}

export class ConnectionSampler {
  private client: pg.Client | undefined;

  /** Connects to `url`, any database of the cluster (its own connection is excluded wherever it is). */
  async open(url: string): Promise<void> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    this.client = client;
  }

  /** Backends per database, not counting this sampler's own. */
  async sample(): Promise<Map<string, number>> {
    const { rows } = await this.client!.query<{ datname: string; n: number }>(
      `SELECT datname, count(*)::int AS n FROM pg_stat_activity
        WHERE datname IS NOT NULL AND pid <> pg_backend_pid() GROUP BY datname`,
    );
    return new Map(rows.map((r) => [r.datname, r.n]));
  }

  /** The backends of `database`, oldest first (who holds the connections). */
  async backends(database: string): Promise<BackendRow[]> {
    const { rows } = await this.client!.query<{
      state: string | null;
      backend_type: string;
      age: number;
      since: number | null;
      query: string;
    }>(
      `SELECT state, backend_type, extract(epoch FROM now() - backend_start)::float8 AS age,
              extract(epoch FROM now() - state_change)::float8 AS since, left(query, 120) AS query
         FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() ORDER BY backend_start`,
      [database],
    );
    return rows.map((r) => ({
      database,
      state: r.state,
      backendType: r.backend_type,
      ageSeconds: Math.round(r.age),
      stateSeconds: Math.round(r.since ?? 0),
      query: r.query,
    }));
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
