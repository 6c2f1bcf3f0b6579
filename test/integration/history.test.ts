/**
 * The history recorder on the `entities` change feed (the emulator's, run the way the host runs the Cosmos DB
 * trigger, under its own lease prefix): one record per version, whatever the feed replays.
 * Mirror versions are written as the sync writes them (the model's own document builders, so their hashes hold).
 */
import type { Entity } from '@backstage/catalog-model';
import type { ChangeFeedTrigger } from '../../local/functions-host/cosmos';
import type { HistoryRecord } from '../../shared/history/record';
import { toEntityDocument, toTombstone, type EntityDocument } from '../../shared/model/documents';
import type { InMemoryMetrics } from '../../shared/platform/metrics';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { rawContainers } from '../support/containers';
import { HttpRequest, InvocationContext } from '@azure/functions';
import { getEntityHistory } from '../../functions/getEntityHistory';
import { bodyJson } from '../support/http';
import { eventually, provisionCosmos, testEnvironment, userToken } from '../support/stack';
import { startHistoryTrigger } from '../support/triggers';

/** The lease prefix of the function (functions/recordHistory.ts), which the test trigger uses too. */
const LEASE_PREFIX = 'recordHistory-';
let feed: ChangeFeedTrigger | undefined;

beforeAll(async () => {
  const env = testEnvironment({ LOG_LEVEL: 'error' });
  Object.assign(process.env, env);
  (await provisionCosmos(getRuntime().config)).dispose();
  feed = startHistoryTrigger({ logHandler: () => undefined });
});

afterAll(async () => {
  await feed?.stop();
  await resetRuntime();
});

function entity(name: string, description: string, uid: string): Entity {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: { name, namespace: 'default', uid, etag: `${uid}-${description}`, description },
    spec: { type: 'service', owner: 'group:default/team-a' },
    relations: [{ type: 'ownedBy', targetRef: 'group:default/team-a' }],
  };
}

/** Writes a version into the mirror as the sync does (as the deployer: the test stands in for the sync's writes). */
async function mirror(doc: EntityDocument): Promise<void> {
  await rawContainers(getRuntime()).entities.items.upsert(doc);
}

async function historyOf(id: string, count: number): Promise<HistoryRecord[]> {
  return eventually(async () => {
    const records = await getRuntime().historyStore.all(id);
    return records.length >= count && records;
  }, `${count} history records of ${id}`, 30_000);
}

/** Every record of the database, to show that nothing more was written. */
async function allRecords(): Promise<string[]> {
  const { cosmosClient, config } = getRuntime();
  const { resources } = await cosmosClient.database(config.cosmos.databaseName).container(config.cosmos.historyContainer).items.query<{ id: string }>('SELECT c.id FROM c').fetchAll();
  return resources.map((r) => r.id).sort();
}

const duplicatesCounted = () => (getRuntime().inMemoryMetrics as InMemoryMetrics).counter('history.duplicates');

let clock = Date.UTC(2026, 11, 2, 9, 0, 0);
const tick = () => new Date((clock += 1_000));

/** Writes one version and waits for the feed to record it (so the next one is not coalesced with it). */
async function version(doc: EntityDocument, expected: number): Promise<HistoryRecord[]> {
  await mirror(doc);
  return historyOf(doc.id, expected);
}

