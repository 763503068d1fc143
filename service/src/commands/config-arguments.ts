/**
 * Arguments of the commands that run against a service config: `-c/--config FILE` and, for
 * `start`, `-r/--role`. Bad arguments raise UsageError (exit code 2 with the usage).
 */
import { UsageError } from './command-arguments.js';

export type ServiceRole = 'unified' | 'sync' | 'api';

export const SERVICE_ROLES: readonly ServiceRole[] = ['unified', 'sync', 'api'];

export interface ConfigArguments {
  configFile: string;
  role: ServiceRole;
}

export function parseConfigArguments(args: string[], options: { allowRole: boolean }): ConfigArguments {
  let configFile: string | undefined = process.env.BUCKETSYNC_CONFIG;
  let role: string = process.env.BUCKETSYNC_ROLE ?? 'unified';
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [flag, inline] = arg.includes('=')
      ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
      : [arg, undefined];
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    if (flag === '-c' || flag === '--config') configFile = value();
    else if (options.allowRole && (flag === '-r' || flag === '--role')) role = value();
    else throw new UsageError(`unexpected argument "${arg}"`);
  }
  if (!configFile) throw new UsageError('missing -c <config file> (or set BUCKETSYNC_CONFIG)');
  if (!SERVICE_ROLES.includes(role as ServiceRole)) {
    throw new UsageError(`--role must be one of ${SERVICE_ROLES.join(', ')} (got "${role}")`);
  }
  return { configFile, role: role as ServiceRole };
}
