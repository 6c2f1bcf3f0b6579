/**
 * The sync scope on the reconcile and the event path, against the real Backstage stand-in and the Cosmos emulator:
 * settings that leave kinds out (never fetched, counted by the catalog), owners' annotations (exclude, envelope only,
 * omitted fields) and a narrowed scope under the mass-deletion guard. The module's own filter is in
 * module-backstage.test.ts.
 */
import type { LocalServiceBus } from '../../local/servicebus/broker';
import type { LiveEntityDocument, SystemProperties } from '../../shared/model/documents';
import type { ApiRequest } from '../../shared/http/problem';
import type { HistoryRecord } from '../../shared/history/record';
import { createRuntime, type Runtime } from '../../shared/runtime';
import { SCOPE_ANNOTATIONS } from '../../shared/sync/scope';
import { rawContainers } from '../support/containers';
import { startFixtureCatalog, type FixtureCatalog } from '../support/backstage';
import { catalogEvent } from '../support/events';
import { provisionCosmos, startBroker, testConfig, uniqueName, userToken } from '../support/stack';

jest.setTimeout(120_000);

const HARNESS = { token: 'test-harness-static-token' };
const QUEUE = 'entity-sync';
const SECRET = 'withheld-connection-hunter2';

let fixture: FixtureCatalog;
let broker: LocalServiceBus;
const runtimes: Runtime[] = [];

/** A runtime on its own database (or `database`), with these scope settings. */
async function runtimeWith(settings: Record<string, string>, database = uniqueName('catalog')): Promise<Runtime> {
  const config = testConfig({ BACKSTAGE_BASE_URL: fixture.baseUrl, COSMOS_DATABASE_NAME: database, ServiceBusConnection: broker.connectionString, ...settings });
  (await provisionCosmos(config)).dispose();
  const runtime = createRuntime(config);
  runtimes.push(runtime);
  return runtime;
}

/** Every history record of the runtime's database. */
async function historyRecords(runtime: Runtime): Promise<HistoryRecord[]> {
  const { resources } = await runtime.cosmosClient.database(runtime.config.cosmos.databaseName).container(runtime.config.cosmos.historyContainer).items.query<HistoryRecord>('SELECT * FROM c').fetchAll();
  return resources;
}

async function documents(runtime: Runtime): Promise<Array<LiveEntityDocument & SystemProperties>> {
  const { resources } = await rawContainers(runtime).entities.items.query<LiveEntityDocument & SystemProperties>('SELECT * FROM c').fetchAll();
  return resources;
}

const idOf = (e: { kind: string; metadata: { namespace?: string; name: string } }) => `${e.kind}:${e.metadata.namespace ?? 'default'}:${e.metadata.name}`.toLowerCase();

beforeAll(async () => {
  [fixture, broker] = await Promise.all([startFixtureCatalog(), startBroker()]);
});

afterAll(async () => {
  for (const runtime of runtimes) await runtime.dispose();
  await Promise.all([fixture?.stop(), broker?.stop()]);
});

test('settings: excluded kinds are never fetched, the catalog counts them, and the next run writes nothing', async () => {
  const runtime = await runtimeWith({ SYNC_EXCLUDE_KINDS: 'User,Group,Location' });
  const catalog = await fixture.entities();
  const excluded = catalog.filter((e) => ['User', 'Group', 'Location'].includes(e.kind));
  expect(excluded.length).toBeGreaterThanOrEqual(4);

  const result = await runtime.reconciler.reconcile();
  expect(result).toMatchObject({ seen: catalog.length - excluded.length, created: catalog.length - excluded.length, tombstoned: 0, failed: 0 });
  expect(result.scope).toEqual({ excludedBySetting: excluded.length, excludedByAnnotation: 0, envelopeOnly: 0, fieldsOmitted: 0, leftScope: { setting: 0, annotation: 0 } });
  // One projection page (filtered by the catalog), one count, one batch of full entities: nothing excluded was read.
  expect(result.backstageRequests).toBe(3);
  expect((await documents(runtime)).map((d) => d.id).sort()).toEqual(catalog.filter((e) => !excluded.includes(e)).map(idOf).sort());

  expect(await runtime.reconciler.reconcile()).toMatchObject({ writes: 0, created: 0, updated: 0, unchanged: catalog.length - excluded.length });
  // Excluded kinds leave no history: one record per mirrored entity, none for the rest.
  expect((await historyRecords(runtime)).map((r) => `${r.entityId} ${r.operation}`).sort()).toEqual(
    catalog.filter((e) => !excluded.includes(e)).map((e) => `${idOf(e)} created`).sort(),
  );

  // The event path decides an excluded kind from the ref alone: Backstage is not asked, the mirror not touched.
  const before = runtime.catalog.requestCount;
  expect(await runtime.engine.syncEntity('group:default/platform-team')).toMatchObject({ outcome: 'out-of-scope', scope: 'setting', readBackstage: false });
  expect(runtime.catalog.requestCount).toBe(before);
});

