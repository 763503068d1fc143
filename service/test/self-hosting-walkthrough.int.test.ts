/**
 * Follows the walkthrough of docs/self-hosting.md: every ```sh walkthrough=<step>``` block of
 * the doc runs in order, as written, with bash in one fresh directory, against new databases on
 * the test Postgres; Ctrl-C (step 8 of the doc) is a SIGINT to the service's process group.
 * Not taken verbatim, and checked below: the `environment` block (the test sets the same
 * variables to its own databases) and `sdk-install` (see SDK_INSTALL). Like the other CLI tests
 * it runs the built packages: the doc's `npm run build` is the precondition of `npm test`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';

const repo = path.resolve(import.meta.dirname, '../..');
const docFile = path.join(repo, 'docs/self-hosting.md');

interface Step {
  name: string;
  /** Runs until the test stops it (the doc runs it in a terminal of its own). */
  background: boolean;
  script: string;
}

/** The doc's runnable blocks, in order: fenced ```sh walkthrough=<name> [background]``` blocks. */
function walkthroughSteps(markdown: string): Step[] {
  const steps: Step[] = [];
  for (const match of markdown.matchAll(/^```sh walkthrough=([\w-]+)((?: [\w-]+)*)\n([\s\S]*?)^```$/gm)) {
    steps.push({ name: match[1]!, background: match[2]!.trim().split(' ').includes('background'), script: match[3]! });
  }
  return steps;
}

const steps = walkthroughSteps(readFileSync(docFile, 'utf8'));

/** The variables the doc's `environment` step defines; the test sets each one itself. */
const ENVIRONMENT = [
  'SOURCE_ADMIN_URL',
  'STORAGE_ADMIN_URL',
  'SOURCE_PASSWORD',
  'STORAGE_PASSWORD',
  'SOURCE_URL',
  'STORAGE_URL',
  'BUCKETSYNC_PORT',
  'BUCKETSYNC_REPO',
];

/**
 * `npm install @powersync/node better-sqlite3` builds better-sqlite3 from source when its
 * prebuilt binary cannot be downloaded, which takes minutes. The test links the copies the
 * service's own SDK tests use instead (the same major versions, from the lockfile), and checks
 * that the doc asks for exactly this.
 */
const SDK_INSTALL = {
  command: 'npm install @powersync/node@1 better-sqlite3@12',
  packages: ['@powersync/node', 'better-sqlite3'],
};

/** The role names the doc creates: cluster-wide, so the test refuses a server that has them. */
const ROLES = ['bucketsync_replication', 'bucketsync_storage'];

/** Ctrl-C in the service's terminal (step 8) comes before this step. */
const STOP_BEFORE = 'remove';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.href;
}

function withUser(url: string, user: string, password: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  return u.href;
}

/** A free TCP port (closed again before it is used; the service binds it a moment later). */
async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * The environment of a fresh login shell as far as the steps can tell: this process's, minus
 * what pnpm and vitest add (npm_* settings, node_modules/.bin on PATH), plus the doc's variables.
 */
function shellEnvironment(variables: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|PNPM_|VITEST|TEST_|PG_|MYSQL_|MONGO_|MSSQL_)/i.test(key) || key === 'NODE_ENV') continue;
    env[key] = value;
  }
  env.PATH = (process.env.PATH ?? '')
    .split(path.delimiter)
    .filter((dir) => !dir.includes(`${path.sep}node_modules${path.sep}`) && !dir.startsWith(repo))
    .join(path.delimiter);
  env.COREPACK_ENABLE_DOWNLOAD_PROMPT = '0';
  return { ...env, ...variables };
}

