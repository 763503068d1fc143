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

/** Where to look; tests override it to simulate a machine without the binaries. */
export interface BinarySearch {
  /** The PATH to search (default: the environment's PATH plus /usr/sbin and /usr/bin). */
  path?: string;
  /** Folder holding one `<major>/bin` per installed Postgres version. Default `/usr/lib/postgresql`. */
  postgresRoot?: string;
}

function searchPath(name: string, extraDirs: string[], search: BinarySearch): string | undefined {
  const pathDirs = (
    search.path ?? `${process.env.PATH ?? ''}${path.delimiter}/usr/sbin${path.delimiter}/usr/bin`
  ).split(path.delimiter);
  const dirs = [...extraDirs, ...pathDirs];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Postgres server binaries, newest major version first (`/usr/lib/postgresql/<v>/bin`, then PATH). */
export function postgresBinaries(search: BinarySearch = {}): { initdb: string; postgres: string } {
  const root = search.postgresRoot ?? '/usr/lib/postgresql';
  const versionDirs = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
        .map((v) => path.join(root, v, 'bin'))
    : [];
  const initdb = searchPath('initdb', versionDirs, search);
  const postgres = initdb ? path.join(path.dirname(initdb), 'postgres') : searchPath('postgres', versionDirs, search);
  if (!initdb || !postgres || !existsSync(postgres)) {
    throw new MissingBinaryError(
      'Postgres server (initdb, postgres)',
      'Install it with `apt-get install postgresql-15` (Debian), or set PG_TEST_URL / PG_STORAGE_TEST_URL to an existing server started with wal_level=logical.',
    );
  }
  return { initdb, postgres };
}

/** MariaDB server binaries (`mariadbd`, `mariadb-install-db`). */
export function mariadbBinaries(search: BinarySearch = {}): { installDb: string; server: string } {
  const server = searchPath('mariadbd', [], search) ?? searchPath('mysqld', [], search);
  const installDb = searchPath('mariadb-install-db', [], search) ?? searchPath('mysql_install_db', [], search);
  if (!server || !installDb) {
    throw new MissingBinaryError(
      'MariaDB server (mariadbd, mariadb-install-db)',
      'Install it with `apt-get install mariadb-server` (Debian), or set MYSQL_TEST_URL to an existing server with log_bin=ON and binlog_format=ROW.',
    );
  }
  return { installDb, server };
}
