/**
 * `bucketsync-test-client` command line: a scriptable stand-in for a PowerSync client.
 * Each command is a small module; this file only routes arguments to them.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FETCH_USAGE, fetchCommand } from './fetch-command.js';
import { GENERATE_KEY_USAGE, generateKeyCommand } from './generate-key-command.js';
import { GENERATE_TOKEN_USAGE, generateTokenCommand } from './generate-token-command.js';

interface Command {
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
}

const packageJson = JSON.parse(
  readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json'), 'utf8'),
) as { version: string };

const commands: Record<string, Command> = {
  'generate-key': {
    summary: 'print a fresh HS256 signing key as a JWK, or as a client_auth config section (--format config)',
    usage: GENERATE_KEY_USAGE,
    run: generateKeyCommand,
  },
  'generate-token': {
    summary: "mint an HS256 development token from a service config's client_auth key",
    usage: GENERATE_TOKEN_USAGE,
    run: generateTokenCommand,
  },
  fetch: {
    summary: 'sync once to the first checkpoint_complete, verify checksums, print rows per table',
    usage: FETCH_USAGE,
    run: fetchCommand,
  },
  version: {
    summary: 'print the version',
    usage: 'bucketsync-test-client version',
    run: async () => {
      process.stdout.write(`${packageJson.version}\n`);
      return 0;
    },
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  const usages = Object.values(commands).map((c) => `  ${c.usage}`);
  return `Usage: bucketsync-test-client <command> [options]\n\nCommands:\n${lines.join('\n')}\n\n${usages.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') return commands.version!.run([]);
  const command = commands[name];
  if (!command) {
    process.stderr.write(`bucketsync-test-client: unknown command "${name}".\n\n${usage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`Usage: ${command.usage}\n`);
    return 0;
  }
  return command.run(rest);
}

process.exitCode = await main(process.argv.slice(2));
