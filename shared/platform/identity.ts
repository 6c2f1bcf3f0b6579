/**
 * Identity: one TokenCredential per process, shared by every client (Cosmos, Service Bus, Backstage).
 *
 * In production it is the Function App's managed identity and nothing else: a `ManagedIdentityCredential` (the
 * user-assigned identity, by client id). Not `DefaultAzureCredential`, which would quietly become a client-secret
 * or certificate service principal when such variables appear in the environment (the configuration refuses them
 * too). In local mode it is `DefaultAzureCredential`, so a developer's own Azure sign-in works against real
 * services; against the local stand-ins it resolves to the same managed-identity code path (IDENTITY_ENDPOINT /
 * IDENTITY_HEADER) that runs in Azure.
 */
import type { AccessToken, GetTokenOptions as GetTokenOptionsOfCore, TokenCredential } from '@azure/core-auth';
import type { Logger } from './logger';
import type { Metrics } from './metrics';
import { AsyncLocalStorage } from 'node:async_hooks';
import { createDefaultHttpClient, type HttpClient } from '@azure/core-rest-pipeline';
import { DefaultAzureCredential, ManagedIdentityCredential } from '@azure/identity';
import type { AppMode } from './config';
import { noAnswerStatus, recordDependencyCall } from './dependencies';
import { OperationAbortedError, TokenAcquisitionError } from './errors';

export interface CredentialOptions {
  mode: AppMode;
  /** Client id of the user-assigned managed identity; absent = the system-assigned one (or the developer's sign-in). */
  managedIdentityClientId?: string | undefined;
}

export function createCredential(options: CredentialOptions): TokenCredential {
  const clientId = options.managedIdentityClientId;
  const httpClient = tokenEndpointClient();
  if (options.mode === 'production') return new ManagedIdentityCredential({ ...(clientId && { clientId }), httpClient });
  return new DefaultAzureCredential({ ...(clientId && { managedIdentityClientId: clientId }), httpClient });
}

/** The HTTP attempts one `getToken` call made to the token endpoint (tracked across its async work). */
interface TokenEndpointAttempts {
  count: number;
  lastStatus?: number | string;
}

const tokenEndpointAttempts = new AsyncLocalStorage<TokenEndpointAttempts>();

/**
 * The credential's HTTP client: the SDK's default, counting each attempt (the credential's own retries included) and
 * its status for the {@link InstrumentedCredential} call it belongs to.
 */
function tokenEndpointClient(): HttpClient {
  const inner = createDefaultHttpClient();
  return {
    async sendRequest(request) {
      const attempts = tokenEndpointAttempts.getStore();
      if (attempts) attempts.count += 1;
      try {
        const response = await inner.sendRequest(request);
        if (attempts) attempts.lastStatus = response.status;
        return response;
      } catch (error) {
        if (attempts) attempts.lastStatus = noAnswerStatus(error, request.abortSignal?.aborted === true);
        throw error;
      }
    },
  };
}

export interface GetTokenOptions {
  /** Ignore the cached token and ask the credential again (used once after a 401). */
  forceRefresh?: boolean;
  abortSignal?: AbortSignal;
}

/** Supplies the bearer token the catalog reader sends to Backstage. */
export interface BackstageTokenProvider {
  getToken(options?: GetTokenOptions): Promise<string>;
}

export interface EntraTokenProviderOptions {
  /**
   * Ask for a new token this long before the cached one expires (default 5 minutes, as MSAL does); at half its
   * lifetime for tokens that live less than twice this.
   */
  refreshMarginInMs?: number;
  /** Clock; injectable for tests. */
  now?: () => number;
}

/**
 * Entra tokens for the Backstage app registration's scope, cached and refreshed ahead of expiry.
 * Concurrent callers share one in-flight request. `forceRefresh` drops the cached token first.
 */
export class EntraTokenProvider implements BackstageTokenProvider {
  private cached: AccessToken | undefined;
  private obtainedAt = 0;
  private inFlight: Promise<AccessToken> | undefined;
  private readonly refreshMarginInMs: number;
  private readonly now: () => number;

  constructor(
    private readonly credential: TokenCredential,
    private readonly scope: string,
    options: EntraTokenProviderOptions = {},
  ) {
    this.refreshMarginInMs = options.refreshMarginInMs ?? 5 * 60_000;
    this.now = options.now ?? Date.now;
  }

  async getToken(options: GetTokenOptions = {}): Promise<string> {
    if (options.abortSignal?.aborted) throw new OperationAbortedError();
    if (options.forceRefresh) this.cached = undefined;
    if (this.cached && !this.needsRefresh(this.cached)) return this.cached.token;
    this.inFlight ??= this.fetchToken(options.abortSignal).finally(() => {
      this.inFlight = undefined;
    });
    const token = await this.inFlight;
    return token.token;
  }

