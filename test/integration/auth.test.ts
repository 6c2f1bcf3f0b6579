/**
 * Which tokens this API accepts, against real signing keys: the shared identity stand-in plays Entra, a second one
 * (started here) plays a federated issuer — a Kubernetes cluster's service-account issuer, or Okta.
 *
 * - only access tokens: an Entra ID token with the right roles is refused; v1 and v2 access tokens are accepted;
 * - a federated issuer's tokens are accepted with its own audience, its roles read from its own claim (`sub` mapped to
 *   roles for service accounts, `scp` for Okta), ID-token claims refused, an issuer nobody trusts refused;
 * - roles pinned to client ids count only for those clients.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpRequest, InvocationContext } from '@azure/functions';
import type { CatalogEvent } from '../../backstage/src';
import { EndpointClient } from '../../backstage/src/delivery';
import { catalogEvents } from '../../functions/catalogEvents';
import { graph } from '../../functions/graph';
import { startHttpHost } from '../../local/functions-host/http';
import { startIdentityServer, type IdentityServer } from '../../local/identity';
import { TokenValidator } from '../../shared/http/auth';
import { loadConfig, type Environment } from '../../shared/platform/config';
import { AuthenticationError, AuthorizationError } from '../../shared/platform/errors';
import { resetRuntime } from '../../shared/runtime';
import { bodyJson } from '../support/http';
import { API_AUDIENCE, identityAdmin, startBroker, testEnvironment, uniqueName } from '../support/stack';

const SERVICE_ACCOUNT = 'system:serviceaccount:backstage:backstage';
const CLUSTER_AUDIENCE = 'backstage-cosmos-sync';
let cluster: IdentityServer;
let okta: IdentityServer;
let validator: TokenValidator;
let settings: Environment;

beforeAll(async () => {
  cluster = await startIdentityServer();
  okta = await startIdentityServer();
  settings = testEnvironment({
    AUTH_FEDERATED_ISSUERS: JSON.stringify([
      { name: 'aks', issuer: cluster.issuer, audiences: [CLUSTER_AUDIENCE], rolesClaim: 'sub', roleMap: { [SERVICE_ACCOUNT]: ['Events.Send'] } },
      { name: 'okta', issuer: okta.issuer, audiences: ['api://sync'], rolesClaim: 'scp', roleMap: { 'catalog.read': ['Catalog.Read'] } },
    ]),
    AUTH_ROLE_CLIENTS: JSON.stringify({ 'Catalog.Admin': ['ops-console'] }),
  });
  validator = new TokenValidator(loadConfig(settings).auth);
});
afterAll(async () => {
  await cluster?.close();
  await okta?.close();
  await resetRuntime();
});

const entra = (options: Parameters<ReturnType<typeof identityAdmin>['mint']>[0]) => identityAdmin().mint({ subject: uniqueName('caller'), ...options });

describe('Entra: only access tokens', () => {
  test('a v2 access token (azp) and a v1 access token (appid) are accepted', async () => {
    const v2 = await validator.authenticate(`Bearer ${await entra({ audience: API_AUDIENCE, roles: ['Catalog.Read'], clientId: 'reader-app' })}`, ['Catalog.Read']);
    expect(v2).toMatchObject({ roles: ['Catalog.Read'], appId: 'reader-app' });
    const v1 = await validator.authenticate(`Bearer ${await entra({ audience: API_AUDIENCE, roles: ['Catalog.Read'], profile: 'entra-v1-access', clientId: 'legacy-app' })}`, ['Catalog.Read']);
    expect(v1).toMatchObject({ roles: ['Catalog.Read'], appId: 'legacy-app' });
  });

  test('an ID token carrying the same roles is refused', async () => {
    const idToken = await entra({ audience: API_AUDIENCE, roles: ['Catalog.Read'], profile: 'entra-id' });
    await expect(validator.authenticate(`Bearer ${idToken}`, ['Catalog.Read'])).rejects.toThrow(new AuthenticationError('The token is not an access token (an ID token is meant for the client, not for this API)'));
  });

  test('a token without the version and client claims of an access token is refused', async () => {
    const bare = await entra({ audience: API_AUDIENCE, roles: ['Catalog.Read'], profile: 'plain' });
    await expect(validator.authenticate(`Bearer ${bare}`, ['Catalog.Read'])).rejects.toThrow(/not an access token/);
  });

  test('through the HTTP function: 401 problem+json with an invalid_token challenge', async () => {
    Object.assign(process.env, testEnvironment());
    await resetRuntime();
    const idToken = await entra({ audience: API_AUDIENCE, roles: ['Catalog.Read'], profile: 'entra-id' });
    const response = await graph(
      new HttpRequest({ method: 'GET', url: 'http://localhost/api/graph/component/default/web', headers: { authorization: `Bearer ${idToken}` }, params: { kind: 'component', namespace: 'default', name: 'web' } }),
      new InvocationContext({ functionName: 'graph', logHandler: () => undefined }),
    );
    expect(response.status).toBe(401);
    expect(new Headers(response.headers as Record<string, string>).get('www-authenticate')).toMatch(/error="invalid_token"/);
    expect(bodyJson(response)).toMatchObject({ type: 'urn:backstage-cosmos-sync:problem:unauthorized', detail: expect.stringMatching(/not an access token/) });
  });
});

describe('federated issuers', () => {
  const serviceAccountToken = (options: { subject?: string; audience?: string; claims?: Record<string, unknown> } = {}) =>
    cluster.mint({
      profile: 'plain',
      subject: options.subject ?? SERVICE_ACCOUNT,
      audience: options.audience ?? CLUSTER_AUDIENCE,
      claims: { 'kubernetes.io': { namespace: 'backstage', serviceaccount: { name: 'backstage' } }, ...options.claims },
    });

  test("a cluster's service-account token: the subject maps to the sender role", async () => {
    const principal = await validator.authenticate(`Bearer ${await serviceAccountToken()}`, ['Events.Send']);
    expect(principal).toMatchObject({ subject: SERVICE_ACCOUNT, roles: ['Events.Send'], issuer: cluster.issuer });
  });

  test('another service account of the same cluster holds no role', async () => {
    const other = await serviceAccountToken({ subject: 'system:serviceaccount:default:default' });
    await expect(validator.authenticate(`Bearer ${other}`, ['Events.Send'])).rejects.toBeInstanceOf(AuthorizationError);
  });

  test("the cluster's tokens for another audience are refused", async () => {
    const foreign = await serviceAccountToken({ audience: 'https://kubernetes.default.svc' });
    await expect(validator.authenticate(`Bearer ${foreign}`, ['Events.Send'])).rejects.toThrow(/audience is not one this API accepts \(backstage-cosmos-sync\)/);
  });

  test('a federated ID token (nonce) is refused', async () => {
    const idToken = await serviceAccountToken({ claims: { nonce: 'n-0S6_WzA2Mj' } });
    await expect(validator.authenticate(`Bearer ${idToken}`, ['Events.Send'])).rejects.toThrow(/not an access token/);
  });

  test("Okta's scopes, a space-separated string, map to roles; its tokens are checked against its own keys", async () => {
    const token = await okta.mint({ profile: 'plain', audience: 'api://sync', subject: 'okta-app', claims: { scp: 'openid catalog.read', cid: 'okta-client' } });
    expect(await validator.authenticate(`Bearer ${token}`, ['Catalog.Read'])).toMatchObject({ roles: ['Catalog.Read'], appId: 'okta-client' });
    // Signed by the cluster's key but claiming to be Okta: the signature does not verify against Okta's keys.
    const forged = await cluster.mint({ profile: 'plain', issuer: okta.issuer, audience: 'api://sync', claims: { scp: 'catalog.read' } });
    await expect(validator.authenticate(`Bearer ${forged}`, ['Catalog.Read'])).rejects.toThrow(/key the issuer does not publish|signature is invalid/);
  });

  test("the Backstage module's serviceAccountToken endpoint delivers to the intake: no secret, no Azure identity", async () => {
    const broker = await startBroker();
    Object.assign(process.env, settings, { ServiceBusConnection: broker.connectionString });
    await resetRuntime();
    const host = await startHttpHost({ routes: [{ functionName: 'catalogEvents', route: 'catalog/events', methods: ['POST'], handler: catalogEvents }] });
    try {
      const tokenPath = join(mkdtempSync(join(tmpdir(), 'projected-')), 'token');
      writeFileSync(tokenPath, await serviceAccountToken());
      const endpoint = { name: 'sync', url: `${host.url}/api/catalog/events`, timeoutInMs: 10_000, auth: { type: 'serviceAccountToken' as const, tokenPath } };
      const ref = `component:default/${uniqueName('federated')}`;
      const event: CatalogEvent = { specversion: '1.0', id: uniqueName('evt'), source: 'https://backstage.test', type: 'io.backstage.catalog.entity.upserted', subject: ref, time: new Date().toISOString(), datacontenttype: 'application/json', data: { entityRef: ref } };
      expect(await new EndpointClient(endpoint, undefined).send([event], uniqueName('delivery'))).toEqual({ ok: true, status: 202 });
      expect(broker.stats(loadConfig(settings).serviceBus.queueName).enqueued).toBe(1);
      // The kubelet rotated the file to a token of another service account: refused, nothing enqueued.
      writeFileSync(tokenPath, await serviceAccountToken({ subject: 'system:serviceaccount:default:default' }));
      expect(await new EndpointClient(endpoint, undefined).send([event], uniqueName('delivery'))).toMatchObject({ ok: false, status: 403 });
      expect(broker.stats(loadConfig(settings).serviceBus.queueName).enqueued).toBe(1);
    } finally {
      await host.close();
      await resetRuntime();
      await broker.stop();
    }
  });

  test('an issuer nobody configured is refused before any key is fetched', async () => {
    const stranger = await startIdentityServer();
    try {
      const token = await stranger.mint({ audience: API_AUDIENCE, roles: ['Catalog.Admin'] });
      await expect(validator.authenticate(`Bearer ${token}`, ['Catalog.Admin'])).rejects.toThrow('The token was rejected: its issuer is not trusted');
    } finally {
      await stranger.close();
    }
  });
});

describe('roles pinned to client ids', () => {
  test('a pinned role counts only for the clients allowed to hold it', async () => {
    const allowed = await entra({ audience: API_AUDIENCE, roles: ['Catalog.Admin'], clientId: 'ops-console' });
    expect((await validator.authenticate(`Bearer ${allowed}`, ['Catalog.Admin'])).appId).toBe('ops-console');
    const other = await entra({ audience: API_AUDIENCE, roles: ['Catalog.Admin'], clientId: 'some-script' });
    await expect(validator.authenticate(`Bearer ${other}`, ['Catalog.Admin'])).rejects.toThrow(/holds the app role 'Catalog.Admin', but some-script is not one of the clients allowed to hold it/);
  });

  test('roles that are not pinned are not affected', async () => {
    const reader = await entra({ audience: API_AUDIENCE, roles: ['Catalog.Read'], clientId: 'some-script' });
    expect((await validator.authenticate(`Bearer ${reader}`, ['Catalog.Read'])).roles).toEqual(['Catalog.Read']);
  });
});
