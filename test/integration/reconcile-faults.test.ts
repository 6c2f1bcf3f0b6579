/**
 * The reconcile's writes when Cosmos DB fails transiently: its own emulator behind a fault proxy, the fixture catalog
 * in a real Backstage. A write answered 503, or reset before it reached Cosmos, or applied with its answer lost, is
 * retried by the store's rounds (and a lost answer's retry comes back 409/412, which the reconcile resolves through
 * the single-entity path): the run ends with no failed entity and the mirror equal to the catalog.
 */
import { startFaultProxy, type FaultProxy } from '../../local/faults/http-proxy';
import { startLocalStack, type LocalStack } from '../../local/stack';
import type { LiveEntityDocument } from '../../shared/model/documents';
import { toDocumentId } from '../../shared/model/refs';
import { loadConfig } from '../../shared/platform/config';
import { BackstageUnavailableError } from '../../shared/platform/errors';
import type { InMemoryMetrics } from '../../shared/platform/metrics';
import { createRuntime, type Runtime } from '../../shared/runtime';
import { startFixtureCatalog, type FixtureCatalog } from '../support/backstage';
import { rawContainers } from '../support/containers';
import { provisionCosmos, testEnvironment, uniqueName } from '../support/stack';

jest.setTimeout(120_000);

let stack: LocalStack;
let proxy: FaultProxy;
let fixture: FixtureCatalog;
let runtime: Runtime;

beforeAll(async () => {
  stack = await startLocalStack({ cosmos: true });
  const emulator = stack.cosmos!;
  proxy = await startFaultProxy(emulator.endpoint, { tls: emulator.tls, targetCa: emulator.certificatePem });
  fixture = await startFixtureCatalog();
  runtime = await runtimeBehindProxy();
});

/** A runtime of its own database, reaching Cosmos DB through the fault proxy. */
async function runtimeBehindProxy(settings: Record<string, string> = {}): Promise<Runtime> {
  const config = loadConfig(
    testEnvironment({
      AZURE_CLIENT_ID: uniqueName('mi-reconcile-faults'),
      CosmosDBConnection__accountEndpoint: proxy.url,
      COSMOS_CA_CERT_PATH: stack.cosmos!.certificatePath,
      COSMOS_THROTTLE_RETRY_BASE_DELAY_MS: '20',
      BACKSTAGE_BASE_URL: fixture.baseUrl,
      LOG_LEVEL: 'error',
      ...settings,
    }),
  );
  (await provisionCosmos(config)).dispose();
  const created = createRuntime(config);
  runtimes.push(created);
  return created;
}
const runtimes: Runtime[] = [];

afterAll(async () => {
  for (const r of runtimes) await r.dispose();
  await fixture?.stop();
  await proxy?.close();
  await stack?.stop();
});

// Creates share their path and method with queries (and query plans), which carry this header.
const CREATES = { methods: ['POST'], path: /\/colls\/entities\/docs$/, headers: { 'x-ms-documentdb-isquery': null, 'x-ms-cosmos-is-query-plan-request': null } };
const REPLACES = { methods: ['PUT'], path: /\/colls\/entities\/docs\/[^/]+$/ };
const BULK_CALLS = { methods: ['POST'], path: /\/colls\/entities\/docs$/, headers: { 'x-ms-cosmos-is-batch-request': /^true$/i } };

async function expectMirrorEqualsCatalog(runtime: Runtime): Promise<void> {
  const catalog = await fixture.entities();
  const { resources } = await rawContainers(runtime).entities.items.query<LiveEntityDocument>('SELECT * FROM c').fetchAll();
  const docs = new Map(resources.map((d) => [d.id, d]));
  const differing = catalog
    .map((e) => toDocumentId({ kind: e.kind, namespace: e.metadata.namespace ?? 'default', name: e.metadata.name }))
    .filter((id, i) => JSON.stringify(docs.get(id)?.entity) !== JSON.stringify(catalog[i]));
  expect({ differing, documents: docs.size }).toEqual({ differing: [], documents: catalog.length });
}

test('creates answered 503 or reset before reaching Cosmos DB are retried: no entity fails', async () => {
  const catalog = await fixture.entities();
  proxy.failNext(2, { status: 503, headers: { 'content-type': 'application/json', 'x-ms-substatus': '21008' }, body: JSON.stringify({ code: 'ServiceUnavailable', message: 'injected' }) }, CREATES);
  proxy.failNext(2, { reset: true }, CREATES);
  const injected = proxy.faultsInjected;
  const result = await runtime.reconciler.reconcile();
  expect(proxy.faultsInjected - injected).toBe(4);
  expect({ failed: result.failed, failures: result.failures, created: result.created }).toEqual({ failed: 0, failures: [], created: catalog.length });
  await expectMirrorEqualsCatalog(runtime);
});

