/**
 * The reconcile's bulk path against the real stand-ins: with `RECONCILE_BULK_MIN_ENTITIES` at 1 the fixture catalog
 * is large enough to take it, so the initial load and a re-stitched catalog are written as batch requests (not one
 * request per document) — with the same mirror, the same history and the same conditional writes
 * as the point-write path. The store's bulk writes are held to Cosmos's answers: 201/200 with the new etag, 409 for a
 * create of a document that exists, 412 for a replace whose `IfMatch` is stale.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Entity } from '@backstage/catalog-model';
import type { AppConfig } from '../../shared/platform/config';
import type { InMemoryMetrics } from '../../shared/platform/metrics';
import { RequestChargeTracker } from '../../shared/platform/cosmos';
import { toEntityDocument, type LiveEntityDocument, type SystemProperties } from '../../shared/model/documents';
import { toDocumentId } from '../../shared/model/refs';
import { createRuntime, type Runtime } from '../../shared/runtime';
import { startFixtureCatalog, type FixtureCatalog } from '../support/backstage';
import { provisionCosmos, testConfig } from '../support/stack';
import { rawContainers } from '../support/containers';

jest.setTimeout(120_000);

let fixture: FixtureCatalog;
let config: AppConfig;
let runtime: Runtime;

beforeAll(async () => {
  fixture = await startFixtureCatalog();
  config = testConfig({ BACKSTAGE_BASE_URL: fixture.baseUrl, RECONCILE_BULK_MIN_ENTITIES: '1' });
  (await provisionCosmos(config)).dispose();
  runtime = createRuntime(config);
});

afterAll(async () => {
  await runtime?.dispose();
  await fixture?.stop();
});

const metrics = () => runtime.inMemoryMetrics as InMemoryMetrics;

/** Calls of `operation` on `container` (e.g. `entities`, `bulk`) the store made so far. */
function calls(container: string, operation: string): number {
  return metrics()
    .series('dependency.duration')
    .filter((s) => s.dimensions.operation === `${container}.${operation}`)
    .reduce((n, s) => n + s.summary.count, 0);
}

async function mirrorDocuments(of: Runtime = runtime): Promise<Array<LiveEntityDocument & SystemProperties>> {
  const { resources } = await rawContainers(of).entities.items.query<LiveEntityDocument & SystemProperties>('SELECT * FROM c').fetchAll();
  return resources;
}

const idOf = (e: Entity) => toDocumentId({ kind: e.kind, namespace: e.metadata.namespace ?? 'default', name: e.metadata.name });

/** After an initial load: one document per entity, holding it as the catalog has it, and one `created` record each. */
async function expectInitialLoad(of: Runtime, catalog: Entity[]): Promise<void> {
  const docs = new Map((await mirrorDocuments(of)).map((d) => [d.id, d]));
  expect(docs.size).toBe(catalog.length);
  for (const entity of catalog) {
    const doc = docs.get(idOf(entity));
    expect(doc?.entity).toEqual(entity);
    expect(doc?.sourceEtag).toBe(entity.metadata.etag);
  }
  const records = await Promise.all(catalog.map((e) => of.historyStore.all(idOf(e))));
  expect(records.map((r) => r.map((x) => x.operation))).toEqual(catalog.map(() => ['created']));
}