describeIntegration('postgres', 'docs/self-hosting.md walkthrough, step by step', (sourceServerUrl) => {
  const id = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const sourceDatabase = `walkthrough_source_${id}`;
  const storageDatabase = `walkthrough_storage_${id}`;
  const storageServerUrl = process.env.PG_STORAGE_TEST_URL!;
  /** The deployment directory every step runs in (made in beforeAll: a skipped suite makes none). */
  let workDir = '';
  /** Process groups of every step started, running or not; all are killed in afterAll. */
  const groups = new Set<number>();
  /** Background steps (the service), until step 8 stops them. */
  const background: { step: string; child: ChildProcess; exited: Promise<Run>; output: () => string }[] = [];
  /** Output of the background steps that were stopped, for failure messages. */
  const stoppedOutput: string[] = [];
  let variables: Record<string, string> = {};
  let createdRoles = false;
  let failed: string | undefined;

  function start(step: Step): { child: ChildProcess; exited: Promise<Run>; output: () => string } {
    let output = '';
    // Its own process group, so the step and everything it started can be signalled at once.
    const child = spawn('bash', ['-eu', '-o', 'pipefail', '-c', step.script], {
      cwd: workDir,
      env: shellEnvironment(variables),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    groups.add(child.pid!);
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const exited = new Promise<Run>((resolve) =>
      child.on('close', (code, signal) => resolve({ code, signal, output })),
    );
    return { child, exited, output: () => output };
  }

  /** Signals a process group (0 only probes it); false when the group is gone. */
  function killGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
    try {
      process.kill(-pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** Runs a step to its end; kills it after `timeoutMs`, or as soon as a background step exits. */
  async function runStep(step: Step, timeoutMs: number): Promise<Run> {
    const { child, exited } = start(step);
    let why = `killed after ${timeoutMs} ms`;
    const timer = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), timeoutMs);
    for (const b of background) {
      void b.exited.then((run) => {
        why = `killed: the ${b.step} step exited with ${run.code ?? run.signal}`;
        killGroup(child.pid!, 'SIGKILL');
      });
    }
    try {
      const run = await exited;
      if (run.signal === 'SIGKILL') run.output += `\n[${why}]`;
      return run;
    } finally {
      clearTimeout(timer);
    }
  }

  async function admin(url: string, body: (client: pg.Client) => Promise<void>): Promise<void> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await body(client);
    } finally {
      await client.end();
    }
  }

  // Steps run in process groups of their own, which a signal to vitest does not reach: if this
  // worker exits or is signalled before afterAll, kill them on the way out. (The walkthrough's
  // databases and roles are left then; on the throwaway test server they go with it.)
  const killAll = () => {
    for (const pid of groups) killGroup(pid, 'SIGKILL');
  };
  const onSignal = (signal: NodeJS.Signals) => {
    killAll();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
    process.kill(process.pid, signal);
  };
  const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

  beforeAll(async () => {
    workDir = mkdtempSync(path.join(tmpdir(), 'bucketsync-walkthrough-'));
    process.on('exit', killAll);
    for (const signal of SIGNALS) process.once(signal, onSignal);
    await admin(sourceServerUrl, async (client) => {
      const { rows } = await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname = ANY($1)', [
        ROLES,
      ]);
      if (rows.length > 0) {
        throw new Error(
          `role ${rows.map((r) => r.rolname).join(', ')} already exists on ${sourceServerUrl}; ` +
            'the walkthrough creates and drops it, so run this test on a server without it',
        );
      }
      await client.query(`CREATE DATABASE ${sourceDatabase}`);
    });
    createdRoles = true;
    await admin(storageServerUrl, (client) => client.query(`CREATE DATABASE ${storageDatabase}`).then(() => undefined));

    const sourcePassword = randomBytes(9).toString('base64url');
    const storagePassword = randomBytes(9).toString('base64url');
    const sourceAdminUrl = withDatabase(sourceServerUrl, sourceDatabase);
    const storageAdminUrl = withDatabase(storageServerUrl, storageDatabase);
    variables = {
      SOURCE_ADMIN_URL: sourceAdminUrl,
      STORAGE_ADMIN_URL: storageAdminUrl,
      SOURCE_PASSWORD: sourcePassword,
      STORAGE_PASSWORD: storagePassword,
      SOURCE_URL: withUser(sourceAdminUrl, 'bucketsync_replication', sourcePassword),
      STORAGE_URL: withUser(storageAdminUrl, 'bucketsync_storage', storagePassword),
      BUCKETSYNC_PORT: String(await freePort()),
      BUCKETSYNC_REPO: repo,
    };
    console.log(`[walkthrough] running docs/self-hosting.md in ${workDir}`);
  }, 30_000);

  afterAll(async () => {
    killAll();
    process.off('exit', killAll);
    for (const signal of SIGNALS) process.off(signal, onSignal);
    // Slots first: a database with a logical slot cannot be dropped.
    await admin(sourceServerUrl, async (client) => {
      await client.query(
        `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`,
        [sourceDatabase],
      );
      await client.query(
        `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`,
        [sourceDatabase],
      );
      await client.query(`DROP DATABASE IF EXISTS ${sourceDatabase} WITH (FORCE)`);
    });
    await admin(storageServerUrl, async (client) => {
      await client.query(`DROP DATABASE IF EXISTS ${storageDatabase} WITH (FORCE)`);
      // Only roles this run created (beforeAll refused a server that had them).
      if (createdRoles) for (const role of ROLES) await client.query(`DROP ROLE IF EXISTS ${role}`);
    });
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  }, 30_000);

  it('the doc has the walkthrough steps the test knows how to check', () => {
    expect(steps.map((s) => s.name)).toEqual([
      'environment',
      'install',
      'source-setup',
      'storage-setup',
      'config',
      'start',
      'wait-ready',
      'fetch',
      'sdk-install',
      'sdk-client',
      'change',
      'slots',
      'remove',
    ]);
    expect(steps.filter((s) => s.background).map((s) => s.name)).toEqual(['start']);
  });

  /** What each step must print beyond exiting 0. */
  const checks: Record<string, (output: string) => void> = {
    install: (output) => {
      const version = (JSON.parse(readFileSync(path.join(repo, 'service/package.json'), 'utf8')) as { version: string })
        .version;
      expect(output.trim().split('\n').at(-1)).toBe(version);
    },
    config: (output) => expect(output).not.toMatch(/error/i),
    'wait-ready': (output) => expect(output.trim()).toBe('ready'),
    fetch: (output) =>
      expect(output).toMatch(/^checkpoint \d+: 1 bucket, 2 ops, all checksums verified$[\s\S]*^todos +2$/m),
    slots: (output) => expect(output).toMatch(/^ *slot_name *\n-+\n *bucketsync_[0-9a-f]{8}_c1 *\n\(1 row\)/m),
    'sdk-client': (output) => expect(output.trim().split('\n')).toEqual(['[ ] buy milk', '[x] call the bank']),
    change: (output) =>
      expect(output.trim().split('\n').slice(-3)).toEqual([
        '[ ] buy milk',
        '[x] call the bank',
        '[ ] water the plants',
      ]),
  };

  for (const [index, step] of steps.entries()) {
    it(`block ${index + 1}: ${step.name}${step.background ? ' (in the background)' : ''}`, async (context) => {
      if (failed) context.skip(`an earlier step (${failed}) failed`);
      try {
        if (step.name === 'environment') {
          // The doc's example values are replaced by the test databases; the names must match.
          const names = [...step.script.matchAll(/^export (\w+)=/gm)].map((m) => m[1]);
          expect(names).toEqual(ENVIRONMENT);
          expect(step.script.split('\n').filter((l) => l.trim() !== '' && !/^(#|export \w+=)/.test(l))).toEqual([]);
          return;
        }
        if (step.name === 'sdk-install') {
          expect(step.script.trim()).toBe(SDK_INSTALL.command);
          const fromService = createRequire(path.join(repo, 'service/package.json'));
          for (const name of SDK_INSTALL.packages) {
            const packageDir = path.dirname(fromService.resolve(`${name}/package.json`));
            const target = path.join(workDir, 'node_modules', name);
            mkdirSync(path.dirname(target), { recursive: true });
            if (!existsSync(target)) symlinkSync(realpathSync(packageDir), target, 'dir');
          }
          return;
        }
        if (step.name === STOP_BEFORE) await stopBackground();
        if (step.background) {
          background.push({ step: step.name, ...start(step) });
          return;
        }
        const started = Date.now();
        const run = await runStep(step, step.name === 'install' ? 150_000 : 60_000);
        console.log(`[walkthrough] ${step.name}: exit ${run.code ?? run.signal} after ${Date.now() - started} ms`);
        if (run.code !== 0) {
          const service = [...stoppedOutput, ...background.map((b) => `--- ${b.step} (background) ---\n${b.output()}`)];
          throw new Error(
            `step ${step.name} exited with ${run.code ?? run.signal}:\n${run.output}\n${service.join('\n')}`,
          );
        }
        checks[step.name]?.(run.output);
        if (step.name === 'remove') await expectNothingLeft();
      } catch (error) {
        failed = step.name;
        throw error;
      }
    }, 180_000);
  }

  /** Step 8: Ctrl-C in the service's terminal, which signals its whole process group. */
  async function stopBackground(): Promise<void> {
    for (const b of background.splice(0)) {
      stoppedOutput.push(`--- ${b.step} (stopped) ---\n${b.output()}`);
      killGroup(b.child.pid!, 'SIGINT');
      const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000));
      const result = await Promise.race([b.exited, timeout]);
      if (result === 'timeout') throw new Error(`${b.step} did not stop within 20 s of Ctrl-C:\n${b.output()}`);
      // Every process of the group is gone, not only bash.
      expect(killGroup(b.child.pid!, 0)).toBe(false);
      expect(b.output()).not.toMatch(/"level":"(error|fatal)"|\bBS\d{4}\b/);
      expect(b.output()).toMatch(/\bstopped\b/);
    }
  }

  /** After step 9 the source has no slot, publication or role of BucketSync, storage no schema. */
  async function expectNothingLeft(): Promise<void> {
    await admin(variables.SOURCE_ADMIN_URL!, async (client) => {
      const slots = await client.query(
        'SELECT slot_name FROM pg_replication_slots WHERE database = current_database()',
      );
      expect(slots.rows).toEqual([]);
      const publications = await client.query('SELECT pubname FROM pg_publication');
      expect(publications.rows).toEqual([]);
      const roles = await client.query('SELECT rolname FROM pg_roles WHERE rolname = ANY($1)', [ROLES]);
      expect(roles.rows).toEqual([]);
    });
    await admin(variables.STORAGE_ADMIN_URL!, async (client) => {
      const schemas = await client.query("SELECT nspname FROM pg_namespace WHERE nspname = 'bucketsync'");
      expect(schemas.rows).toEqual([]);
    });
  }
});