  private needsRefresh(token: AccessToken): boolean {
    const now = this.now();
    if (token.refreshAfterTimestamp !== undefined && now >= token.refreshAfterTimestamp) return true;
    // A token that lives less than twice the margin (e.g. 60 s) is refreshed at half its life; otherwise every
    // call would ask the credential again, and a credential with its own 5-minute margin (MSAL) would go to
    // the token endpoint every time.
    const lifetime = token.expiresOnTimestamp - this.obtainedAt;
    const margin = Math.min(this.refreshMarginInMs, lifetime / 2);
    return now >= token.expiresOnTimestamp - margin;
  }

  private async fetchToken(abortSignal?: AbortSignal): Promise<AccessToken> {
    let token: AccessToken | null;
    try {
      token = await this.credential.getToken(this.scope, abortSignal ? { abortSignal } : {});
    } catch (error) {
      throw new TokenAcquisitionError(this.scope, error);
    }
    if (!token) throw new TokenAcquisitionError(this.scope, new Error('the credential returned no token'));
    this.cached = token;
    this.obtainedAt = this.now();
    return token;
  }
}

/** A fixed token (Backstage `externalAccess` type `static`). Local mode only; config refuses it in production. */
export class StaticTokenProvider implements BackstageTokenProvider {
  constructor(private readonly token: string) {}
  getToken(_options?: GetTokenOptions): Promise<string> {
    return Promise.resolve(this.token);
  }
}

export interface InstrumentedCredentialOptions {
  metrics?: Metrics;
  logger?: Logger;
  /** Clock; injectable for tests. */
  now?: () => number;
}

/** What is known about the tokens of one scope (no token values). */
export interface ScopeTokenStatus {
  scope: string;
  /** Distinct tokens handed out: the first, then each refresh. */
  acquisitions: number;
  refreshes: number;
  failures: number;
  /** When the token in use expires. */
  expiresOn?: string;
}

/**
 * The process credential with telemetry: per scope, how many tokens were acquired and refreshed (a token other than
 * the last one handed out), how many requests failed, and the time left on the token handed out at each call
 * (`identity.token.remaining_seconds`, whose minimum says how close to expiry tokens are used). Failures are logged
 * with their scope; tokens never are.
 */
export class InstrumentedCredential implements TokenCredential {
  private readonly scopes = new Map<string, ScopeTokenStatus & { last?: AccessToken }>();
  private readonly now: () => number;

  constructor(
    private readonly inner: TokenCredential,
    private readonly options: InstrumentedCredentialOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  async getToken(scopes: string | string[], options?: GetTokenOptionsOfCore): Promise<AccessToken | null> {
    const scope = Array.isArray(scopes) ? scopes.join(' ') : scopes;
    const status = this.statusOf(scope);
    const started = this.now();
    const attempts: TokenEndpointAttempts = { count: 0 };
    const measured = performance.now();
    const recordCall = (success: boolean) => {
      // Only calls that went to the token endpoint (a token from the credential's cache makes no request).
      if (attempts.count === 0) return;
      recordDependencyCall(this.options.metrics, {
        dependency: 'identity',
        operation: 'token',
        status: attempts.lastStatus ?? 'network',
        retries: attempts.count - 1,
        durationInMs: performance.now() - measured,
        success,
      });
    };
    let token: AccessToken | null;
    try {
      token = await tokenEndpointAttempts.run(attempts, () => this.inner.getToken(scopes, options));
      if (!token) throw new Error('the credential returned no token');
      recordCall(true);
    } catch (error) {
      recordCall(false);
      status.failures += 1;
      this.options.metrics?.increment('identity.token.failures', 1, { scope });
      this.options.logger?.warn('Could not get a token', { operation: 'token', scope, error });
      throw error;
    }
    if (status.last?.token !== token.token) {
      const refresh = status.last !== undefined;
      status.acquisitions += 1;
      if (refresh) status.refreshes += 1;
      status.last = token;
      status.expiresOn = new Date(token.expiresOnTimestamp).toISOString();
      this.options.metrics?.increment('identity.token.acquisitions', 1, { scope, refresh: String(refresh) });
      this.options.metrics?.record('identity.token.acquisition_ms', this.now() - started, { scope });
      this.options.logger?.debug(refresh ? 'Token refreshed' : 'Token acquired', { operation: 'token', scope, expiresOn: status.expiresOn });
    }
    this.options.metrics?.record('identity.token.remaining_seconds', Math.round((token.expiresOnTimestamp - this.now()) / 1000), { scope });
    return token;
  }

  /** Per scope, what the credential handed out so far. */
  status(): ScopeTokenStatus[] {
    return [...this.scopes.values()].map(({ last: _last, ...status }) => status);
  }

  private statusOf(scope: string): ScopeTokenStatus & { last?: AccessToken } {
    let status = this.scopes.get(scope);
    if (!status) {
      status = { scope, acquisitions: 0, refreshes: 0, failures: 0 };
      this.scopes.set(scope, status);
    }
    return status;
  }
}