describe('reconcile in bulk', () => {
  test('the initial load writes the mirror and every entity\'s first history record in bulk calls, not one request per document', async () => {
    const catalog = await fixture.entities();
    const before = { bulk: calls('entities', 'bulk'), create: calls('entities', 'create'), historyBulk: calls('history', 'bulk'), historyCreate: calls('history', 'create') };
    const result = await runtime.reconciler.reconcile();

    expect(result).toMatchObject({ seen: catalog.length, created: catalog.length, updated: 0, unchanged: 0, failed: 0, writes: catalog.length });
    // One group: one bulk call per container, no point creates.
    expect(calls('entities', 'bulk') - before.bulk).toBe(1);
    expect(calls('entities', 'create') - before.create).toBe(0);
    expect(calls('history', 'bulk') - before.historyBulk).toBe(1);
    expect(calls('history', 'create') - before.historyCreate).toBe(0);

    await expectInitialLoad(runtime, catalog);
  });

  test('a second reconcile of the unchanged catalog writes nothing, in bulk or otherwise', async () => {
    const before = calls('entities', 'bulk');
    const result = await runtime.reconciler.reconcile();
    expect(result).toMatchObject({ created: 0, updated: 0, failed: 0, writes: 0 });
    expect(calls('entities', 'bulk')).toBe(before);
  });

  test('changed entities are replaced in bulk with IfMatch', async () => {
    const raw = rawContainers(runtime).entities;
    // Make three documents look stale (as a re-stitch of the catalog does): a sourceEtag the catalog no longer has.
    const stale = (await mirrorDocuments()).slice(0, 3);
    for (const doc of stale) await raw.item(doc.id, doc.id).replace({ ...doc, sourceEtag: 'stale' });
    const before = { bulk: calls('entities', 'bulk'), replace: calls('entities', 'replace') };

    const result = await runtime.reconciler.reconcile();
    expect(result).toMatchObject({ created: 0, updated: 3, failed: 0, writes: 3 });
    expect(calls('entities', 'bulk') - before.bulk).toBe(1);
    expect(calls('entities', 'replace') - before.replace).toBe(0);
    for (const doc of stale) {
      const after = await runtime.entityStore.read(doc.id);
      expect(after).toMatchObject({ sourceEtag: doc.sourceEtag });
    }
  });
});

/**
 * Backstage behind a gate: the first page of each catalog stream (a `by-query` without a cursor) is forwarded once
 * `open()` resolves; everything else at once.
 */
