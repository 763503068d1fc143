export {
  decodeAuthConfig,
  DEFAULT_MAX_LIFETIME_SECONDS,
  SUPPORTED_ALGORITHMS,
  type AuthConfig,
  type AuthKey,
  type AuthKeyType,
} from './auth-config.js';
export {
  parseAuthorizationHeader,
  TokenVerifier,
  type TokenVerifierOptions,
  type VerifiedToken,
} from './token-verifier.js';
export { signDevToken, type DevTokenOptions } from './token-signer.js';
