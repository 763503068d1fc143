/**
 * Argument parsing shared by the offline commands: one positional file plus `--name value`
 * (or `--name=value`) options. Bad arguments raise UsageError, which the commands turn into
 * a message, their usage, and exit code 2.
 */
import { readFileSync } from 'node:fs';
import { parseSyncConfig, type SyncConfig } from '@bucketsync/sync-rules';

/** Bad command-line arguments; the message says what is wrong. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Parsed arguments of one command. */
export interface CommandArguments {
  file: string;
  options: Map<string, string>;
}

/** Parses `<file> [--option value]...`, accepting only the given option names. */
export function parseCommandArguments(args: string[], allowed: readonly string[]): CommandArguments {
  const options = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    if (!allowed.includes(name)) {
      throw new UsageError(
        `unknown option --${name}${allowed.length ? ` (expected ${allowed.map((a) => `--${a}`).join(', ')})` : ''}`,
      );
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value`);
    if (options.has(name)) throw new UsageError(`--${name} is given twice`);
    options.set(name, value);
  }
  if (positional.length === 0) throw new UsageError('missing the sync config file');
  if (positional.length > 1) throw new UsageError(`unexpected argument "${positional[1]}"`);
  return { file: positional[0]!, options };
}

/** Parses a JSON option value, naming the option when it is not valid JSON. */
export function jsonOption<T>(name: string, text: string, parse: (text: string) => T): T {
  try {
    return parse(text);
  } catch (error) {
    throw new UsageError(`--${name} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Reads and compiles a sync config; prints its diagnostics to stderr. Undefined when it has a fatal error. */
export function loadSyncConfig(file: string): SyncConfig | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const { config, diagnostics } = parseSyncConfig(text);
  for (const d of diagnostics) process.stderr.write(`${file}:${d.line}:${d.column} ${d.severity} ${d.message}\n`);
  return config;
}

/** Runs a command body, mapping UsageError to its message plus usage and exit code 2. */
export async function runCommand(name: string, usage: string, body: () => Promise<number> | number): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`bucketsync ${name}: ${error.message}.\n\nUsage: ${usage}\n`);
      return 2;
    }
    throw error;
  }
}