async function gatedBackstage(target: string, open: () => Promise<void>): Promise<{ baseUrl: string; close(): Promise<void> }> {
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const firstPage = req.url!.includes('/entities/by-query') && !req.url!.includes('cursor=');
    void (firstPage ? open() : Promise.resolve()).then(() => {
      const forward = http.request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      });
      forward.on('error', () => res.destroy());
      req.pipe(forward);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

describe('a bulk run reads the catalog whole in its stream', () => {
  // Small pages and by-refs requests, so that reading whole shows in the requests: with the projection first, the
  // initial load would send one by-refs request per 3 entities besides the pages.
  let whole: Runtime;
  let gate: Awaited<ReturnType<typeof gatedBackstage>>;
  // Which stream ends first is the machine's to decide; the gate decides it here, so that the requests are exact: the
  // catalog's first page is answered only once the run has read the mirror's index whole (the store's stream ended),
  // and every page after it is read whole.
  let indexRead: Promise<void> = Promise.resolve();
  beforeAll(async () => {
    gate = await gatedBackstage(fixture.baseUrl, () => indexRead);
    const wholeConfig = testConfig({ BACKSTAGE_BASE_URL: gate.baseUrl, RECONCILE_BULK_MIN_ENTITIES: '1', BACKSTAGE_PAGE_SIZE: '3', RECONCILE_FETCH_BATCH_SIZE: '3' });
    (await provisionCosmos(wholeConfig)).dispose();
    whole = createRuntime(wholeConfig);
    const streamIndex = whole.entityStore.streamIndex.bind(whole.entityStore);
    whole.entityStore.streamIndex = async function* (options) {
      let read!: () => void;
      indexRead = new Promise<void>((resolve) => (read = resolve));
      try {
        yield* streamIndex(options);
      } finally {
        read();
      }
    };
  });
  afterAll(async () => {
    await whole?.dispose();
    await gate?.close();
  });

  const documents = async () => new Map((await mirrorDocuments(whole)).map((d) => [d.id, d]));

  test('an initial load: the pages after the first read whole, the same mirror and history as entities read by ref', async () => {
    const catalog = await fixture.entities();
    const pages = Math.ceil(catalog.length / 3);
    const result = await whole.reconciler.reconcile();

    expect(result).toMatchObject({ seen: catalog.length, created: catalog.length, failed: 0, writes: catalog.length });
    // Every page once, and one by-refs request for the first page's entities (read as a projection: the mirror's index
    // was not read yet when it was asked for); with every entity read by ref, one more request per 3 entities.
    expect(result.backstageRequests).toBe(pages + 1);
    await expectInitialLoad(whole, catalog);
  });

  test('a re-stitched catalog (every mirror document stale): replaced with IfMatch from entities read whole; nothing tombstoned', async () => {
    const catalog = await fixture.entities();
    const raw = rawContainers(whole).entities;
    for (const doc of (await documents()).values()) await raw.item(doc.id, doc.id).replace({ ...doc, sourceEtag: 'stale' });
    const result = await whole.reconciler.reconcile();
    expect(result).toMatchObject({ seen: catalog.length, created: 0, updated: catalog.length, tombstoned: 0, failed: 0, writes: catalog.length });
    // As for the initial load: the pages after the first are read whole.
    expect(result.backstageRequests).toBe(Math.ceil(catalog.length / 3) + 1);
    const docs = await documents();
    for (const entity of catalog) expect(docs.get(idOf(entity))).toMatchObject({ sourceEtag: entity.metadata.etag, entity });
    expect(await whole.reconciler.reconcile()).toMatchObject({ writes: 0, unchanged: catalog.length });
  });
});

describe('the entity store\'s bulk writes', () => {
  test('answer as Cosmos does, per operation: created, replaced, 409 for an existing document, 412 for a stale IfMatch', async () => {
    const catalog = await fixture.entities();
    const [a, b] = catalog.slice(0, 2).map((e) => toEntityDocument(e));
    const existing = (await runtime.entityStore.read(a!.id)) as SystemProperties;
    const fresh = toEntityDocument({ ...catalog[0]!, metadata: { ...catalog[0]!.metadata, name: 'bulk-only-entity' } });
    const charge = new RequestChargeTracker();

    const outcomes = await runtime.entityStore.writeMany(
      [
        { kind: 'create', doc: fresh },
        { kind: 'replace', doc: a!, ifMatch: existing._etag! },
        { kind: 'create', doc: b! },
        { kind: 'replace', doc: a!, ifMatch: existing._etag! },
      ],
      { bulk: true, charge },
    );

    expect(outcomes.map((o) => o.statusCode)).toEqual([201, 200, 409, 412]);
    expect(outcomes[0]!.etag).toBe(((await runtime.entityStore.read(fresh.id)) as SystemProperties)._etag);
    expect(outcomes[1]!.etag).toBe(((await runtime.entityStore.read(a!.id)) as SystemProperties)._etag);
    expect(outcomes[2]!.error?.statusCode).toBe(409);
    expect(outcomes[3]!.error?.statusCode).toBe(412);
    // Each operation's charge under its own kind; no retry rounds for answers that are not transient.
    expect(charge.count('create')).toBe(2);
    expect(charge.count('replace')).toBe(2);
  });

  test('a batch asked for minimal answers, as the store asks, is answered as Cosmos answers it: each write its status and etag, not its document', async () => {
    const raw = rawContainers(runtime).entities;
    const doc = (name: string) => toEntityDocument({ apiVersion: 'backstage.io/v1alpha1', kind: 'Component', metadata: { name, namespace: 'default', uid: `u-${name}`, etag: `e-${name}` }, spec: {} });
    const [minimal, full] = [doc('minimal-answer'), doc('full-answer')];
    const [withoutBody] = await raw.items.bulk([{ operationType: 'Create', partitionKey: minimal.id, resourceBody: minimal as never }], { continueOnError: true }, { contentResponseOnWriteEnabled: false });
    const [withBody] = await raw.items.bulk([{ operationType: 'Create', partitionKey: full.id, resourceBody: full as never }], { continueOnError: true });
    expect(withoutBody).toMatchObject({ statusCode: 201, eTag: ((await runtime.entityStore.read(minimal.id)) as SystemProperties)._etag });
    expect(withoutBody!.resourceBody).toBeUndefined();
    expect(withBody).toMatchObject({ statusCode: 201, resourceBody: { id: full.id } });
  });
});
