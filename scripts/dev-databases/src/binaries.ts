/**
 * Finds database server binaries installed on this machine.
 * A missing binary is reported with what to install, or which environment variable
 * points tests at an existing server instead.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

export class MissingBinaryError extends Error {
  constructor(binary: string, howToFix: string) {
    super(`${binary} was not found. ${howToFix}`);
    this.name = 'MissingBinaryError';
  }
}

function searchPath(name: string, extraDirs: string[]): string | undefined {
  const dirs = [...extraDirs, ...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Postgres server binaries, newest major version first (`/usr/lib/postgresql/<v>/bin`, then PATH). */
export function postgresBinaries(): { initdb: string; postgres: string } {
  const root = '/usr/lib/postgresql';
  const versionDirs = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
        .map((v) => path.join(root, v, 'bin'))
    : [];
  const initdb = searchPath('initdb', versionDirs);
  const postgres = initdb ? path.join(path.dirname(initdb), 'postgres') : searchPath('postgres', versionDirs);
  if (!initdb || !postgres || !existsSync(postgres)) {
    throw new MissingBinaryError(
      'Postgres server (initdb, postgres)',
      'Install it with `apt-get install postgresql-15` (Debian), or set PG_TEST_URL / PG_STORAGE_TEST_URL to an existing server started with wal_level=logical.',
    );
  }
  return { initdb, postgres };
}

/** MariaDB server binaries (`mariadbd`, `mariadb-install-db`). */
export function mariadbBinaries(): { installDb: string; server: string } {
  const server = searchPath('mariadbd', []) ?? searchPath('mysqld', []);
  const installDb = searchPath('mariadb-install-db', []) ?? searchPath('mysql_install_db', []);
  if (!server || !installDb) {
    throw new MissingBinaryError(
      'MariaDB server (mariadbd, mariadb-install-db)',
      'Install it with `apt-get install mariadb-server` (Debian), or set MYSQL_TEST_URL to an existing server with log_bin=ON and binlog_format=ROW.',
    );
  }
  return { installDb, server };
}