test('the intake acknowledges events for excluded kinds and namespaces, and queues only the rest', async () => {
  const runtime = await runtimeWith({ SYNC_EXCLUDE_KINDS: 'User', SYNC_EXCLUDE_NAMESPACES: 'sandbox' });
  const events = [
    catalogEvent({}, 'user:default/alice'),
    catalogEvent({}, 'component:sandbox/toy'),
    catalogEvent({}, 'component:default/ledger-service'),
  ];
  const before = broker.stats(QUEUE).enqueued;
  const token = await userToken({ roles: ['Events.Send'] });
  const request = new Request('http://localhost/api/catalog/events', {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${token}` },
    body: JSON.stringify(events),
  });
  const apiRequest: ApiRequest = {
    method: request.method,
    url: request.url,
    headers: request.headers,
    params: {},
    query: new URLSearchParams(),
    text: () => request.text(),
    arrayBuffer: () => request.arrayBuffer(),
    body: request.body,
  };
  const response = await runtime.intake.handle(apiRequest);
  expect({ status: response.status, body: JSON.parse(String(response.body)) }).toEqual({ status: 202, body: { accepted: 3, enqueued: 1, outOfScope: 2 } });
  expect(broker.stats(QUEUE).enqueued - before).toBe(1);
});

test('a catalog filter: the catalog evaluates it on the reconcile, the sync evaluates the same predicate on the entity it read', async () => {
  const runtime = await runtimeWith({ SYNC_CATALOG_FILTER: '{"spec.type":"service","spec.lifecycle":{"$in":["production"]}}' });
  const catalog = await fixture.entities();
  const matching = catalog.filter((e) => e.spec?.type === 'service' && e.spec?.lifecycle === 'production');
  expect(matching.map((e) => e.metadata.name).sort()).toEqual(['auth-service', 'ledger-service', 'payments-service']);

  const result = await runtime.reconciler.reconcile();
  expect(result).toMatchObject({ seen: 3, created: 3, failed: 0, backstageRequests: 3 });
  expect(result.scope.excludedBySetting).toBe(catalog.length - 3);
  expect((await documents(runtime)).map((d) => d.id).sort()).toEqual(matching.map(idOf).sort());

  expect(await runtime.engine.syncEntity('component:default/checkout-web')).toMatchObject({ outcome: 'out-of-scope', scope: 'setting', readBackstage: true });
  expect(await runtime.engine.syncEntity('component:default/legacy-batch')).toMatchObject({ outcome: 'out-of-scope', scope: 'setting' });
  expect(await runtime.engine.syncEntity('component:default/ledger-service')).toMatchObject({ outcome: 'unchanged' });
  expect(await runtime.entityStore.read('component:default:checkout-web')).toBeUndefined();
});

describe('owners decide with annotations', () => {
  let runtime: Runtime;
  let database: string;

  beforeAll(async () => {
    database = uniqueName('catalog');
    runtime = await runtimeWith({}, database);
    const first = await runtime.reconciler.reconcile();
    expect(first).toMatchObject({ failed: 0, tombstoned: 0 });
    const annotate = (text: string, name: string, annotations: string) => text.replace(`  name: ${name}\n`, `  name: ${name}\n  annotations:\n${annotations}`);
    await fixture.editFile(
      'catalog-info.yaml',
      (text) => {
        let out = annotate(text, 'checkout-web', `    ${SCOPE_ANNOTATIONS.exclude}: "true"\n`);
        out = out.replace('    backstage.io/techdocs-ref: dir:.\n', `    backstage.io/techdocs-ref: dir:.\n    ${SCOPE_ANNOTATIONS.envelopeOnly}: "true"\n    vault.io/path: ${SECRET}\n`);
        out = annotate(out, 'auth-service', `    ${SCOPE_ANNOTATIONS.omitFields}: spec.lifecycle, metadata.annotations.vault.io/path\n    vault.io/path: ${SECRET}\n`);
        return out;
      },
      async () => {
        const [checkout, payments, auth] = await Promise.all(
          ['checkout-web', 'payments-service', 'auth-service'].map((name) => fixture.admin.getEntityByRef(`component:default/${name}`, HARNESS)),
        );
        return Boolean(
          checkout?.metadata.annotations?.[SCOPE_ANNOTATIONS.exclude] &&
            payments?.metadata.annotations?.[SCOPE_ANNOTATIONS.envelopeOnly] &&
            auth?.metadata.annotations?.[SCOPE_ANNOTATIONS.omitFields],
        );
      },
    );
  });

  test('the event path: the exclude annotation tombstones; envelope-only rewrites to the envelope', async () => {
    expect(await runtime.engine.syncEntity('component:default/checkout-web')).toMatchObject({ outcome: 'tombstoned', scope: 'annotation' });
    expect(await runtime.entityStore.read('component:default:checkout-web')).toMatchObject({ deleted: true });
    expect(await runtime.engine.syncEntity('component:default/payments-service')).toMatchObject({ outcome: 'updated' });
    // Again: what is published did not change, so nothing is written (the digest, not the catalog etag, decides).
    expect(await runtime.engine.syncEntity('component:default/payments-service')).toMatchObject({ outcome: 'unchanged' });
  });

  test('the reconcile counts each reason, writes what changed, then nothing; no document holds what was withheld', async () => {
    const result = await runtime.reconciler.reconcile();
    expect(result.scope).toEqual({ excludedBySetting: 0, excludedByAnnotation: 1, envelopeOnly: 1, fieldsOmitted: 1, leftScope: { setting: 0, annotation: 0 } });
    expect(result).toMatchObject({ updated: 1, tombstoned: 0, failed: 0, writes: 1 });
    expect(await runtime.reconciler.reconcile()).toMatchObject({ writes: 0, updated: 0, created: 0 });

    const docs = new Map((await documents(runtime)).map((d) => [d.id, d]));
    const envelope = docs.get('component:default:payments-service')!;
    expect(envelope).toMatchObject({ publication: 'envelope', owner: 'payments-team', sourceEtag: expect.stringMatching(/^sha256:/) });
    expect(Object.keys(envelope.entity).sort()).toEqual(['apiVersion', 'kind', 'metadata', 'relations']);
    expect(Object.keys(envelope.entity.metadata).sort()).toEqual(['name', 'namespace', 'uid']);
    expect(envelope.entity.relations!.map((r) => r.type)).toEqual(expect.arrayContaining(['ownedBy', 'dependsOn', 'providesApi']));
    const source = await fixture.admin.getEntityByRef('component:default/payments-service', HARNESS);
    const omitted = docs.get('component:default:auth-service')!;
    expect(omitted).toMatchObject({ publication: 'omit-fields', omittedFields: ['spec.lifecycle', 'metadata.annotations.vault.io/path'] });
    expect(omitted.entity.spec).not.toHaveProperty('lifecycle');
    expect(omitted.entity.spec).toMatchObject({ type: 'service', owner: 'platform-team' });
    for (const doc of [envelope, omitted]) {
      const text = JSON.stringify(doc);
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(source!.metadata.etag!);
    }
    expect(JSON.stringify(envelope)).not.toContain('Takes payments');
    expect(docs.get('component:default:checkout-web')).toMatchObject({ deleted: true });

    // The history keeps what the documents keep: each restricted version as published, nothing withheld; the
    // excluded entity's history ends with its deletion.
    const records = await historyRecords(runtime);
    const latest = (id: string) => records.filter((r) => r.entityId === id).sort((a, b) => a.syncedAt.localeCompare(b.syncedAt)).at(-1)!;
    expect(latest('component:default:payments-service')).toMatchObject({ operation: 'updated', publication: 'envelope', entity: envelope.entity });
    expect(latest('component:default:auth-service')).toMatchObject({ operation: 'updated', publication: 'omit-fields', entity: omitted.entity });
    expect(latest('component:default:checkout-web')).toMatchObject({ operation: 'deleted' });
    for (const id of ['component:default:payments-service', 'component:default:auth-service']) {
      const restricted = records.filter((r) => r.entityId === id && r.publication);
      expect(restricted.length).toBeGreaterThan(0);
      for (const record of restricted) expect(JSON.stringify(record)).not.toContain(SECRET);
    }
  });

  test('narrowing the scope past the guard is refused, saying the scope changed, until forced', async () => {
    const narrowed = await runtimeWith({ SYNC_INCLUDE_KINDS: 'Component,API' }, database);
    const live = (await documents(narrowed)).filter((d) => !d.deleted);
    const leaving = live.filter((d) => !['component', 'api'].includes(d.kind.toLowerCase()));
    expect(leaving.length / live.length).toBeGreaterThan(0.2);

    const refused = await narrowed.reconciler.reconcile();
    expect(refused).toMatchObject({ tombstoned: 0, writes: 0, deletionGuard: { allowed: false, tripped: true, pendingTombstones: leaving.length } });
    expect(refused.scope.leftScope).toEqual({ setting: leaving.length, annotation: 0 });
    expect(refused.deletionGuard.reason).toMatch(new RegExp(`^the sync scope changed: ${leaving.length} mirrored entities left it \\(${leaving.length} by the scope settings\\); would tombstone`));

    const forced = await narrowed.reconciler.reconcile({ force: true });
    expect(forced).toMatchObject({ tombstoned: leaving.length, failed: 0, deletionGuard: { allowed: true, forced: true } });
    const after = await documents(narrowed);
    expect(after.filter((d) => !d.deleted).map((d) => d.kind.toLowerCase()).sort()).toEqual(expect.arrayContaining(['api', 'component']));
    expect(after.filter((d) => !d.deleted).every((d) => ['component', 'api'].includes(d.kind.toLowerCase()))).toBe(true);
    expect(await narrowed.reconciler.reconcile()).toMatchObject({ writes: 0, tombstoned: 0, scope: { leftScope: { setting: 0, annotation: 0 } } });
  });
});