test('replaces applied with their answers lost: the retry comes back 412 and the entity is resolved, not failed', async () => {
  // Every mirror document looks stale to the reconcile, so it replaces each one.
  const container = rawContainers(runtime).entities;
  const { resources } = await container.items.query<LiveEntityDocument>('SELECT * FROM c').fetchAll();
  for (const doc of resources) await container.item(doc.id, doc.id).replace({ ...doc, sourceEtag: `stale-${doc.id}` });
  proxy.failNext(3, { dropResponse: true }, REPLACES);
  const injected = proxy.faultsInjected;
  const result = await runtime.reconciler.reconcile();
  expect(proxy.faultsInjected - injected).toBe(3);
  expect({ failed: result.failed, failures: result.failures }).toEqual({ failed: 0, failures: [] });
  // Each stale document was brought back by its replace, or by the single-entity path after a lost answer.
  expect(result.updated + result.unchanged).toBe(resources.length);
  await expectMirrorEqualsCatalog(runtime);
});

test('bulk writes answered 503, reset, or applied with their answer lost are retried: no entity fails', async () => {
  const bulk = await runtimeBehindProxy({ RECONCILE_BULK_MIN_ENTITIES: '1' });
  const catalog = await fixture.entities();
  proxy.failNext(1, { status: 503, headers: { 'content-type': 'application/json', 'x-ms-substatus': '21008' }, body: JSON.stringify({ code: 'ServiceUnavailable', message: 'injected' }) }, BULK_CALLS);
  proxy.failNext(1, { reset: true }, BULK_CALLS);
  proxy.failNext(1, { dropResponse: true }, BULK_CALLS);
  const injected = proxy.faultsInjected;
  const result = await bulk.reconciler.reconcile();
  expect(proxy.faultsInjected - injected).toBe(3);
  expect({ failed: result.failed, failures: result.failures }).toEqual({ failed: 0, failures: [] });
  // Creates whose answer was lost come back 409 on their retry and are resolved by the single-entity path.
  expect(result.created + result.unchanged).toBe(catalog.length);
  await expectMirrorEqualsCatalog(bulk);
});

test('batch operations Cosmos DB throttles are written in a later round, after the wait their answers ask for, and counted: no entity fails', async () => {
  const bulk = await runtimeBehindProxy({ RECONCILE_BULK_MIN_ENTITIES: '1' });
  const catalog = await fixture.entities();
  const throttledBefore = throttledCount(bulk);
  proxy.failNext(2, { throttleOperations: { count: 3, retryAfterMs: 400 } }, BULK_CALLS);
  const injected = proxy.faultsInjected;
  const started = performance.now();
  const result = await bulk.reconciler.reconcile();
  // The throttled operations were sent again after the wait their answers asked for (400 ms, twice), not sooner.
  expect(performance.now() - started).toBeGreaterThanOrEqual(800);
  expect(proxy.faultsInjected - injected).toBe(2);
  expect({ failed: result.failed, failures: result.failures }).toEqual({ failed: 0, failures: [] });
  expect(result.created).toBe(catalog.length);
  // Three of the first batch, then two of the three sent again (the proxy forwards one of each batch at least).
  expect(throttledCount(bulk) - throttledBefore).toBe(5);
  await expectMirrorEqualsCatalog(bulk);
});

test('a bulk run whose catalog stream fails part-way reports the catalog\'s error, not an abort; the next run completes the mirror', async () => {
  const backstage = await startFaultProxy(fixture.baseUrl);
  try {
    const bulk = await runtimeBehindProxy({ RECONCILE_BULK_MIN_ENTITIES: '1', BACKSTAGE_PAGE_SIZE: '3', BACKSTAGE_BASE_URL: backstage.url, BACKSTAGE_MAX_RETRIES: '0' });
    // Every page after the first: the run has handed entities to its writes by then.
    backstage.failAll({ status: 503, body: 'injected' }, { path: /\/entities\/by-query\?.*cursor=/ });
    await expect(bulk.reconciler.reconcile()).rejects.toBeInstanceOf(BackstageUnavailableError);
    backstage.heal();
    const result = await bulk.reconciler.reconcile();
    expect({ failed: result.failed, tombstoned: result.tombstoned }).toEqual({ failed: 0, tombstoned: 0 });
    await expectMirrorEqualsCatalog(bulk);
  } finally {
    await backstage.close();
  }
});

function throttledCount(runtime: Runtime): number {
  return (runtime.inMemoryMetrics as InMemoryMetrics).snapshot().counters['cosmos.throttled{container=entities,operation=bulk}'] ?? 0;
}