test('every version of an entity is one record, in order: created, updated, deleted, recreated with its new uid', async () => {
  const name = 'lives';
  const first = toEntityDocument(entity(name, 'first', 'uid-a'), tick(), '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
  await version(first, 1);
  const second = toEntityDocument(entity(name, 'second', 'uid-a'), tick());
  await version(second, 2);
  await version(toTombstone(second, 3600, tick()), 3);
  const reborn = toEntityDocument(entity(name, 'reborn', 'uid-b'), tick());
  const records = await version(reborn, 4);

  expect(records.map((r) => [r.operation, r.uid])).toEqual([
    ['created', 'uid-a'],
    ['updated', 'uid-a'],
    ['deleted', 'uid-a'],
    ['recreated', 'uid-b'],
  ]);
  expect(records[0]).toMatchObject({ entityId: 'component:default:lives', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', entity: first.entity });
  expect(records[1]!.diff).toEqual([
    { op: 'replace', path: '/metadata/etag', value: 'uid-a-second' },
    { op: 'replace', path: '/metadata/description', value: 'second' },
  ]);
  expect(records.map((r) => r.previous)).toEqual([undefined, records[0]!.id, records[1]!.id, records[2]!.id]);
  expect(records.every((r) => r.ttl === 90 * 86_400)).toBe(true);
});

test('replays record nothing twice: the same batch again, and the whole feed again after a lease reset', async () => {
  const doc = toEntityDocument(entity('replayed', 'only', 'uid-r'), tick());
  await version(doc, 1);
  const before = await allRecords();

  const again = await getRuntime().history.recordBatch([doc, doc]);
  expect(again).toMatchObject({ recorded: 0, duplicates: 2 });

  // A forced lease reset: the trigger starts over from the beginning of the feed.
  await feed!.stop();
  const { cosmosClient, config } = getRuntime();
  const leases = cosmosClient.database(config.cosmos.databaseName).container(config.cosmos.leasesContainer);
  const { resources } = await leases.items.query<{ id: string }>('SELECT c.id FROM c').fetchAll();
  const ours = resources.filter((l) => l.id.startsWith(LEASE_PREFIX));
  expect(ours.length).toBeGreaterThan(0);
  for (const lease of ours) await leases.item(lease.id, lease.id).delete();
  const duplicatesBefore = duplicatesCounted();
  feed = startHistoryTrigger({ logHandler: () => undefined });
  // Done once the restarted trigger has read the feed to its end and found every version recorded already.
  await eventually(async () => feed!.idle && duplicatesCounted() > duplicatesBefore, 'the replayed feed to be read', 30_000);
  expect(await allRecords()).toEqual(before);
});

test('a mirror document edited by hand is no version of the entity: it is not recorded', async () => {
  const doc = toEntityDocument(entity('tampered', 'real', 'uid-t'), tick());
  await version(doc, 1);
  const tampered = { ...doc, entity: { ...doc.entity, metadata: { ...doc.entity.metadata, description: 'edited by hand' } }, syncedAt: tick().toISOString() };
  const result = await getRuntime().history.recordBatch([tampered]);
  expect(result).toMatchObject({ recorded: 0, skipped: 1 });
  expect((await getRuntime().historyStore.all(doc.id)).map((r) => r.operation)).toEqual(['created']);
});

test('a version that arrives after a later one is built against the record before it in time', async () => {
  const v1 = toEntityDocument(entity('late', 'one', 'uid-l'), tick());
  const v2 = toEntityDocument(entity('late', 'two', 'uid-l'), tick());
  const v3 = toEntityDocument(entity('late', 'three', 'uid-l'), tick());
  await getRuntime().history.recordBatch([v1]);
  await getRuntime().history.recordBatch([v3]);
  await getRuntime().history.recordBatch([v2]);
  const records = await getRuntime().historyStore.all(v1.id);
  expect(records.map((r) => r.entity?.metadata.description)).toEqual(['one', 'two', 'three']);
  expect(records[1]).toMatchObject({ operation: 'updated', previous: records[0]!.id });
  expect(records[1]!.diff).toContainEqual({ op: 'replace', path: '/metadata/description', value: 'two' });
});

test('the history API pages through an entity newest first, with what `include` asks for', async () => {
  const token = await userToken({ roles: ['Catalog.Read'] });
  const get = async (query: string) => {
    const response = await getEntityHistory(
      new HttpRequest({
        method: 'GET',
        url: `http://localhost:7071/api/entities/component/default/lives/history?${query}`,
        headers: { authorization: `Bearer ${token}` },
        params: { kind: 'component', namespace: 'default', name: 'lives' },
      }),
      new InvocationContext({ functionName: 'getEntityHistory' }),
    );
    expect(response.status).toBe(200);
    return bodyJson<{ entityRef: string; items: Array<Record<string, unknown>>; continuation?: string }>(response);
  };
  const first = await get('pageSize=3&include=entity');
  expect(first.items.map((i) => i.operation)).toEqual(['recreated', 'deleted', 'updated']);
  expect(first.items[0]).toHaveProperty('entity');
  expect(first.items[2]).not.toHaveProperty('diff');
  expect(first.items[0]).not.toHaveProperty('entityId');
  expect(first.items[0]).not.toHaveProperty('_etag');
  const second = await get(`pageSize=3&include=entity&continuation=${first.continuation!}`);
  expect(second.items.map((i) => i.operation)).toEqual(['created']);
  expect(second.continuation).toBeUndefined();
  // The default carries the diffs; `since` keeps the later versions only.
  const all = await get('');
  expect(all.items.find((i) => i.operation === 'updated')).toHaveProperty('diff');
  const since = all.items[1]!.syncedAt as string;
  expect((await get(`since=${encodeURIComponent(since)}`)).items.map((i) => i.operation)).toEqual(['recreated', 'deleted']);
});

test('the write path builds a version against the document it replaced, unless someone edited that one by hand', async () => {
  const history = getRuntime().history;
  const v1 = toEntityDocument(entity('written', 'one', 'uid-w'), tick());
  expect(await history.recordWritten([{ doc: v1 }])).toMatchObject({ recorded: 1 });
  const v2 = toEntityDocument(entity('written', 'two', 'uid-w'), tick());
  expect(await history.recordWritten([{ doc: v2, replaced: v1 }])).toMatchObject({ recorded: 1 });
  // The sync replaced a document someone had tagged by hand: the version is built against the history instead.
  const tampered = { ...v2, entity: { ...v2.entity, metadata: { ...v2.entity.metadata, tags: ['edited-by-hand'] } } };
  const v3 = toEntityDocument(entity('written', 'three', 'uid-w'), tick());
  expect(await history.recordWritten([{ doc: v3, replaced: tampered }])).toMatchObject({ recorded: 1 });
  // The same versions again (a retried sync): nothing new.
  expect(await history.recordWritten([{ doc: v3, replaced: v2 }])).toMatchObject({ recorded: 0, duplicates: 1 });

  const records = await getRuntime().historyStore.all(v1.id);
  expect(records.map((r) => [r.operation, r.previous])).toEqual([
    ['created', undefined],
    ['updated', records[0]!.id],
    ['updated', records[1]!.id],
  ]);
  expect(records[2]!.diff).toContainEqual({ op: 'replace', path: '/metadata/description', value: 'three' });
  expect(JSON.stringify(records[2]!.diff)).not.toContain('tags');
});

test('a version that created its mirror document is a first life: created, without asking the history', async () => {
  const history = getRuntime().history;
  const first = toEntityDocument(entity('expired', 'first life', 'uid-e1'), tick());
  expect(await history.recordWritten([{ doc: first, replaced: null }])).toMatchObject({ recorded: 1 });
  const tombstone = toTombstone(first, 3600, tick());
  expect(await history.recordWritten([{ doc: tombstone, replaced: first }])).toMatchObject({ recorded: 1 });
  // The tombstone expired from the mirror; the entity comes back and the sync creates its document anew.
  const second = toEntityDocument(entity('expired', 'second life', 'uid-e2'), tick());
  expect(await history.recordWritten([{ doc: second, replaced: null }])).toMatchObject({ recorded: 1 });
  const records = await getRuntime().historyStore.all(first.id);
  expect(records.map((r) => [r.operation, r.uid, r.previous])).toEqual([
    ['created', 'uid-e1', undefined],
    ['deleted', 'uid-e1', records[0]!.id],
    ['created', 'uid-e2', undefined],
  ]);
});
