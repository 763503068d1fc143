/**
 * Postgres bucket storage (the factory): opens the pool, migrates the schema, deploys sync
 * configs and tracks active / processing ones, replication lock leases, restart after
 * history loss, cleanup of stopped configs, managed write checkpoints and teardown.
 */
import {
  type BucketStorage,
  type DeployResult,
  type ReplicationLock,
  type StorageSyncConfigEngine,
  type SyncConfigStorage,
} from '@bucketsync/service-core';
import { createLogger, type Logger } from '@bucketsync/lib-services';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import type pg from 'pg';
import {
  encodeWriteCheckpointNotification,
  checkpointChannel,
  PostgresCheckpointListener,
} from './postgres-checkpoint-listener.js';
import {
  normalisePostgresStorageConfig,
  openPostgresPool,
  translatePostgresError,
  type PostgresStorageConfig,
} from './postgres-storage-config.js';
import { PostgresSyncConfigStorage, type PostgresStorageContext } from './postgres-sync-config-storage.js';
import { PostgresWriteCheckpoints } from './postgres-write-checkpoints.js';
import { quoteIdentifier, runMigrations, type MigrationResult } from './migrations/index.js';
import { syncRulesEngine } from './sync-rules-engine.js';

/** Options beyond the config file section. */
export interface PostgresStorageOptions {
  /** Sync config engine. Default: `@bucketsync/sync-rules`. Tests may pass a stub. */
  readonly engine?: StorageSyncConfigEngine;
  readonly logger?: Logger;
  /** Run migrations on open. Default true (the service migrates automatically at start). */
  readonly migrate?: boolean;
}

/**
 * Migrates the storage schema named by a `storage` config section (what `bucketsync migrate`
 * runs). Throws STORAGE_UNREACHABLE naming the redacted URI when it cannot connect.
 */
