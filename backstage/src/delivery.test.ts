/**
 * How the module authenticates its deliveries: the projected service-account token (re-read when rotated), the Entra
 * credential chain (workload identity, then managed identity, nothing else unless configured), no clear-text http off
 * loopback, and no redirects (a redirect would carry the bearer token to another address).
 */
import * as http from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChainedTokenCredential, DefaultAzureCredential, ManagedIdentityCredential } from '@azure/identity';
import type { CatalogEvent } from './ChangeEventsEngine';
import { endpointUrlProblem } from './config';
import { createEntraCredential, EndpointClient } from './delivery';

const event: CatalogEvent = {
  specversion: '1.0',
  id: 'evt-1',
  source: 'http://backstage.test',
  type: 'io.backstage.catalog.entity.upserted',
  subject: 'component:default/web',
  time: new Date().toISOString(),
  datacontenttype: 'application/json',
  data: { entityRef: 'component:default/web' },
};

/** Records the Authorization header of every request; answers with `answer` (202 by default). */
async function receiver(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_req, res) => res.writeHead(202).end('{}')) {
  const seen: Array<string | undefined> = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers.authorization);
    req.resume();
    req.on('end', () => answer(req, res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/catalog/events`;
  const close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return { url, seen, close };
}

test('a projected service-account token is sent as the bearer token, and re-read after the kubelet rotates it', async () => {
  const target = await receiver();
  try {
    const tokenPath = join(mkdtempSync(join(tmpdir(), 'sa-token-')), 'token');
    writeFileSync(tokenPath, 'first.service.account-token\n');
    const client = new EndpointClient({ name: 'sync', url: target.url, timeoutInMs: 5_000, auth: { type: 'serviceAccountToken', tokenPath } }, undefined);
    expect(await client.send([event], 'd-1')).toEqual({ ok: true, status: 202 });
    writeFileSync(tokenPath, 'rotated.service.account-token');
    expect(await client.send([event], 'd-2')).toEqual({ ok: true, status: 202 });
    expect(target.seen).toEqual(['Bearer first.service.account-token', 'Bearer rotated.service.account-token']);
  } finally {
    await target.close();
  }
});

test('a redirect is not followed: the token never reaches the other address', async () => {
  const elsewhere = await receiver();
  const redirecting = await receiver((_req, res) => res.writeHead(307, { location: elsewhere.url }).end());
  try {
    const tokenPath = join(mkdtempSync(join(tmpdir(), 'sa-token-')), 'token');
    writeFileSync(tokenPath, 'secret.bearer-token');
    const client = new EndpointClient({ name: 'sync', url: redirecting.url, timeoutInMs: 5_000, auth: { type: 'serviceAccountToken', tokenPath } }, undefined);
    const outcome = await client.send([event], 'd-1');
    expect(outcome.ok).toBe(false);
    expect(redirecting.seen).toEqual(['Bearer secret.bearer-token']);
    expect(elsewhere.seen).toEqual([]);
  } finally {
    await redirecting.close();
    await elsewhere.close();
  }
});

test('endpoints are https, or plain http to a loopback address only', () => {
  expect(endpointUrlProblem('https://sync.example.com/api/catalog/events')).toBeUndefined();
  expect(endpointUrlProblem('http://127.0.0.1:7071/api/catalog/events')).toBeUndefined();
  expect(endpointUrlProblem('http://localhost:7071/api/catalog/events')).toBeUndefined();
  expect(endpointUrlProblem('http://[::1]:7071/api/catalog/events')).toBeUndefined();
  expect(endpointUrlProblem('http://sync.internal/api/catalog/events')).toMatch(/must be https \(plain http only to a loopback address\)/);
  expect(endpointUrlProblem('http://10.0.0.4/api/catalog/events')).toMatch(/must be https/);
  expect(endpointUrlProblem('ftp://sync.example.com/')).toBe('must be an absolute http(s) URL');
  expect(endpointUrlProblem('not a url')).toBe('must be an absolute http(s) URL');
});

test('the Entra credential: managed identity, workload identity first when AKS provides it, a developer sign-in only when configured', () => {
  const entra = { type: 'entra' as const, scope: 'api://sync/.default', clientId: 'backstage-mi' };
  expect(createEntraCredential({ ...entra, credential: 'workload-or-managed' }, {})).toBeInstanceOf(ManagedIdentityCredential);
  // A client secret in the environment changes nothing: DefaultAzureCredential would have used it.
  expect(createEntraCredential({ ...entra, credential: 'workload-or-managed' }, { AZURE_CLIENT_SECRET: 'x', AZURE_TENANT_ID: 't' })).toBeInstanceOf(ManagedIdentityCredential);
  const federated = { AZURE_FEDERATED_TOKEN_FILE: '/var/run/secrets/azure/tokens/azure-identity-token', AZURE_TENANT_ID: 't', AZURE_CLIENT_ID: 'backstage-mi' };
  expect(createEntraCredential({ ...entra, credential: 'workload-or-managed' }, federated)).toBeInstanceOf(ChainedTokenCredential);
  expect(createEntraCredential({ ...entra, credential: 'default' }, {})).toBeInstanceOf(DefaultAzureCredential);
});
