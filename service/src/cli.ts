/**
 * `bucketsync` command line: one binary for every role and the offline debugging commands.
 * Each command is a small module; this file only routes arguments to them.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { bucketsCommand } from './commands/buckets-command.js';
import { compactCommand } from './commands/compact-command.js';
import { evalRowCommand } from './commands/eval-row-command.js';
import { migrateCommand } from './commands/migrate-command.js';
import { startCommand } from './commands/start-command.js';
import { validateCommand } from './commands/validate-command.js';

interface Command {
  summary: string;
  run(args: string[]): Promise<number>;
}

const packageJson = JSON.parse(
  readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json'), 'utf8'),
) as { version: string };

const commands: Record<string, Command> = {
  version: {
    summary: 'print the version',
    run: async () => {
      console.log(packageJson.version);
      return 0;
    },
  },
  start: {
    summary: 'run the service: -c <config file> [-r unified|sync|api]',
    run: startCommand,
  },
  migrate: {
    summary: 'create or upgrade the bucket storage schema: -c <config file>',
    run: migrateCommand,
  },
  compact: {
    summary: 'compact bucket storage (checksums unchanged): -c <config file>',
    run: compactCommand,
  },
  validate: {
    summary: 'check a sync config offline: prints file:line:col severity message',
    run: validateCommand,
  },
  'eval-row': {
    summary: 'show the buckets and parameter entries one source row produces',
    run: evalRowCommand,
  },
  buckets: {
    summary: 'show the buckets a connection (claims, params, streams) would sync',
    run: bucketsCommand,
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: bucketsync <command> [options]\n\nCommands:\n${lines.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage());
    return name === undefined ? 1 : 0;
  }
  if (name === '--version') return commands.version!.run([]);
  const command = commands[name];
  if (!command) {
    process.stderr.write(`bucketsync: unknown command "${name}".\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}

process.exitCode = await main(process.argv.slice(2));
