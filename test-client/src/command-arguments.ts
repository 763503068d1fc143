/**
 * Argument parsing for the test-client commands: `--name value` (or `--name=value`) options
 * and bare `--flag` switches, no positionals. Bad arguments raise UsageError, which the
 * command runner turns into a message, the command's usage, and exit code 2.
 */

/** Bad command-line arguments; the message says what is wrong. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Parsed arguments of one command. */
export interface CommandArguments {
  options: Map<string, string>;
  flags: Set<string>;
}

/** Which names a command accepts: options take a value, flags do not. */
export interface ArgumentSpec {
  options: readonly string[];
  flags?: readonly string[];
}

/** Parses `[--option value]... [--flag]...`, accepting only the names in the spec. */
export function parseCommandArguments(args: string[], spec: ArgumentSpec): CommandArguments {
  const options = new Map<string, string>();
  const flags = new Set<string>();
  const known = [...spec.options, ...(spec.flags ?? [])].map((a) => `--${a}`).join(', ');
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    if (spec.flags?.includes(name)) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      flags.add(name);
      continue;
    }
    if (!spec.options.includes(name)) throw new UsageError(`unknown option --${name} (expected ${known})`);
    const value = eq >= 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value`);
    if (options.has(name)) throw new UsageError(`--${name} is given twice`);
    options.set(name, value);
  }
  return { options, flags };
}

/** The value of a required option. */
export function requiredOption(args: CommandArguments, name: string): string {
  const value = args.options.get(name);
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

/** A positive number option (seconds and the like); the default when absent. */
export function numberOption(args: CommandArguments, name: string, fallback: number): number {
  const text = args.options.get(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0) {
    throw new UsageError(`--${name} must be a positive number, got "${text}"`);
  }
  return value;
}

/** Parses a JSON option value, naming the option when it is not valid JSON. */
export function jsonOption(args: CommandArguments, name: string): unknown {
  const text = args.options.get(name);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new UsageError(`--${name} is not valid JSON: ${(error as Error).message}`);
  }
}

/** Runs a command body, mapping UsageError to its message plus usage and exit code 2. */
export async function runCommand(name: string, usage: string, body: () => Promise<number> | number): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`bucketsync-test-client ${name}: ${error.message}.\n\nUsage: ${usage}\n`);
      return 2;
    }
    throw error;
  }
}
