import { ServiceError } from '@bucketsync/service-errors';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { closestKey, createLogger, decodeConfig, Lifecycle, sleep, unknownKeyProblem } from '../src/index.js';

describe('logger', () => {
  it('writes JSON lines with level, message and fields, and drops lines below the level', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', format: 'json', write: (l) => lines.push(l) });
    logger.debug('not shown');
    logger.child({ module: 'postgres' }).info('copied chunk', { table: 'todos', rows: 10n });
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!);
    expect(line).toMatchObject({
      level: 'info',
      message: 'copied chunk',
      module: 'postgres',
      table: 'todos',
      rows: '10',
    });
  });

  it('serialises errors with their code and cause', () => {
    const lines: string[] = [];
    const logger = createLogger({ format: 'json', write: (l) => lines.push(l) });
    logger.error('failed', { error: new Error('outer', { cause: new Error('inner') }) });
    expect(JSON.parse(lines[0]!).error).toEqual({
      name: 'Error',
      message: 'outer',
      cause: { name: 'Error', message: 'inner' },
    });
  });
});

describe('Lifecycle', () => {
  it('aborts its signal and disposes resources in reverse order, once', async () => {
    const lifecycle = new Lifecycle();
    const order: string[] = [];
    lifecycle.defer(() => void order.push('first'));
    lifecycle.defer(async () => void order.push('second'));
    await Promise.all([lifecycle.dispose(), lifecycle.dispose()]);
    expect(lifecycle.signal.aborted).toBe(true);
    expect(order).toEqual(['second', 'first']);
  });

  it('runs every disposer even when one fails, and reports the failure', async () => {
    const lifecycle = new Lifecycle();
    let ran = false;
    lifecycle.defer(() => {
      ran = true;
    });
    lifecycle.defer(() => {
      throw new Error('close failed');
    });
    await expect(lifecycle.dispose()).rejects.toThrow('close failed');
    expect(ran).toBe(true);
  });

  it('stops a sleep when the signal aborts', async () => {
    const lifecycle = new Lifecycle();
    const pending = sleep(60_000, lifecycle.signal);
    void lifecycle.dispose(new Error('shutting down'));
    await expect(pending).rejects.toThrow('shutting down');
  });
});

describe('decodeConfig', () => {
  const schema = z.object({
    port: z.number().int().default(8080),
    storage: z.object({ type: z.enum(['postgresql', 'mongodb']), uri: z.string() }),
  });

  it('returns the decoded value with defaults applied', () => {
    expect(decodeConfig(schema, { storage: { type: 'postgresql', uri: 'postgres://x' } }, 'config.yaml')).toEqual({
      port: 8080,
      storage: { type: 'postgresql', uri: 'postgres://x' },
    });
  });

  it('names every bad field with what was found, in one error', () => {
    let caught: unknown;
    try {
      decodeConfig(schema, { port: 'abc', storage: { type: 'sqlite' } }, 'config.yaml');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ServiceError);
    const message = (caught as ServiceError).message;
    expect(message).toContain('config.yaml:');
    expect(message).toContain('port: Expected number, received string (got string "abc")');
    expect(message).toContain("storage.type: Invalid enum value. Expected 'postgresql' | 'mongodb', received 'sqlite'");
    expect(message).toContain('storage.uri: Required (got nothing)');
  });
});

describe('misspelt config keys', () => {
  it('suggests the closest known key within a third of its length, ignoring case and dashes', () => {
    const known = ['sync_config', 'port', 'host', 'storage', 'max_pool_size'];
    expect(closestKey('sync_confg', known)).toBe('sync_config');
    expect(closestKey('prot', known)).toBe('port'); // a swap of two letters costs one
    expect(closestKey('Max-Pool-Size', known)).toBe('max_pool_size');
    expect(closestKey('replication_slots', known)).toBeUndefined();
    expect(closestKey('x'.repeat(10_000), known)).toBeUndefined(); // no quadratic work on hostile input
  });

  it('names the path and the suggestion, or the keys that are read there', () => {
    expect(unknownKeyProblem('api.gzpi', ['bson', 'gzip'])).toBe('api.gzpi: unknown key; did you mean gzip?');
    expect(unknownKeyProblem('api.zzz', ['gzip', 'bson'])).toBe('api.zzz: unknown key (expected one of bson, gzip)');
  });

  it('decodeConfig reports a strict schema’s unknown keys with a did-you-mean at their path', () => {
    const schema = z.object({ db: z.object({ uri: z.string(), schema: z.string().optional() }).strict() }).strict();
    expect(() => decodeConfig(schema, { db: { uri: 'x', shcema: 'y' } }, 'storage')).toThrow(
      'db.shcema: unknown key; did you mean schema?',
    );
  });
});
