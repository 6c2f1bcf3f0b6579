/**
 * Entra ID bearer-token authentication for the HTTP endpoints: signature through the issuer's JWKS,
 * issuer, audience, expiry (with a small clock tolerance) and a required app role (`roles` claim).
 */
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { AuthConfig } from '../platform/config';
import { AuthenticationError, AuthorizationError, AuthUnavailableError } from '../platform/errors';

export interface Principal {
  subject: string;
  roles: string[];
  /** The calling application (Entra `azp`/`appid`), when present. */
  appId?: string;
  claims: JWTPayload;
}

type KeySet = ReturnType<typeof createRemoteJWKSet>;

export class TokenValidator {
  private keySet: Promise<KeySet> | undefined;

  constructor(private readonly config: AuthConfig) {}

  /**
   * Validates `authorization` (the raw header) and requires one of `roles`.
   * Throws {@link AuthenticationError} (401), {@link AuthorizationError} (403) or {@link AuthUnavailableError} (503).
   */
  async authenticate(authorization: string | null | undefined, roles: readonly string[]): Promise<Principal> {
    if (!authorization) throw new AuthenticationError('An Authorization: Bearer <token> header is required');
    const match = /^Bearer[ ]+([A-Za-z0-9\-_.~+/]+=*)$/i.exec(authorization.trim());
    if (!match) {
      throw new AuthenticationError('The Authorization header must be "Bearer <token>"', { error: 'invalid_request' });
    }
    const token = match[1]!;
    const keySet = await this.getKeySet();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keySet, {
        issuer: this.config.issuers,
        audience: this.config.audiences,
        algorithms: ['RS256'],
        clockTolerance: this.config.clockToleranceInSeconds,
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (error) {
      throw this.explain(error);
    }
    const tokenRoles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string') : [];
    const appId = typeof payload.azp === 'string' ? payload.azp : typeof payload.appid === 'string' ? payload.appid : undefined;
    const principal: Principal = { subject: payload.sub!, roles: tokenRoles, claims: payload, ...(appId && { appId }) };
    if (!roles.some((role) => tokenRoles.includes(role))) throw new AuthorizationError(roles, principal);
    return principal;
  }

  private explain(error: unknown): Error {
    const e = joseErrors;
    if (error instanceof e.JWTExpired) return new AuthenticationError('The token has expired', { error: 'invalid_token', cause: error });
    if (error instanceof e.JWTClaimValidationFailed) {
      const claim = error.claim;
      const what =
        claim === 'aud'
          ? `its audience is not one this API accepts (${this.config.audiences.join(', ')})`
          : claim === 'iss'
            ? 'its issuer is not trusted'
            : claim === 'nbf'
              ? 'it is not valid yet'
              : `claim '${claim}' is invalid (${error.reason})`;
      return new AuthenticationError(`The token was rejected: ${what}`, { error: 'invalid_token', cause: error });
    }
    if (error instanceof e.JWKSNoMatchingKey) {
      return new AuthenticationError('The token was signed with a key the issuer does not publish', { error: 'invalid_token', cause: error });
    }
    if (error instanceof e.JWSSignatureVerificationFailed) {
      return new AuthenticationError('The token signature is invalid', { error: 'invalid_token', cause: error });
    }
    if (error instanceof e.JOSEAlgNotAllowed) {
      return new AuthenticationError('The token uses a signing algorithm this API does not accept', { error: 'invalid_token', cause: error });
    }
    if (error instanceof e.JWKSTimeout || error instanceof e.JWKSInvalid || isNetworkError(error)) {
      this.keySet = undefined;
      return new AuthUnavailableError('The token issuer\'s signing keys could not be fetched', error);
    }
    if (error instanceof e.JOSEError) {
      return new AuthenticationError('The token is malformed', { error: 'invalid_token', cause: error });
    }
    return new AuthUnavailableError('The token could not be validated', error);
  }

  private getKeySet(): Promise<KeySet> {
    this.keySet ??= this.discoverKeySet().catch((error: unknown) => {
      this.keySet = undefined;
      throw error;
    });
    return this.keySet;
  }

  private async discoverKeySet(): Promise<KeySet> {
    let jwksUri = this.config.jwksUri;
    if (!jwksUri) {
      const issuer = this.config.issuers[0]!.replace(/\/+$/, '');
      const discovery = `${issuer}/.well-known/openid-configuration`;
      try {
        const response = await fetch(discovery, { signal: AbortSignal.timeout(10_000) });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const document = (await response.json()) as { jwks_uri?: unknown };
        if (typeof document.jwks_uri !== 'string') throw new Error('no jwks_uri in the discovery document');
        jwksUri = document.jwks_uri;
      } catch (error) {
        throw new AuthUnavailableError(`OpenID discovery at ${discovery} failed: ${(error as Error).message}`, error);
      }
    }
    return createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: 10_000, cooldownDuration: 30_000, cacheMaxAge: 6 * 3600_000 });
  }
}

function isNetworkError(error: unknown): boolean {
  return error instanceof TypeError && /fetch failed/i.test(error.message);
}
