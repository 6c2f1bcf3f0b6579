/**
 * Sending one batch of CloudEvents to one endpoint, authenticated with an Entra token (the default), a projected
 * Kubernetes service-account token, or a Standard Webhooks signature. No token or secret is ever logged, and no
 * redirect is followed (it would carry the token to another address).
 */
import { readFile } from 'node:fs/promises';
import type { TokenCredential } from '@azure/core-auth';
import { ChainedTokenCredential, DefaultAzureCredential, ManagedIdentityCredential, WorkloadIdentityCredential } from '@azure/identity';
import { Webhook } from 'standardwebhooks';
import type { EndpointSettings } from './config';
import type { CatalogEvent } from './ChangeEventsEngine';

export type SendOutcome = { ok: true; status: number } | { ok: false; status?: number; error: string; retryAfterInMs?: number };

export class EndpointClient {
  private readonly webhook: Webhook | undefined;

  constructor(
    private readonly endpoint: EndpointSettings,
    private readonly credential: TokenCredential | undefined,
    private readonly fetchImpl: typeof fetch = globalThis.fetch,
  ) {
    this.webhook = endpoint.auth.type === 'standardWebhooks' ? new Webhook(endpoint.auth.secret) : undefined;
  }

  async send(events: CatalogEvent[], deliveryId: string, signal?: AbortSignal): Promise<SendOutcome> {
    const body = JSON.stringify(events);
    const headers: Record<string, string> = { 'content-type': 'application/cloudevents-batch+json' };
    try {
      if (this.endpoint.auth.type === 'entra') {
        const token = await this.credential!.getToken(this.endpoint.auth.scope, signal ? { abortSignal: signal } : {});
        if (!token) return { ok: false, error: `no token for ${this.endpoint.auth.scope}` };
        headers.authorization = `Bearer ${token.token}`;
      } else if (this.endpoint.auth.type === 'serviceAccountToken') {
        // Read on every request: the kubelet rotates the projected token in place, well before it expires.
        const token = (await readFile(this.endpoint.auth.tokenPath, 'utf8')).trim();
        if (!token) return { ok: false, error: `the service-account token file ${this.endpoint.auth.tokenPath} is empty` };
        headers.authorization = `Bearer ${token}`;
      } else {
        const timestamp = new Date();
        headers['webhook-id'] = deliveryId;
        headers['webhook-timestamp'] = String(Math.floor(timestamp.getTime() / 1000));
        headers['webhook-signature'] = this.webhook!.sign(deliveryId, timestamp, body);
      }
    } catch (error) {
      return { ok: false, error: `authentication failed: ${(error as Error).message}` };
    }
    const timeout = AbortSignal.timeout(this.endpoint.timeoutInMs);
    let response: Response;
    try {
      response = await this.fetchImpl(this.endpoint.url, { method: 'POST', headers, body, redirect: 'error', signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    } catch (error) {
      return { ok: false, error: timeout.aborted ? 'timed out' : `request failed: ${(error as Error).message}` };
    }
    const text = await response.text().catch(() => '');
    // 409 duplicate-delivery: the receiver already has this batch (a retry after a lost answer).
    if (response.ok || response.status === 409) return { ok: true, status: response.status };
    let detail = '';
    try {
      const problem = JSON.parse(text) as { title?: unknown; detail?: unknown };
      detail = typeof problem.detail === 'string' ? `: ${problem.detail.slice(0, 300)}` : typeof problem.title === 'string' ? `: ${problem.title}` : '';
    } catch {
      // not a problem document
    }
    const retryAfter = Number(response.headers.get('retry-after'));
    return {
      ok: false,
      status: response.status,
      error: `HTTP ${response.status}${detail}`,
      ...(Number.isFinite(retryAfter) && retryAfter > 0 && { retryAfterInMs: retryAfter * 1000 }),
    };
  }
}

/** One client per endpoint; Entra endpoints share the backend's credential ({@link backendCredential}). */
export function createEndpointClients(endpoints: readonly EndpointSettings[], fetchImpl?: typeof fetch): Map<string, EndpointClient> {
  const clients = new Map<string, EndpointClient>();
  for (const endpoint of endpoints) {
    const credential = endpoint.auth.type === 'entra' ? backendCredential(endpoint.auth) : undefined;
    clients.set(endpoint.name, new EndpointClient(endpoint, credential, fetchImpl));
  }
  return clients;
}

/** How the backend's own identity is reached (see {@link createEntraCredential}). */
export interface CredentialChoice {
  credential: 'workload-or-managed' | 'default';
  clientId?: string;
}

const credentials = new Map<string, TokenCredential>();

/**
 * One credential per identity for the whole process — the change-events endpoints and the authored-entities provider
 * share it, and with it its token cache.
 */
export function backendCredential(choice: CredentialChoice): TokenCredential {
  const key = `${choice.credential}\u0000${choice.clientId ?? ''}`;
  let credential = credentials.get(key);
  if (!credential) {
    credential = createEntraCredential(choice);
    credentials.set(key, credential);
  }
  return credential;
}

/**
 * The backend's own identity, and nothing else unless configured: AKS workload identity when its variables
 * (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`) are present, then managed identity. Never a
 * client secret from the environment, never a developer's sign-in — those need `credential: 'default'`.
 */
export function createEntraCredential(auth: CredentialChoice, env: NodeJS.ProcessEnv = process.env): TokenCredential {
  const clientId = auth.clientId;
  if (auth.credential === 'default') return new DefaultAzureCredential(clientId ? { managedIdentityClientId: clientId } : {});
  const managed = new ManagedIdentityCredential(clientId ? { clientId } : {});
  const tokenFilePath = env.AZURE_FEDERATED_TOKEN_FILE;
  const tenantId = env.AZURE_TENANT_ID;
  const workloadClientId = clientId ?? env.AZURE_CLIENT_ID;
  if (!tokenFilePath || !tenantId || !workloadClientId) return managed;
  return new ChainedTokenCredential(new WorkloadIdentityCredential({ tokenFilePath, tenantId, clientId: workloadClientId }), managed);
}
