/**
 * Sending one batch of CloudEvents to one endpoint, authenticated with an Entra token (the default) or a
 * Standard Webhooks signature. No token or secret is ever logged.
 */
import type { TokenCredential } from '@azure/core-auth';
import { DefaultAzureCredential } from '@azure/identity';
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
      response = await this.fetchImpl(this.endpoint.url, { method: 'POST', headers, body, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
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

/** One credential for every Entra endpoint with the same client id. */
export function createEndpointClients(endpoints: readonly EndpointSettings[], fetchImpl?: typeof fetch): Map<string, EndpointClient> {
  const credentials = new Map<string, TokenCredential>();
  const clients = new Map<string, EndpointClient>();
  for (const endpoint of endpoints) {
    let credential: TokenCredential | undefined;
    if (endpoint.auth.type === 'entra') {
      const key = endpoint.auth.clientId ?? '';
      credential = credentials.get(key);
      if (!credential) {
        credential = new DefaultAzureCredential(endpoint.auth.clientId ? { managedIdentityClientId: endpoint.auth.clientId } : {});
        credentials.set(key, credential);
      }
    }
    clients.set(endpoint.name, new EndpointClient(endpoint, credential, fetchImpl));
  }
  return clients;
}
