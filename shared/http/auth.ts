/**
 * Bearer-token authentication for the HTTP endpoints, for every issuer this API trusts:
 *
 * - **Entra ID** (`AUTH_ISSUER`, `AUTH_AUDIENCE`): roles from the `roles` claim, and only access tokens — an ID token
 *   carries the same roles but is meant for the client that signed in, so a v2 token without `azp` or a v1 token
 *   without `appid` is refused;
 * - **federated issuers** (`AUTH_FEDERATED_ISSUERS`): any OpenID issuer — Okta, a Kubernetes cluster's service-account
 *   issuer — each with its own audiences and the claim that carries its roles (`scp`, `groups`, `roles`, or `sub`
 *   mapped to roles), so a Backstage in any cluster can authenticate with a projected service-account token; tokens
 *   with ID-token claims (`nonce`, `at_hash`) are refused.
 *
 * The token's unverified `iss` only picks the trust to check it against; the signature (through that issuer's JWKS),
 * the issuer, the audience and the expiry (with a small clock tolerance) are then verified, and one of the
 * endpoint's roles is required — optionally only from the client ids `AUTH_ROLE_CLIENTS` pins for that role.
 */
import { createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { AuthConfig, TrustedIssuer } from '../platform/config';
import { AuthenticationError, AuthorizationError, AuthUnavailableError } from '../platform/errors';

export interface Principal {
  subject: string;
  roles: string[];
  /** The calling application (Entra `azp`/`appid`; `client_id`/`cid` of other issuers), when present. */
  appId?: string;
  /** The issuer that vouched for the token. */
  issuer: string;
  claims: JWTPayload;
}

type KeySet = ReturnType<typeof createRemoteJWKSet>;

/** Claims only ID tokens carry (OpenID Connect Core §2, §3.1.3.6). */
const ID_TOKEN_CLAIMS = ['nonce', 'at_hash', 'c_hash'];

export class TokenValidator {
  private readonly keySets = new Map<TrustedIssuer, Promise<KeySet>>();

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
    const trust = this.trustFor(token);
    const keySet = await this.getKeySet(trust);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keySet, {
        issuer: trust.issuers,
        audience: trust.audiences,
        algorithms: trust.kind === 'entra' ? ['RS256'] : ['RS256', 'ES256', 'PS256'],
        clockTolerance: this.config.clockToleranceInSeconds,
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (error) {
      throw this.explain(error, trust);
    }
    refuseIdTokens(payload, trust);
    const appId = clientOf(payload);
    const principal: Principal = { subject: payload.sub!, roles: rolesOf(payload, trust), issuer: payload.iss!, claims: payload, ...(appId && { appId }) };
    const granted = roles.filter((role) => principal.roles.includes(role));
    if (granted.length === 0) throw new AuthorizationError(roles, principal);
    // A role pinned to client ids counts only when the caller is one of them.
    const allowed = granted.filter((role) => {
      const clients = this.config.roleClients[role];
      return !clients || (appId !== undefined && clients.includes(appId));
    });
    if (allowed.length === 0) throw new AuthorizationError(roles, principal, 'is not one of the clients allowed to hold it');
    return principal;
  }

  /** The trust whose issuer the (not yet verified) token names; 401 when none does. */
  private trustFor(token: string): TrustedIssuer {
    let issuer: unknown;
    try {
      issuer = decodeJwt(token).iss;
    } catch (error) {
      throw new AuthenticationError('The token is malformed', { error: 'invalid_token', cause: error });
    }
    const trust = typeof issuer === 'string' ? this.config.trusts.find((t) => t.issuers.includes(issuer)) : undefined;
    if (!trust) throw new AuthenticationError('The token was rejected: its issuer is not trusted', { error: 'invalid_token' });
    return trust;
  }

  private explain(error: unknown, trust: TrustedIssuer): Error {
    const e = joseErrors;
    if (error instanceof e.JWTExpired) return new AuthenticationError('The token has expired', { error: 'invalid_token', cause: error });
    if (error instanceof e.JWTClaimValidationFailed) {
      const claim = error.claim;
      const what =
        claim === 'aud'
          ? `its audience is not one this API accepts (${trust.audiences.join(', ')})`
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
      this.keySets.delete(trust);
      return new AuthUnavailableError("The token issuer's signing keys could not be fetched", error);
    }
    if (error instanceof e.JOSEError) {
      return new AuthenticationError('The token is malformed', { error: 'invalid_token', cause: error });
    }
    return new AuthUnavailableError('The token could not be validated', error);
  }

  /** The trusts this API accepts tokens from. */
  get trusts(): readonly TrustedIssuer[] {
    return this.config.trusts;
  }

  /** The self-check's harmless call: fetches the trust's signing keys (discovery first, when no jwksUri is set). */
  async probe(trust: TrustedIssuer): Promise<void> {
    this.keySets.delete(trust);
    const keySet = await this.getKeySet(trust);
    try {
      await keySet.reload();
    } catch (error) {
      this.keySets.delete(trust);
      throw new AuthUnavailableError(`The signing keys of ${trust.name} could not be fetched: ${(error as Error).message}`, error);
    }
  }

  private getKeySet(trust: TrustedIssuer): Promise<KeySet> {
    let keySet = this.keySets.get(trust);
    if (!keySet) {
      keySet = discoverKeySet(trust).catch((error: unknown) => {
        this.keySets.delete(trust);
        throw error;
      });
      this.keySets.set(trust, keySet);
    }
    return keySet;
  }
}

async function discoverKeySet(trust: TrustedIssuer): Promise<KeySet> {
  let jwksUri = trust.jwksUri;
  if (!jwksUri) {
    const discovery = `${trust.issuers[0]!.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    try {
      const response = await fetch(discovery, { signal: AbortSignal.timeout(10_000), redirect: 'error' });
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

/** Only access tokens: an ID token is meant for the client, not for this API, even when it carries the same roles. */
function refuseIdTokens(payload: JWTPayload, trust: TrustedIssuer): void {
  const notAccess = () => new AuthenticationError('The token is not an access token (an ID token is meant for the client, not for this API)', { error: 'invalid_token' });
  if (ID_TOKEN_CLAIMS.some((claim) => payload[claim] !== undefined)) throw notAccess();
  if (trust.kind !== 'entra') return;
  // Entra access tokens name the calling application: v2 in `azp`, v1 in `appid`. Its ID tokens do not.
  const version = payload.ver;
  const accessToken = (version === '2.0' && typeof payload.azp === 'string') || (version === '1.0' && typeof payload.appid === 'string');
  if (!accessToken) throw notAccess();
}

/**
 * The roles the token carries, read from the trust's claim and mapped. Entra's `roles` is always a list (a string there
 * is malformed and grants nothing); other issuers' claims may be a space-separated string, as OAuth's `scp` is.
 */
function rolesOf(payload: JWTPayload, trust: TrustedIssuer): string[] {
  const raw = payload[trust.rolesClaim];
  const values = Array.isArray(raw)
    ? raw.filter((v): v is string => typeof v === 'string')
    : typeof raw === 'string' && trust.kind === 'federated'
      ? raw.split(' ').filter(Boolean)
      : [];
  if (!trust.roleMap) return values;
  return [...new Set(values.flatMap((value) => (Object.hasOwn(trust.roleMap!, value) ? trust.roleMap![value]! : [])))];
}

function clientOf(payload: JWTPayload): string | undefined {
  for (const claim of ['azp', 'appid', 'client_id', 'cid']) {
    const value = payload[claim];
    if (typeof value === 'string' && value.length > 0) return value;
  }
  return undefined;
}

function isNetworkError(error: unknown): boolean {
  return error instanceof TypeError && /fetch failed/i.test(error.message);
}
