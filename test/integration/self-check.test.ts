/**
 * The self-check against the stand-ins: every dependency's token and one harmless call, through the admin endpoint
 * (and before the maintenance). When all is well, 200 with a report; when not, 503 problem+json naming each failed
 * dependency and what to do — a Cosmos DB role missing (principal, action, scope), a token Backstage refuses (its
 * audience), a token that cannot be had, an issuer whose keys cannot be fetched, a queue that cannot be reached —
 * with a log line and a metric for each.
 */
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { selfCheck } from '../../functions/selfCheck';
import { startCosmosEmulator, type CosmosEmulator } from '../../local/cosmos';
import { ensureCosmosResources, provisionerCredential } from '../../local/cosmos-setup';
import type { LocalServiceBus } from '../../local/servicebus/broker';
import { loadConfig, type Environment } from '../../shared/platform/config';
import { createCosmosClient } from '../../shared/platform/cosmos';
import type { InMemoryMetrics } from '../../shared/platform/metrics';
import type { SelfCheckReport } from '../../shared/self-check';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { startGeneratedCatalog, type GeneratedCatalog } from '../support/backstage';
import { bodyJson } from '../support/http';
import { eventually, identityAdmin, provisionCosmos, startBroker, testEnvironment, uniqueName, userToken } from '../support/stack';

jest.setTimeout(120_000);

/**
 * The app's hooks, as the Functions host receives them (`@azure/functions-core` only exists inside the host). Kept on
 * globalThis: the function files register them while this file's imports load, before its own constants exist.
 */
type Hooks = Map<string, (context: unknown) => unknown>;
const appHooks = () => ((globalThis as { appHooks?: Hooks }).appHooks ??= new Map());
jest.mock(
  '@azure/functions-core',
  () => ({
    setProgrammingModel: () => undefined,
    getProgrammingModel: () => undefined,
    registerFunction: () => ({ dispose: () => undefined }),
    registerHook: (name: string, callback: (context: unknown) => unknown) => {
      ((globalThis as { appHooks?: Hooks }).appHooks ??= new Map()).set(name, callback);
      return { dispose: () => undefined };
    },
    log: () => undefined,
  }),
  { virtual: true },
);

let broker: LocalServiceBus;
let catalog: GeneratedCatalog;
let settings: Environment;

beforeAll(async () => {
  broker = await startBroker();
  catalog = await startGeneratedCatalog([{ apiVersion: 'backstage.io/v1alpha1', kind: 'Group', metadata: { name: 'platform' }, spec: { type: 'team', children: [] } }]);
  settings = testEnvironment({ ServiceBusConnection: broker.connectionString, BACKSTAGE_BASE_URL: catalog.baseUrl });
  (await provisionCosmos(loadConfig(settings))).dispose();
});

afterAll(async () => {
  await resetRuntime();
  await broker?.stop();
  await catalog?.stop();
});

/** Runs the app with `settings` plus `overrides`, and calls GET /api/admin/self-check as an admin. */
async function check(overrides: Environment = {}): Promise<{ response: HttpResponseInit; report: SelfCheckReport & { type?: string; detail?: string } }> {
  await resetRuntime();
  for (const key of Object.keys(process.env)) if (!(key in settings) && /^(AUTH_|BACKSTAGE_|COSMOS_|CosmosDB|AZURE_CLIENT_ID)/.test(key)) delete process.env[key];
  Object.assign(process.env, settings, overrides);
  const response = await selfCheck(
    new HttpRequest({ method: 'GET', url: 'http://localhost/api/admin/self-check', headers: { authorization: `Bearer ${await userToken({ roles: ['Catalog.Admin'] })}` } }),
    new InvocationContext({ functionName: 'selfCheck', logHandler: () => undefined }),
  );
  return { response, report: bodyJson(response) };
}

const byDependency = (report: SelfCheckReport) => Object.fromEntries(report.checks.map((c) => [c.dependency, c]));

test('all dependencies fine: 200, a check per dependency, each with its scope and token facts but never a token', async () => {
  const { response, report } = await check();
  expect(response.status).toBe(200);
  expect(report.status).toBe('ok');
  const checks = byDependency(report);
  expect(Object.keys(checks).sort()).toEqual(['backstage', 'cosmos:authored', 'cosmos:edges', 'cosmos:entities', 'cosmos:history', 'cosmos:maintenance-runs', 'cosmos:webhook-deliveries', 'issuer:entra', 'servicebus:receive', 'servicebus:send']);
  expect(checks['cosmos:entities']).toMatchObject({ status: 'ok', scope: expect.stringMatching(/^https:\/\/127\.0\.0\.1:\d+\/\.default$/), token: { audience: expect.any(String), principal: expect.any(String), expiresInSeconds: expect.any(Number) } });
  expect(checks.backstage).toMatchObject({ status: 'ok', scope: settings.BACKSTAGE_TOKEN_SCOPE });
  expect(JSON.stringify(report)).not.toMatch(/eyJ[\w-]+\.[\w-]+\./); // no JWT anywhere
  // The metric says the same; the tokens behind it were counted too.
  const metrics = getRuntime().inMemoryMetrics as InMemoryMetrics;
  expect(metrics.counter('self_check.checks', { dependency: 'cosmos:entities', status: 'ok', trigger: 'admin' })).toBe(1);
  expect(metrics.counter('self_check.checks')).toBe(10);
  expect(metrics.counter('identity.token.acquisitions')).toBeGreaterThanOrEqual(2); // Cosmos and Backstage scopes
  expect(metrics.summary('identity.token.remaining_seconds')!.min).toBeGreaterThan(0);
});

