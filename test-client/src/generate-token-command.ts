/**
 * `generate-token`: prints an HS256 JWT signed with a key from a service config, for trying
 * the service with the fetch command, curl, or an SDK during development.
 */
import { ClientAuthConfigError, loadClientAuthConfig } from './client-auth-config.js';
import { numberOption, parseCommandArguments, requiredOption, runCommand, UsageError } from './command-arguments.js';
import { signHs256Token } from './hs256-token.js';

export const GENERATE_TOKEN_USAGE =
  'bucketsync-test-client generate-token --config <service config.yaml> --sub <user id> [--aud <audience>] [--expires-in <seconds, default 3600>] [--kid <key id>]';

/** Runs the command; returns the exit code. */
export function generateTokenCommand(args: string[]): Promise<number> {
  return runCommand('generate-token', GENERATE_TOKEN_USAGE, () => {
    const parsed = parseCommandArguments(args, { options: ['config', 'sub', 'aud', 'expires-in', 'kid'] });
    const file = requiredOption(parsed, 'config');
    const subject = requiredOption(parsed, 'sub');
    const expiresIn = numberOption(parsed, 'expires-in', 3600);
    const kid = parsed.options.get('kid');
    try {
      const config = loadClientAuthConfig(file);
      const key = kid === undefined ? config.hs256Keys[0] : config.hs256Keys.find((k) => k.kid === kid);
      if (!key) {
        if (kid !== undefined) {
          const known = config.allKids.length > 0 ? config.allKids.join(', ') : 'none';
          throw new UsageError(`${file} has no HS256 (kty: oct) key with kid "${kid}" (key ids: ${known})`);
        }
        throw new ClientAuthConfigError(
          `${file}: client_auth.jwks.keys has no HS256 key (kty: oct); add one to mint development tokens`,
        );
      }
      const token = signHs256Token({
        secret: key.secret,
        kid: key.kid,
        subject,
        audience: parsed.options.get('aud') ?? config.audiences[0],
        expiresIn,
      });
      process.stdout.write(`${token}\n`);
      return 0;
    } catch (error) {
      if (error instanceof ClientAuthConfigError) {
        process.stderr.write(`bucketsync-test-client generate-token: ${error.message}\n`);
        return 1;
      }
      throw error;
    }
  });
}
