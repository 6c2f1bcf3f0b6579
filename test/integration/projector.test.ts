/**
 * The edge projection against the Cosmos emulator: only differences are written, tombstones clear, redelivery
 * is a no-op, a poison document is recorded without stopping the batch, drift is sent for re-sync.
 */
import type { Entity } from '@backstage/catalog-model';
import type { Container, CosmosClient } from '@azure/cosmos';
import { computeSyncHash, toEntityDocument, toTombstone, type EdgeDocument, type EntityDocument, type LiveEntityDocument } from '../../shared/model/documents';
import { EdgeStore } from '../../shared/edges/edge-store';
import { silentLogger } from '../../shared/platform/logger';
import { FAILURES_PARTITION, ProjectionFailureStore } from '../../shared/edges/failure-store';
import { EdgeProjector } from '../../shared/edges/projector';
import { graphFixture } from '../support/graph-fixture';
import { provisionCosmos, testConfig } from '../support/stack';

let client: CosmosClient;
let edges: Container;
let projector: EdgeProjector;
let failures: ProjectionFailureStore;
const resyncs: Array<{ entityRef: string; id: string }> = [];
/** What the projector's replays find in the mirror; each test that replays sets it. */
let mirror: (id: string) => Promise<EntityDocument | undefined> = async () => undefined;

beforeAll(async () => {
  const config = testConfig();
  client = await provisionCosmos(config);
  edges = client.database(config.cosmos.databaseName).container(config.cosmos.edgesContainer);
  const storeOptions = { throttleRetry: { maxRetries: 3, baseDelayInMs: 10, maxDelayInMs: 100 } };
  failures = new ProjectionFailureStore(edges, storeOptions);
  projector = new EdgeProjector({
    edges: new EdgeStore(edges, storeOptions),
    failures,
    resync: async (entityRef, drifted) => {
      resyncs.push({ entityRef, id: drifted.id });
    },
    readDocument: (id) => mirror(id),
    logger: silentLogger,
    retryBaseDelayInMs: 1,
  });
});
afterAll(() => client?.dispose());

async function edgesOf(source: string): Promise<EdgeDocument[]> {
  const { resources } = await edges.items.query<EdgeDocument>({ query: 'SELECT * FROM c WHERE c.source = @s', parameters: [{ name: '@s', value: source }] }).fetchAll();
  return resources.sort((a, b) => a.id.localeCompare(b.id));
}

const fixture = graphFixture();
const byName = (name: string) => fixture.find((e) => e.metadata.name === name)!;
const withRelations = (entity: Entity, relations: Entity['relations']): Entity => ({
  ...entity,
  metadata: { ...entity.metadata, etag: `${entity.metadata.etag}-${relations!.length}` },
  relations,
});

test('the first projection writes one edge per relation, shaped as the design says', async () => {
  const result = await projector.projectBatch(fixture.map((e) => toEntityDocument(e)));
  const relationCount = fixture.reduce((n, e) => n + e.relations!.length, 0);
  expect(result).toMatchObject({ documents: fixture.length, projected: fixture.length, edgesAdded: relationCount, edgesRemoved: 0, failed: 0, drifted: 0 });
  expect(await edgesOf('component:default:web')).toEqual([
    expect.objectContaining({
      id: 'consumesApi:api:default:orders-api',
      source: 'component:default:web',
      sourceRef: 'component:default/web',
      type: 'consumesApi',
      targetRef: 'api:default/orders-api',
      target: 'api:default:orders-api',
      sourceKind: 'component',
      targetKind: 'api',
      updatedAt: expect.any(String),
    }),
    expect.objectContaining({ id: 'dependsOn:component:default:api-gateway' }),
    expect.objectContaining({ id: 'ownedBy:group:default:shop' }),
  ]);
});

test('redelivering the same batch changes nothing', async () => {
  const before = await edgesOf('component:default:ledger');
  const result = await projector.projectBatch(fixture.map((e) => toEntityDocument(e)));
  expect(result).toMatchObject({ projected: 0, unchanged: fixture.length, edgesAdded: 0, edgesRemoved: 0 });
  expect(await edgesOf('component:default:ledger')).toEqual(before);
});

test('adding one relation writes exactly one edge; removing one deletes exactly one', async () => {
  const billing = byName('billing');
  const original = (await edgesOf('component:default:billing')).map((e) => e.id);
  const added = withRelations(billing, [...billing.relations!, { type: 'dependsOn', targetRef: 'resource:default/cache' }]);
  expect(await projector.projectBatch([toEntityDocument(added)])).toMatchObject({ projected: 1, edgesAdded: 1, edgesRemoved: 0 });
  expect((await edgesOf('component:default:billing')).map((e) => e.id)).toEqual([...original, 'dependsOn:resource:default:cache'].sort());

  expect(await projector.projectBatch([toEntityDocument(billing)])).toMatchObject({ projected: 1, edgesAdded: 0, edgesRemoved: 1 });
  expect((await edgesOf('component:default:billing')).map((e) => e.id)).toEqual(original);

  const withoutLedger = withRelations(billing, billing.relations!.filter((r) => !(r.type === 'dependsOn' && r.targetRef === 'component:default/ledger')));
  expect(await projector.projectBatch([toEntityDocument(withoutLedger)])).toMatchObject({ edgesAdded: 0, edgesRemoved: 1 });
  expect((await edgesOf('component:default:billing')).map((e) => e.id)).toEqual(original.filter((id) => id !== 'dependsOn:component:default:ledger'));
  expect(await projector.projectBatch([toEntityDocument(billing)])).toMatchObject({ edgesAdded: 1, edgesRemoved: 0 });
});

