import { ServiceError } from '@bucketsync/service-errors';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createLogger, decodeConfig, Lifecycle, sleep } from '../src/index.js';

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
