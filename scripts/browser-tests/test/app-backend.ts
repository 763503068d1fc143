/**
 * The page's own origin, as a web app's backend: serves the vite-built page (dist/page), hands
 * out BucketSync tokens (`GET /token`) and applies the SDK's uploads to the source Postgres
 * (`POST /upload`), filling `server_note` as a server would so a round trip is visible.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type pg from 'pg';

const pageDir = path.resolve(import.meta.dirname, '../dist/page');
const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
};

/** One entry of the SDK's `CrudEntry.toJSON()`. */
interface CrudOp {
  op: 'PUT' | 'PATCH' | 'DELETE';
  type: string;
  id: string;
  data?: Record<string, unknown>;
}

export interface AppBackendOptions {
  /** Answers `GET /token`: the endpoint and token the page's `fetchCredentials` returns. */
  credentials: () => Promise<{ endpoint: string; token: string }>;
  /** The source Postgres the uploads write to (asked per upload: the service may start after the page's origin). */
  source: () => pg.Client;
  /** Schema of the source tables the uploads write to. */
  schema: () => string;
}

export interface AppBackend {
  /** The page's origin; differs from the sync endpoint's port, so sync requests are cross-origin. */
  origin: string;
  /** Upload batches received (each an array of ops). */
  uploads: CrudOp[][];
  /** Makes `POST /upload` wait until the returned function is called (to look at the page meanwhile). */
  holdUploads(): () => void;
  close(): Promise<void>;
}

const COLUMNS = new Set(['owner', 'description', 'done']);

async function applyUpload(source: pg.Client, schema: string, ops: CrudOp[]): Promise<void> {
  await source.query('BEGIN');
  try {
    for (const op of ops) {
      if (op.type !== 'todos') throw new Error(`unknown table ${op.type}`);
      const data = Object.entries(op.data ?? {}).filter(([column]) => COLUMNS.has(column));
      if (op.op === 'DELETE') {
        await source.query(`DELETE FROM ${schema}.todos WHERE id = $1`, [op.id]);
      } else if (op.op === 'PUT') {
        await source.query(
          `INSERT INTO ${schema}.todos (id, ${data.map(([c]) => c).join(', ')}, server_note)
             VALUES ($1, ${data.map((_, i) => `$${i + 2}`).join(', ')}, 'saved by backend')`,
          [op.id, ...data.map(([, v]) => v)],
        );
      } else {
        await source.query(
          `UPDATE ${schema}.todos SET ${data.map(([c], i) => `${c} = $${i + 2}`).join(', ')},
             server_note = 'updated by backend' WHERE id = $1`,
          [op.id, ...data.map(([, v]) => v)],
        );
      }
    }
    await source.query('COMMIT');
  } catch (e) {
    await source.query('ROLLBACK');
    throw e;
  }
}

export async function startAppBackend(options: AppBackendOptions): Promise<AppBackend> {
  const uploads: CrudOp[][] = [];
  let held: Promise<void> = Promise.resolve();
  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://page');
      if (url.pathname === '/token') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(await options.credentials()));
      } else if (url.pathname === '/upload' && req.method === 'POST') {
        let body = '';
        for await (const chunk of req) body += chunk;
        const ops = JSON.parse(body) as CrudOp[];
        await held;
        await applyUpload(options.source(), options.schema(), ops);
        uploads.push(ops);
        res.writeHead(204).end();
      } else {
        const file = path.join(pageDir, url.pathname === '/' ? 'index.html' : path.normalize(url.pathname));
        if (!file.startsWith(pageDir)) throw new Error('outside the page folder');
        const content = await readFile(file);
        res.writeHead(200, { 'content-type': contentTypes[path.extname(file)] ?? 'application/octet-stream' });
        res.end(content);
      }
    } catch (e) {
      const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
      res.writeHead(missing ? 404 : 500, { 'content-type': 'text/plain' }).end(String(e));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    uploads,
    holdUploads() {
      let release = () => undefined as void;
      held = new Promise<void>((resolve) => (release = resolve));
      return release;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
