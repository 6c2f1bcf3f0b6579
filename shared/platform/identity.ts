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
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { DefaultAzureCredential, ManagedIdentityCredential } from '@azure/identity';
import type { AppMode } from './config';
import { OperationAbortedError, TokenAcquisitionError } from './errors';

export interface CredentialOptions {
  mode: AppMode;
  /** Client id of the user-assigned managed identity; absent = the system-assigned one (or the developer's sign-in). */
  managedIdentityClientId?: string | undefined;
}

export function createCredential(options: CredentialOptions): TokenCredential {
  const clientId = options.managedIdentityClientId;
  if (options.mode === 'production') return new ManagedIdentityCredential(clientId ? { clientId } : {});
  return new DefaultAzureCredential(clientId ? { managedIdentityClientId: clientId } : {});
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
