/**
 * End to end on the stand-ins: reconcile the real Backstage fixture catalog into the mirror, let the change feed
 * (run as the host runs the Cosmos DB trigger) drive the edge projection, and compare the edges container with the
 * catalog's relations. Then drift: an edited mirror document is restored from Backstage through a re-sync.
 */
import { HttpRequest, InvocationContext } from '@azure/functions';
import { listProjectionFailures } from '../../functions/listProjectionFailures';
import type { ChangeFeedTrigger } from '../../local/functions-host/cosmos';
import type { SessionTrigger } from '../../local/functions-host/service-bus';
import type { LocalServiceBus } from '../../local/servicebus/broker';
import { loadConfig } from '../../shared/platform/config';
import { computeSyncHash, type LiveEntityDocument, type SystemProperties } from '../../shared/model/documents';
import type { EdgeDocument } from '../../shared/model/documents';
import type { InMemoryMetrics } from '../../shared/platform/metrics';
import { FAILURES_PARTITION } from '../../shared/edges/failure-store';
import { toDocumentId } from '../../shared/model/refs';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { startFixtureCatalog, type FixtureCatalog } from '../support/backstage';
import { eventually, provisionCosmos, startBroker, testEnvironment, userToken } from '../support/stack';
import { startProjectionTrigger, startSyncTrigger } from '../support/triggers';
import { bodyJson } from '../support/http';

jest.setTimeout(120_000);

let fixture: FixtureCatalog;
let broker: LocalServiceBus;
let feed: ChangeFeedTrigger;
let sessions: SessionTrigger;

beforeAll(async () => {
  fixture = await startFixtureCatalog();
  broker = await startBroker();
  const env = testEnvironment({ BACKSTAGE_BASE_URL: fixture.baseUrl, ServiceBusConnection: broker.connectionString, LOG_LEVEL: 'error' });
  Object.assign(process.env, env);
  (await provisionCosmos(loadConfig(env))).dispose();
  feed = startProjectionTrigger();
  sessions = startSyncTrigger(broker.connectionString);
});

afterAll(async () => {
  await feed?.stop();
  await sessions?.stop();
  await resetRuntime();
  await broker?.stop();
  await fixture?.stop();
});

/** The change feed has been read to its end and the sync queue is empty — twice in a row, a poll apart. */
async function quiet(): Promise<void> {
  let streak = 0;
  await eventually(async () => {
    const stats = broker.stats('entity-sync');
    const calm = feed.idle && stats.active + stats.scheduled + stats.locked === 0 && sessions.inFlight === 0;
    streak = calm ? streak + 1 : 0;
    if (streak < 3) await new Promise((r) => setTimeout(r, 150));
    return streak >= 3;
  }, 'the change feed and the queue to go quiet', 60_000);
}

async function allEdges(): Promise<string[]> {
  const { resources } = await getRuntime()
    .cosmosClient.database(getRuntime().config.cosmos.databaseName).container(getRuntime().config.cosmos.edgesContainer).items.query<EdgeDocument>({ query: 'SELECT * FROM c WHERE c.source != @f', parameters: [{ name: '@f', value: FAILURES_PARTITION }] })
    .fetchAll();
  return resources.map((e) => `${e.source} ${e.type} ${e.target}`).sort();
}

async function catalogRelations(): Promise<string[]> {
  const entities = await fixture.entities();
  return entities
    .flatMap((e) =>
      (e.relations ?? []).map((r) => `${toDocumentId({ kind: e.kind, namespace: e.metadata.namespace ?? 'default', name: e.metadata.name })} ${r.type} ${toDocumentId(r.targetRef)}`),
    )
    .sort();
}

const drifts = () => (getRuntime().metrics as InMemoryMetrics).counter('projection.drift');

test('after a reconcile, the edges container equals the relations in the catalog', async () => {
  const result = await getRuntime().reconciler.reconcile();
  expect(result.failed).toBe(0);
  await quiet();
  const relations = await catalogRelations();
  expect(relations.length).toBeGreaterThan(30);
  expect(await allEdges()).toEqual(relations);
  // The sync's own writes never look like drift.
  expect(drifts()).toBe(0);
});

test('a catalog change flows through: edit in Backstage → reconcile → feed → exactly the changed edges', async () => {
  await fixture.editFile(
    'catalog-info.yaml',
    (t) => t.replace('  providesApis: [auth-api]\n', '  providesApis: [auth-api]\n  dependsOn: [resource:default/payments-db]\n'),
    async () => ((await fixture.admin.getEntityByRef('resource:default/payments-db', { token: 'test-harness-static-token' }))?.relations ?? []).some(
      (r) => r.targetRef === 'component:default/auth-service',
    ),
  );
  await getRuntime().reconciler.reconcile();
  await quiet();
  const edges = await allEdges();
  expect(edges).toContain('component:default:auth-service dependsOn resource:default:payments-db');
  expect(edges).toContain('resource:default:payments-db dependencyOf component:default:auth-service');
  expect(edges).toEqual(await catalogRelations());
  expect(drifts()).toBe(0);
});

test('drift: a mirror document edited by hand is restored from Backstage, and its edges stay right', async () => {
  const store = getRuntime().entityStore;
  const id = 'component:default:payments-service';
  const original = (await store.read(id)) as LiveEntityDocument & SystemProperties;
  const edited = {
    ...original,
    entity: { ...original.entity, metadata: { ...original.entity.metadata, description: 'edited by hand' }, relations: [] },
  };
  await store.replace(edited, original._etag!);
  await quiet();

  expect(drifts()).toBe(1);
  const restored = (await store.read(id)) as LiveEntityDocument & SystemProperties;
  expect(restored.entity.metadata.description).toBe('Takes payments');
  expect(restored.entity.relations).toEqual(original.entity.relations);
  expect(computeSyncHash(restored as unknown as Record<string, unknown>)).toBe(restored.syncHash);
  expect(await allEdges()).toEqual(await catalogRelations());
  // The repair's own write did not count as drift again.
  expect(drifts()).toBe(1);
});

test('no projection failures were recorded; the admin endpoint says so', async () => {
  const response = await listProjectionFailures(
    new HttpRequest({
      method: 'GET',
      url: 'http://localhost:7071/api/admin/projection-failures',
      headers: { authorization: `Bearer ${await userToken({ roles: ['Catalog.Admin'] })}` },
    }),
    new InvocationContext({ functionName: 'listProjectionFailures' }),
  );
  expect(response.status).toBe(200);
  expect(bodyJson(response)).toEqual({ items: [], count: 0 });
  expect(feed.documents).toBeGreaterThan(0);
});
