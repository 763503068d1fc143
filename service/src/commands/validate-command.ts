/**
 * `bucketsync validate <sync-config.yaml>`: prints every diagnostic as
 * `file:line:col severity message`; exit code 1 on a fatal error, else 0.
 */
import { readFileSync } from 'node:fs';
import { parseSyncConfig } from '@bucketsync/sync-rules';
import { parseCommandArguments, runCommand, UsageError } from './command-arguments.js';

export const VALIDATE_USAGE = 'bucketsync validate <sync-config.yaml>';

/** Runs the validate command. */
export function validateCommand(args: string[]): Promise<number> {
  return runCommand('validate', VALIDATE_USAGE, () => {
    const { file } = parseCommandArguments(args, []);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    const { diagnostics } = parseSyncConfig(text);
    for (const d of diagnostics) process.stdout.write(`${file}:${d.line}:${d.column} ${d.severity} ${d.message}\n`);
    return diagnostics.some((d) => d.severity === 'fatal') ? 1 : 0;
  });
}
