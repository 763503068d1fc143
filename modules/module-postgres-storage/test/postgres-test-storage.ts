/**
 * Test harness: a fresh storage schema per call on the database named by PG_STORAGE_TEST_URL,
 * so tests never see each other's data; `teardown()` drops the schema.
 */
import { randomBytes } from 'node:crypto';
import { PostgresStorage, type PostgresStorageOptions } from '../src/index.js';

export function freshSchemaName(prefix = 't'): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

export function openTestStorage(
  url: string,
  options: { maxRowBytes?: number; schema?: string } & PostgresStorageOptions = {},
): Promise<PostgresStorage> {
  const { maxRowBytes, schema, ...rest } = options;
  return PostgresStorage.open({ uri: url, schema: schema ?? freshSchemaName(), maxRowBytes }, rest);
}