export async function migratePostgresStorage(raw: PostgresStorageConfig | unknown): Promise<MigrationResult> {
  const config = normalisePostgresStorageConfig(raw);
  const pool = await openPostgresPool({ uri: config.uri, maxPoolSize: 2 });
  try {
    const client = await pool.connect();
    try {
      return await runMigrations(client, config.schema);
    } finally {
      client.release();
    }
  } catch (e) {
    throw translatePostgresError(e, config.uri);
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/** Client ids a user keeps managed write checkpoints for; the least recently used go first. */
export const MAX_WRITE_CHECKPOINTS_PER_USER = 1000;
/** Managed write checkpoints not written for this many days are removed. */
export const WRITE_CHECKPOINT_MAX_AGE_DAYS = 30;
/** How often a process removes old write checkpoints. */
const OLD_WRITE_CHECKPOINT_SWEEP_MS = 60 * 60 * 1000;

export class PostgresStorage implements BucketStorage {
  private readonly configs = new Map<number, PostgresSyncConfigStorage>();
  private closed = false;
  private oldWriteCheckpointsRemovedAt = 0;
  /** The managed write checkpoints every sync connection asks for at every checkpoint. */
  readonly writeCheckpoints: PostgresWriteCheckpoints;

  private constructor(readonly ctx: PostgresStorageContext) {
    this.writeCheckpoints = new PostgresWriteCheckpoints({
      schema: ctx.schema,
      listener: ctx.listener,
      query: (sql, params) => this.query(sql, params),
    });
  }

  /** Opens storage from a `storage` config section; migrates unless `options.migrate` is false. */
  static async open(
    raw: PostgresStorageConfig | unknown,
    options: PostgresStorageOptions = {},
  ): Promise<PostgresStorage> {
    const config = normalisePostgresStorageConfig(raw);
    const pool = await openPostgresPool(config);
    try {
      if (options.migrate !== false) {
        const client = await pool.connect();
        try {
          await runMigrations(client, config.schema);
        } finally {
          client.release();
        }
      }
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw translatePostgresError(e, config.uri);
    }
    return new PostgresStorage({
      pool,
      uri: config.uri,
      schemaName: config.schema,
      schema: quoteIdentifier(config.schema),
      maxRowBytes: config.maxRowBytes,
      engine: options.engine ?? syncRulesEngine(),
      listener: PostgresCheckpointListener.acquire(config.uri, config.schema),
      logger: options.logger ?? createLogger({ fields: { component: 'postgres-storage' } }),
    });
  }

  private async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    try {
      return await this.ctx.pool.query<R>(sql, params);
    } catch (e) {
      throw translatePostgresError(e, this.ctx.uri);
    }
  }

  private storageFor(id: number, content: string): PostgresSyncConfigStorage {
    let storage = this.configs.get(id);
    if (!storage) {
      storage = new PostgresSyncConfigStorage(this.ctx, id, content);
      this.configs.set(id, storage);
    }
    return storage;
  }

  async deploySyncConfig(content: string): Promise<DeployResult> {
    // Fails with SYNC_CONFIG_INVALID before anything is stored.
    this.ctx.engine.parse(content, { configId: '0' });
    const s = this.ctx.schema;
    const client = await this.ctx.pool.connect().catch((e: unknown) => {
      throw translatePostgresError(e, this.ctx.uri);
    });
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`bucketsync-deploy:${this.ctx.schemaName}`]);
      const { rows } = await client.query<{ id: number; content: string; state: string }>(
        `SELECT id, content, state FROM ${s}.sync_configs WHERE state IN ('processing', 'active') ORDER BY id DESC`,
      );
      const processing = rows.find((r) => r.state === 'processing');
      const active = rows.find((r) => r.state === 'active');
      const current = processing ?? active;
      if (current && current.content === content) {
        await client.query('COMMIT');
        return { config: this.storageFor(current.id, current.content), changed: false };
      }
      await client.query(`UPDATE ${s}.sync_configs SET state = 'stopped' WHERE state = 'processing'`);
      const inserted = await client.query<{ id: number }>(
        `INSERT INTO ${s}.sync_configs (content, state) VALUES ($1, 'processing') RETURNING id`,
        [content],
      );
      await client.query('COMMIT');
      return { config: this.storageFor(inserted.rows[0]!.id, content), changed: true };
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw translatePostgresError(e, this.ctx.uri);
    } finally {
      client.release();
    }
  }

  private async configInState(state: 'active' | 'processing'): Promise<SyncConfigStorage | undefined> {
    const { rows } = await this.query<{ id: number; content: string }>(
      `SELECT id, content FROM ${this.ctx.schema}.sync_configs WHERE state = $1 ORDER BY id DESC LIMIT 1`,
      [state],
    );
    return rows[0] ? this.storageFor(rows[0].id, rows[0].content) : undefined;
  }

  getActiveSyncConfig(): Promise<SyncConfigStorage | undefined> {
    return this.configInState('active');
  }

  getProcessingSyncConfig(): Promise<SyncConfigStorage | undefined> {
    return this.configInState('processing');
  }

  async getSyncConfig(configId: number): Promise<SyncConfigStorage | undefined> {
    const { rows } = await this.query<{ id: number; content: string }>(
      `SELECT id, content FROM ${this.ctx.schema}.sync_configs WHERE id = $1`,
      [configId],
    );
    return rows[0] ? this.storageFor(rows[0].id, rows[0].content) : undefined;
  }

  async acquireReplicationLock(
    configId: number,
    options: { holder: string; ttlMs?: number; takeOver?: (currentHolder: string) => boolean },
  ): Promise<ReplicationLock | undefined> {
    const ttl = options.ttlMs ?? 60_000;
    const s = this.ctx.schema;
    const take = async (refresh: boolean) => {
      const { rowCount } = await this.query(
        `UPDATE ${s}.sync_configs SET lock_holder = $2, lock_expires_at = now() + $3 * interval '1 millisecond'
          WHERE id = $1 AND (lock_holder = $2 ${refresh ? '' : 'OR lock_holder IS NULL OR lock_expires_at < now()'})`,
        [configId, options.holder, ttl],
      );
      return rowCount === 1;
    };
    if (!(await take(false)) && !(await this.takeOverLock(configId, options.holder, ttl, options.takeOver))) {
      return undefined;
    }
    let released = false;
    return {
      configId,
      holder: options.holder,
      refresh: async () => {
        if (released || !(await take(true))) {
          throw new ServiceError(
            ErrorCode.STORAGE_UNREACHABLE,
            `the replication lock of sync config ${configId} was lost`,
            {
              retryable: true,
            },
          );
        }
      },
      release: async () => {
        if (released) return;
        released = true;
        await this.query(
          `UPDATE ${s}.sync_configs SET lock_holder = NULL, lock_expires_at = NULL WHERE id = $1 AND lock_holder = $2`,
          [configId, options.holder],
        );
      },
    };
  }

  /** Takes a held lock over when `takeOver` says its holder is gone (compare-and-set on the holder). */
  private async takeOverLock(
    configId: number,
    holder: string,
    ttl: number,
    takeOver: ((currentHolder: string) => boolean) | undefined,
  ): Promise<boolean> {
    if (!takeOver) return false;
    const s = this.ctx.schema;
    const { rows } = await this.query<{ lock_holder: string | null }>(
      `SELECT lock_holder FROM ${s}.sync_configs WHERE id = $1`,
      [configId],
    );
    const current = rows[0]?.lock_holder;
    if (!current || !takeOver(current)) return false;
    const { rowCount } = await this.query(
      `UPDATE ${s}.sync_configs SET lock_holder = $2, lock_expires_at = now() + $3 * interval '1 millisecond'
        WHERE id = $1 AND lock_holder = $4`,
      [configId, holder, ttl, current],
    );
    return rowCount === 1;
  }

  async restartReplication(configId: number): Promise<SyncConfigStorage> {
    const s = this.ctx.schema;
    const { rows } = await this.query<{ content: string; state: string }>(
      `SELECT content, state FROM ${s}.sync_configs WHERE id = $1`,
      [configId],
    );
    const row = rows[0];
    if (!row) throw new ServiceError(ErrorCode.INTERNAL, `sync config ${configId} does not exist`);
    // The active config keeps serving; any processing one (this one included) is replaced.
    await this.query(`UPDATE ${s}.sync_configs SET state = 'stopped' WHERE state = 'processing'`);
    const inserted = await this.query<{ id: number }>(
      `INSERT INTO ${s}.sync_configs (content, state) VALUES ($1, 'processing') RETURNING id`,
      [row.content],
    );
    return this.storageFor(inserted.rows[0]!.id, row.content);
  }

  async cleanupStoppedConfigs(): Promise<number> {
    const s = this.ctx.schema;
    const { rows } = await this.query<{ id: number }>(
      `SELECT id FROM ${s}.sync_configs WHERE state = 'stopped' ORDER BY id`,
    );
    for (const { id } of rows) {
      for (const table of [
        'ops',
        'bucket_checksums',
        'current_data',
        'parameter_index',
        'custom_write_checkpoints',
        'source_tables',
      ]) {
        await this.query(`DELETE FROM ${s}.${table} WHERE config_id = $1`, [id]);
      }
      await this.query(`UPDATE ${s}.sync_configs SET state = 'terminated', lock_holder = NULL WHERE id = $1`, [id]);
      const storage = this.configs.get(id);
      this.configs.delete(id);
      await storage?.close();
    }
    return rows.length;
  }

  async createManagedWriteCheckpoint(request: {
    userId: string;
    clientId: string;
    headPosition: string;
  }): Promise<bigint> {
    // The notice (sent at commit) invalidates the cached row in every process.
    const { rows } = await this.query<{ id: string; inserted: boolean }>(
      `WITH created AS (
         INSERT INTO ${this.ctx.schema}.write_checkpoints AS w (user_id, client_id, id, head_position) VALUES ($1, $2, 1, $3)
         ON CONFLICT (user_id, client_id)
           DO UPDATE SET id = w.id + 1, head_position = excluded.head_position, updated_at = now()
         RETURNING id, xmax = 0 AS inserted)
       SELECT id, inserted, pg_notify($4, $5) FROM created`,
      [
        request.userId,
        request.clientId,
        request.headPosition,
        checkpointChannel(this.ctx.schemaName),
        encodeWriteCheckpointNotification(request),
      ],
    );
    this.writeCheckpoints.invalidate(request);
    // A new client id: the user's least recently used ones beyond the cap go.
    if (rows[0]!.inserted) {
      await this.query(
        `DELETE FROM ${this.ctx.schema}.write_checkpoints
          WHERE user_id = $1 AND client_id IN (
            SELECT client_id FROM ${this.ctx.schema}.write_checkpoints WHERE user_id = $1
             ORDER BY updated_at DESC, client_id OFFSET $2)`,
        [request.userId, MAX_WRITE_CHECKPOINTS_PER_USER],
      );
    }
    if (Date.now() - this.oldWriteCheckpointsRemovedAt >= OLD_WRITE_CHECKPOINT_SWEEP_MS) {
      this.oldWriteCheckpointsRemovedAt = Date.now();
      this.removeOldWriteCheckpoints().catch((e: unknown) =>
        this.ctx.logger.warn('could not remove old write checkpoints', { error: (e as Error).message }),
      );
    }
    return BigInt(rows[0]!.id);
  }

  /**
   * Removes managed write checkpoints not written for WRITE_CHECKPOINT_MAX_AGE_DAYS (their
   * clients are long gone), at most 10,000 per call. Runs at most hourly per process, started by
   * a write checkpoint request. Answers the rows removed.
   */
  async removeOldWriteCheckpoints(): Promise<number> {
    const { rowCount } = await this.query(
      `DELETE FROM ${this.ctx.schema}.write_checkpoints WHERE ctid IN (
         SELECT ctid FROM ${this.ctx.schema}.write_checkpoints
          WHERE updated_at < now() - make_interval(days => $1) LIMIT 10000)`,
      [WRITE_CHECKPOINT_MAX_AGE_DAYS],
    );
    return rowCount ?? 0;
  }

  async getManagedWriteCheckpoint(request: {
    userId: string;
    clientId: string;
    position: string;
  }): Promise<bigint | undefined> {
    return this.writeCheckpoints.find(request);
  }

  async teardown(): Promise<void> {
    await this.query(`DROP SCHEMA IF EXISTS ${this.ctx.schema} CASCADE`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const storage of this.configs.values()) await storage.close();
    this.configs.clear();
    await this.writeCheckpoints.close();
    await this.ctx.listener.release();
    await this.ctx.pool.end().catch(() => undefined);
  }
}