test('it runs when the worker starts: the appStart hook starts it in the background', async () => {
  await resetRuntime();
  Object.assign(process.env, settings);
  const hookData: Record<string, unknown> = {};
  await appHooks().get('appStart')!({ hookData, appHookData: {}, functionAppDirectory: process.cwd() });
  expect(hookData.configurationError).toBeUndefined();
  const metrics = getRuntime().inMemoryMetrics as InMemoryMetrics;
  await eventually(async () => Promise.resolve(metrics.counter('self_check.checks', { dependency: 'backstage', status: 'ok', trigger: 'start-up' }) === 1), 'the start-up self-check');
  expect(metrics.counter('self_check.checks')).toBe(10);
});

test('the maintenance runs the self-check first and reports it', async () => {
  await check();
  const result = await getRuntime().maintenance.run();
  expect(result.selfCheck).toEqual({ status: 'ok', failed: [] });
});

describe('what is wrong, exactly', () => {
  let emulator: CosmosEmulator;
  beforeAll(async () => {
    emulator = await startCosmosEmulator();
  });
  afterAll(async () => emulator?.close());

  test('a Cosmos DB role missing: 403 names the principal, the action and the scope to assign it at', async () => {
    // A Cosmos account where the app's identity holds only the Backstage principal's role (the authored container).
    const overrides = { CosmosDBConnection__accountEndpoint: emulator.endpoint, COSMOS_CA_CERT_PATH: emulator.certificatePath, COSMOS_DATABASE_NAME: uniqueName('catalog') };
    const config = loadConfig({ ...settings, ...overrides });
    const admin = createCosmosClient(config.cosmos, provisionerCredential((o) => identityAdmin().mint(o)), { mode: 'local' });
    await ensureCosmosResources(admin, config.cosmos);
    admin.dispose();
    Object.assign(process.env, settings, overrides);
    await resetRuntime();
    const principal = (await getRuntime().selfCheck.run('admin')).checks.find((c) => c.dependency === 'cosmos:entities')!.token!.principal!;
    emulator.rbac.assign(principal, 'backstage');

    const { response, report } = await check(overrides);
    expect(response.status).toBe(503);
    expect(response.headers).toMatchObject({ 'content-type': 'application/problem+json' });
    expect(report).toMatchObject({ type: 'urn:backstage-cosmos-sync:problem:self-check-failed', status: 503, title: 'Self-check failed' });
    // The authored container passes: the Backstage principal's role reads it, as the app's own role does.
    expect(report.detail).toMatch(/^5 of 10 dependencies failed: cosmos:entities \(Forbidden\), cosmos:edges \(Forbidden\), cosmos:webhook-deliveries \(Forbidden\), cosmos:history \(Forbidden\), cosmos:maintenance-runs \(Forbidden\)/);
    const entities = byDependency(report)['cosmos:entities']!;
    expect(entities.problem).toEqual({
      title: 'Forbidden',
      detail: `Cosmos DB refused Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/read on dbs/${config.cosmos.databaseName}/colls/entities to principal ${principal}`,
      fix: expect.stringContaining(`Assign principal ${principal} a Cosmos DB data-plane role with Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/read at scope /dbs/${config.cosmos.databaseName}/colls/entities`),
    });
    expect(byDependency(report)['cosmos:webhook-deliveries']!.problem!.detail).toMatch(/items\/delete on dbs\/[^/]+\/colls\/webhook-deliveries/);
    expect(byDependency(report).backstage!.status).toBe('ok');
  });

  test('Backstage refuses the token: the audience it carried, and the externalAccess entry to add', async () => {
    const { response, report } = await check({ BACKSTAGE_TOKEN_SCOPE: 'api://not-backstage/.default' });
    expect(response.status).toBe(503);
    const backstage = byDependency(report).backstage!;
    expect(backstage).toMatchObject({ status: 'failed', token: { audience: 'api://not-backstage' } });
    expect(backstage.problem).toMatchObject({ title: 'Token refused', detail: expect.stringContaining("the token's audience is api://not-backstage") });
    expect(backstage.problem!.fix).toMatch(/backend\.auth\.externalAccess entry of type jwks that trusts issuer .+ with audience api:\/\/not-backstage/);
  });

  test('no token for a scope, an issuer without keys, a queue out of reach', async () => {
    const clientId = uniqueName('mi-refused');
    await identityAdmin().setClientBehaviour(clientId, { failWithStatus: 400 });
    // (The Entra issuer must stay reachable: the admin's own token is checked against it.)
    const cluster = { name: 'aks', issuer: 'http://127.0.0.1:1/', audiences: ['backstage-cosmos-sync'], jwksUri: 'http://127.0.0.1:1/openid/v1/jwks' };
    const { response, report } = await check({
      AZURE_CLIENT_ID: clientId,
      AUTH_FEDERATED_ISSUERS: JSON.stringify([cluster]),
      ServiceBusConnection: 'Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;',
    });
    expect(response.status).toBe(503);
    const checks = byDependency(report);
    expect(checks['cosmos:entities']!.problem).toMatchObject({ title: 'No token', detail: expect.stringMatching(/^Could not get a token for https:\/\/127\.0\.0\.1:\d+\/\.default: /), fix: expect.stringMatching(/AZURE_CLIENT_ID/) });
    expect(checks['issuer:entra']!.status).toBe('ok');
    expect(checks['issuer:aks']!.problem).toMatchObject({ title: 'Unreachable', detail: expect.stringMatching(/signing keys of aks could not be fetched/) });
    expect(checks['servicebus:send']!.problem).toMatchObject({ title: 'Unreachable', fix: expect.stringMatching(/ServiceBusConnection__fullyQualifiedNamespace/) });
  });
});
