/**
 * The request data a connection brings (JWT claims, client parameters, one subscription's
 * parameters) and how sync config expressions read it (`request.*`, `token_parameters.*`,
 * `user_parameters.*`, `auth.*`, `subscription.*`, `connection.*`).
 */
import { jsToJsonText, jsToSqlite } from './json-text.js';
import type { SqliteValue } from './sqlite-value.js';

/** A value of the request that an expression reads. */
export type RequestRef =
  | { source: 'user_id' }
  | { source: 'jwt' }
  | { source: 'claim'; key: string }
  | { source: 'token_parameter'; key: string }
  | { source: 'client_parameters' }
  | { source: 'client_parameter'; key: string }
  | { source: 'subscription_parameters' }
  | { source: 'subscription_parameter'; key: string };

/** True for values a client can set freely (not signed in the token). */
export function isUnauthenticated(ref: RequestRef): boolean {
  return (
    ref.source === 'client_parameters' ||
    ref.source === 'client_parameter' ||
    ref.source === 'subscription_parameters' ||
    ref.source === 'subscription_parameter'
  );
}

/** Raised when a subscription lacks a parameter its stream reads; reported for that subscription only. */
export class MissingParameterError extends Error {
  constructor(readonly key: string) {
    super(`subscription parameter "${key}" is missing: pass it in the subscription's parameters`);
    this.name = 'MissingParameterError';
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Request data of one connection (and, for streams, one subscription). Values are converted lazily. */
export class RequestContext {
  private jwtText: string | undefined;
  private clientText: string | undefined;
  private subscriptionText: string | undefined;

  constructor(
    readonly claims: Record<string, unknown>,
    readonly clientParameters: Record<string, unknown>,
    readonly subscriptionParameters: Record<string, unknown> | null = null,
  ) {}

  /** The same connection data with another subscription's parameters. */
  withSubscription(parameters: Record<string, unknown> | null): RequestContext {
    const next = new RequestContext(this.claims, this.clientParameters, parameters);
    next.jwtText = this.jwtText;
    next.clientText = this.clientText;
    return next;
  }

  /** Reads one request value as a SQL value. */
  read(ref: RequestRef): SqliteValue {
    switch (ref.source) {
      case 'user_id':
        return jsToSqlite(this.claims.sub);
      case 'jwt':
        return (this.jwtText ??= jsToJsonText(this.claims));
      case 'claim':
        return jsToSqlite(this.claims[ref.key]);
      case 'token_parameter': {
        if (ref.key === 'user_id') return jsToSqlite(this.claims.sub);
        const parameters = this.claims.parameters;
        return isRecord(parameters) ? jsToSqlite(parameters[ref.key]) : null;
      }
      case 'client_parameters':
        return (this.clientText ??= jsToJsonText(this.clientParameters));
      case 'client_parameter':
        return jsToSqlite(this.clientParameters[ref.key]);
      case 'subscription_parameters':
        return (this.subscriptionText ??= jsToJsonText(this.subscriptionParameters ?? {}));
      case 'subscription_parameter': {
        const parameters = this.subscriptionParameters;
        if (parameters === null || !Object.prototype.hasOwnProperty.call(parameters, ref.key)) {
          throw new MissingParameterError(ref.key);
        }
        return jsToSqlite(parameters[ref.key]);
      }
    }
  }
}