test('only the latest version of a document in a batch counts', async () => {
  const ledger = byName('ledger');
  const v1 = toEntityDocument(withRelations(ledger, [{ type: 'dependsOn', targetRef: 'component:default/x' }]));
  const v2 = toEntityDocument(ledger);
  const result = await projector.projectBatch([v1, v2]);
  expect(result.documents).toBe(2);
  expect((await edgesOf('component:default:ledger')).map((e) => e.id)).not.toContain('dependsOn:component:default:x');
});

test('a tombstone clears all the source edges', async () => {
  const doc = toEntityDocument(byName('api-gateway'));
  expect((await edgesOf(doc.id)).length).toBeGreaterThan(0);
  const result = await projector.projectBatch([toTombstone(doc, 60)]);
  expect(result).toMatchObject({ projected: 1, edgesRemoved: 1 });
  expect(await edgesOf(doc.id)).toEqual([]);
  expect(await projector.projectBatch([toTombstone(doc, 60)])).toMatchObject({ unchanged: 1, edgesRemoved: 0 });
});

test('a poison document is recorded for replay and does not stop the rest of the batch', async () => {
  const good = withRelations(byName('orders-db'), [...byName('orders-db').relations!, { type: 'ownedBy', targetRef: 'group:default/shop' }]);
  const poisonBase = { ...toEntityDocument(byName('web')), id: 'component:default:poison', entity: { ...byName('web'), relations: 42 } } as unknown as LiveEntityDocument;
  const poison = { ...poisonBase, syncHash: computeSyncHash(poisonBase as unknown as Record<string, unknown>) };
  const result = await projector.projectBatch([poison, toEntityDocument(good), { no: 'id' }]);
  expect(result).toMatchObject({ documents: 3, projected: 1, failed: 2, edgesAdded: 1 });
  const recorded = await failures.list(10);
  expect(recorded.map((f) => f.source)).toEqual([FAILURES_PARTITION, FAILURES_PARTITION]);
  expect(recorded.find((f) => f.id === 'component:default:poison')).toMatchObject({ entityRef: 'Component:default/web', failures: 1, error: expect.stringMatching(/not iterable/) });
  expect(recorded.find((f) => f.id.startsWith('unidentified:'))).toMatchObject({ document: { no: 'id' } });

  await projector.projectBatch([poison]);
  expect((await failures.read('component:default:poison'))?.failures).toBe(2);
});

test('a replay keeps the record of a document that still fails and removes the one that is fixed', async () => {
  const recorded = (await failures.list(10)).map((f) => f.id);
  const unidentified = recorded.find((id) => id.startsWith('unidentified:'))!;
  const poison = await failures.read('component:default:poison');
  expect(poison).toBeDefined();
  // The mirror still holds the poison document for one id; the unidentified one has no document at all.
  const brokenBase = { ...toEntityDocument(byName('web')), id: 'component:default:poison', entity: { ...byName('web'), relations: 42 } } as unknown as LiveEntityDocument;
  const broken = { ...brokenBase, syncHash: computeSyncHash(brokenBase as unknown as Record<string, unknown>) };
  mirror = async (id) => (id === 'component:default:poison' ? broken : undefined);
  const result = await projector.replayFailures({ ids: ['component:default:poison', unidentified] });
  expect(result.replayed).toEqual([unidentified]);
  expect(result.failed).toEqual([{ id: 'component:default:poison', error: expect.stringMatching(/not iterable/) }]);
  expect((await failures.list(10)).map((f) => f.id)).toEqual(['component:default:poison']);

  mirror = async () => toEntityDocument(byName('web'));
  const fixed = await projector.replayFailures();
  expect(fixed).toEqual({ replayed: ['component:default:poison'], failed: [] });
  expect(await failures.list(10)).toEqual([]);
});

test('a drifted document is not projected; a re-sync of its ref is requested instead', async () => {
  const doc = toEntityDocument(byName('orders'));
  const tampered = { ...doc, entity: { ...doc.entity, relations: [] } };
  const before = await edgesOf(doc.id);
  const result = await projector.projectBatch([tampered]);
  expect(result).toMatchObject({ drifted: 1, edgesRemoved: 0 });
  expect(resyncs).toEqual([{ entityRef: 'Component:default/orders', id: 'component:default:orders' }]);
  expect(await edgesOf(doc.id)).toEqual(before);
});
