/**
 * The mirror against the real stand-ins: a real Backstage catalog backend (trusting the local issuer),
 * the Cosmos emulator over HTTPS with Entra tokens from the local managed-identity endpoint.
 */
import type { Entity } from '@backstage/catalog-model';
import { CatalogReader, type BackstageCompression, type CallOptions } from '../../shared/sync/catalog-reader';
import type { AppConfig } from '../../shared/platform/config';
import { RequestChargeTracker } from '../../shared/platform/cosmos';
import { toEntityDocument, type LiveEntityDocument, type SystemProperties } from '../../shared/model/documents';
import { BackstageAuthError } from '../../shared/platform/errors';
import { createCredential, EntraTokenProvider } from '../../shared/platform/identity';
import { createRuntime, type Runtime } from '../../shared/runtime';
import { toDocumentId } from '../../shared/model/refs';
import { SyncEngine } from '../../shared/sync/engine';
import { startFixtureCatalog, type FixtureCatalog } from '../support/backstage';
import { BACKSTAGE_SCOPE, eventually, identityAdmin, provisionCosmos, testConfig, uniqueName } from '../support/stack';
import { rawContainers } from '../support/containers';

jest.setTimeout(120_000);

let fixture: FixtureCatalog;
let config: AppConfig;
let runtime: Runtime;

beforeAll(async () => {
  fixture = await startFixtureCatalog();
  config = testConfig({ BACKSTAGE_BASE_URL: fixture.baseUrl });
  (await provisionCosmos(config)).dispose();
  runtime = createRuntime(config);
});

afterAll(async () => {
  await runtime?.dispose();
  await fixture?.stop();
});

async function mirrorDocuments(): Promise<Array<LiveEntityDocument & SystemProperties>> {
  const { resources } = await rawContainers(runtime).entities.items.query<LiveEntityDocument & SystemProperties>('SELECT * FROM c').fetchAll();
  return resources;
}

function byId(entities: Entity[]): Map<string, Entity> {
  return new Map(entities.map((e) => [toDocumentId({ kind: e.kind, namespace: e.metadata.namespace ?? 'default', name: e.metadata.name }), e]));
}

describe('reconcile', () => {
  test('the first reconcile mirrors the fixture catalog exactly, every entity with its full content', async () => {
    const catalog = await fixture.entities();
    const result = await runtime.reconciler.reconcile();

    expect(result).toMatchObject({ seen: catalog.length, created: catalog.length, updated: 0, unchanged: 0, tombstoned: 0, failed: 0 });
    expect(result.writes).toBe(catalog.length);
    expect(result.requestCharge).toBeGreaterThan(0);

    const docs = await mirrorDocuments();
    expect(docs).toHaveLength(catalog.length);
    const expected = byId(catalog);
    for (const doc of docs) {
      const entity = expected.get(doc.id);
      expect(entity).toBeDefined();
      expect(doc.entity).toEqual(entity);
      expect(doc).toMatchObject({
        entityRef: `${entity!.kind}:${entity!.metadata.namespace}/${entity!.metadata.name}`,
        kind: entity!.kind,
        uid: entity!.metadata.uid,
        sourceEtag: entity!.metadata.etag,
      });
      expect(doc.syncHash).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(doc.deleted).toBeUndefined();
    }
  });

  test('a second reconcile of an unchanged catalog performs zero writes', async () => {
    const catalog = await fixture.entities();
    const before = await mirrorDocuments();
    const result = await runtime.reconciler.reconcile();

    expect(result).toMatchObject({ seen: catalog.length, created: 0, updated: 0, unchanged: catalog.length, tombstoned: 0, failed: 0, writes: 0 });
    const after = await mirrorDocuments();
    expect(after.map((d) => d._etag).sort()).toEqual(before.map((d) => d._etag).sort());
  });

  test('editing one entity in the catalog updates exactly that document', async () => {
    const before = new Map((await mirrorDocuments()).map((d) => [d.id, d]));
    const id = 'component:default:ledger-service';
    await fixture.editFile(
      'catalog-info.yaml',
      (text) => text.replace('description: Double-entry ledger', 'description: Double-entry ledger, now with audit trail'),
      async () => (await fixture.admin.getEntityByRef('component:default/ledger-service', { token: 'test-harness-static-token' }))
        ?.metadata.description === 'Double-entry ledger, now with audit trail',
    );

    const result = await runtime.reconciler.reconcile();
    expect(result).toMatchObject({ created: 0, updated: 1, tombstoned: 0, failed: 0, writes: 1 });

    const after = await mirrorDocuments();
    const changed = after.filter((d) => d._etag !== before.get(d.id)?._etag).map((d) => d.id);
    expect(changed).toEqual([id]);
    expect(after.find((d) => d.id === id)!.entity.metadata.description).toBe('Double-entry ledger, now with audit trail');
  });

  test('removing an entity from the catalog tombstones it', async () => {
    await fixture.removeLocation('removable');
    // Backstage drops the entity at once, then re-stitches its neighbours (owner, system) without the relations.
    const catalog = await eventually(async () => {
      const items = await fixture.entities();
      const settled = !items.some((e) => e.metadata.name === 'legacy-batch' || e.relations?.some((r) => r.targetRef.endsWith('/legacy-batch')));
      return settled && items;
    }, 'the catalog to settle after removing legacy-batch');
    const mirrored = new Map((await mirrorDocuments()).map((d) => [d.id, d.sourceEtag]));
    const restitched = catalog.filter((e) => mirrored.get(toDocumentId(`${e.kind}:${e.metadata.namespace}/${e.metadata.name}`)) !== e.metadata.etag);
    expect(restitched.map((e) => e.metadata.name).sort()).toEqual(['platform', 'platform-team']);

    const result = await runtime.reconciler.reconcile();
    // The removed location takes its Location entity with it: two tombstones.
    expect(result).toMatchObject({ seen: catalog.length, created: 0, updated: restitched.length, tombstoned: 2, failed: 0 });
    expect(result.writes).toBe(2 + restitched.length);
    expect(result.deletionGuard).toMatchObject({ tripped: false, allowed: true });

    const doc = await runtime.entityStore.read('component:default:legacy-batch');
    expect(doc).toMatchObject({ deleted: true, ttl: config.sync.tombstoneTtlInSeconds, sourceEtag: null });
    expect(doc).not.toHaveProperty('entity');
    expect(Date.parse((doc as { deletedAt: string }).deletedAt)).toBeGreaterThan(Date.now() - 60_000);

    // Tombstones are not tombstoned again, nor counted as live.
    const again = await runtime.reconciler.reconcile();
    expect(again).toMatchObject({ tombstoned: 0, writes: 0 });
  });
});

// Before the mass-deletion guard's test, which empties the fixture catalog.
describe('how Backstage answers travel (BACKSTAGE_COMPRESSION)', () => {
  /** A reader whose every exchange with the real Backstage backend is recorded: what it asked for, how it was answered. */
  function recordingReader(compression?: BackstageCompression) {
    const exchanges: Array<{ acceptEncoding: string | null; contentEncoding: string | null }> = [];
    const fetch: typeof globalThis.fetch = async (input, init) => {
      const response = await globalThis.fetch(input, init);
      exchanges.push({ acceptEncoding: new Headers(init?.headers).get('accept-encoding'), contentEncoding: response.headers.get('content-encoding') });
      return response;
    };
    const reader = new CatalogReader({ ...config.backstage, pageSize: 2, ...(compression && { compression }), tokenProvider: runtime.tokenProvider, fetch });
    return { reader, exchanges };
  }

  /** The catalog's stream, every other page read whole, and three entities by ref. */
  async function readEverything(reader: CatalogReader) {
    const pages: Array<{ refs: string[]; whole: Entity[] | undefined }> = [];
    for await (const page of reader.streamCatalog({ readWhole: () => pages.length % 2 === 1 })) pages.push({ refs: page.items.map((i) => i.entityRef), whole: page.entities });
    return { pages, byRefs: await reader.getEntitiesByRefs(pages.flatMap((p) => p.refs).slice(0, 3)) };
  }

  test('by default the reader asks for plain answers, and Backstage sends them so', async () => {
    expect(config.backstage.compression).toBe('none');
    const { reader, exchanges } = recordingReader();
    const read = await readEverything(reader);
    expect(read.pages.length).toBeGreaterThan(2);
    expect(exchanges.length).toBe(read.pages.length + 1);
    expect(exchanges.every((e) => e.acceptEncoding === 'identity' && e.contentEncoding === null)).toBe(true);
  });

  test.each(['gzip', 'br'] as const)('with %s Backstage compresses its answers, and what the reader returns is the same', async (compression) => {
    const plain = await readEverything(recordingReader('none').reader);
    const { reader, exchanges } = recordingReader(compression);
    const read = await readEverything(reader);
    expect(exchanges.length).toBe(read.pages.length + 1);
    // Every answer that has a body worth compressing comes compressed (Backstage leaves the smallest plain).
    expect(exchanges.every((e) => e.acceptEncoding === compression)).toBe(true);
    expect(exchanges.filter((e) => e.contentEncoding === compression).length).toBeGreaterThan(0);
    expect(exchanges.every((e) => e.contentEncoding === compression || e.contentEncoding === null)).toBe(true);
    expect(read).toEqual(plain);
  });
});

describe('syncEntity', () => {
  test('an unchanged entity costs one mirror read and one Backstage read, and no write', async () => {
    const charge = new RequestChargeTracker();
    const result = await runtime.engine.syncEntity('component:default/payments-service', { charge });
    expect(result).toMatchObject({ outcome: 'unchanged', attempts: 1, readBackstage: true });
    expect(charge.byOperation).toEqual({ read: { count: 1, requestCharge: expect.any(Number) } });
  });

  test('a known etag equal to the mirror completes without reading Backstage', async () => {
    const doc = (await runtime.entityStore.read('component:default:payments-service')) as LiveEntityDocument;
    const requestsBefore = runtime.catalog.requestCount;
    const result = await runtime.engine.syncEntity('Component:default/payments-service', { knownEtag: doc.sourceEtag! });
    expect(result).toMatchObject({ outcome: 'unchanged', readBackstage: false });
    expect(runtime.catalog.requestCount).toBe(requestsBefore);
  });

  test('an entity Backstage does not know is tombstoned when mirrored, and left absent otherwise', async () => {
    const missing = await runtime.engine.syncEntity('component:default/never-existed');
    expect(missing.outcome).toBe('absent');
    expect(await runtime.entityStore.read('component:default:never-existed')).toBeUndefined();

    // A mirror document whose entity Backstage has since lost (e.g. an event arrived after the delete).
    const ghost = toEntityDocument({
      apiVersion: 'backstage.io/v1alpha1',
      kind: 'Component',
      metadata: { name: 'ghost', namespace: 'default', uid: 'ghost-uid', etag: 'ghost-etag' },
      spec: { type: 'service', owner: 'nobody', lifecycle: 'experimental' },
    });
    await runtime.entityStore.create(ghost);
    const result = await runtime.engine.syncEntity('component:default/ghost');
    expect(result).toMatchObject({ outcome: 'tombstoned', attempts: 1 });
    expect(await runtime.entityStore.read('component:default:ghost')).toMatchObject({ deleted: true, uid: 'ghost-uid' });
    expect((await runtime.engine.syncEntity('component:default/ghost')).outcome).toBe('absent');
  });

  test('two interleaved syncs of one ref end with the newest content', async () => {
    const ref = 'component:default/checkout-web';
    const id = toDocumentId(ref);
    const token = { token: 'test-harness-static-token' };
    const described = (text: string) => async () =>
      (await fixture.admin.getEntityByRef(ref, token))?.metadata.description === text;

    // A reader that, once, holds the entity it fetched until the test lets it go.
    class GatedReader extends CatalogReader {
      hold: Promise<void> | undefined;
      fetched: (() => void) | undefined;
      override async getEntityByRef(entityRef: string, options?: CallOptions) {
        const entity = await super.getEntityByRef(entityRef, options);
        const hold = this.hold;
        if (hold) {
          this.hold = undefined;
          this.fetched?.();
          await hold;
        }
        return entity;
      }
    }
    const reader = new GatedReader({
      ...config.backstage,
      tokenProvider: new EntraTokenProvider(createCredential({ mode: 'local', managedIdentityClientId: config.managedIdentityClientId }), BACKSTAGE_SCOPE),
    });
    const engine = new SyncEngine({
      catalog: reader,
      store: runtime.entityStore,
      tombstoneTtlInSeconds: 60,
      maxAttempts: 5,
    });

    await fixture.editFile('catalog-info.yaml', (t) => t.replace('The checkout front end', 'Checkout v2'), described('Checkout v2'));

    // A reads the mirror, fetches v2 from Backstage, and is held before writing.
    let release!: () => void;
    reader.hold = new Promise<void>((r) => (release = r));
    const fetched = new Promise<void>((r) => (reader.fetched = r));
    const syncA = engine.syncEntity(ref);
    await fetched;

    // Backstage moves on to v3; B syncs it completely.
    await fixture.editFile('catalog-info.yaml', (t) => t.replace('Checkout v2', 'Checkout v3'), described('Checkout v3'));
    const resultB = await engine.syncEntity(ref);
    expect(resultB).toMatchObject({ outcome: 'updated', attempts: 1 });

    // A now writes what it fetched — against the etag it read before B's write.
    release();
    const resultA = await syncA;
    expect(resultA.attempts).toBe(2); // its conditional write lost, it started over
    expect(resultA.outcome).toBe('unchanged'); // and found the mirror already newest

    const doc = (await runtime.entityStore.read(id)) as LiveEntityDocument;
    expect(doc.entity.metadata.description).toBe('Checkout v3');
  });
});

describe('mass-deletion guard', () => {
  test('refuses to tombstone when the catalog returns nothing, and --force overrides it', async () => {
    const liveBefore = (await mirrorDocuments()).filter((d) => !d.deleted);
    await fixture.removeLocation('main');
    expect(await fixture.entities()).toEqual([]);

    const result = await runtime.reconciler.reconcile();
    expect(result.seen).toBe(0);
    expect(result.tombstoned).toBe(0);
    expect(result.writes).toBe(0);
    expect(result.deletionGuard).toMatchObject({ tripped: true, allowed: false, pendingTombstones: liveBefore.length });
    expect(result.deletionGuard.reason).toMatch(/catalog returned no entities/);
    expect((await mirrorDocuments()).filter((d) => !d.deleted)).toHaveLength(liveBefore.length);

    const forced = await runtime.reconciler.reconcile({ force: true });
    expect(forced.tombstoned).toBe(liveBefore.length);
    expect(forced.deletionGuard).toMatchObject({ tripped: true, allowed: true, forced: true });
    expect((await mirrorDocuments()).filter((d) => !d.deleted)).toHaveLength(0);
  });
});

describe('Backstage rejects our token', () => {
  async function readerFor(behaviour: Parameters<ReturnType<typeof identityAdmin>['setClientBehaviour']>[1]) {
    const clientId = uniqueName('mi');
    await identityAdmin().setClientBehaviour(clientId, behaviour);
    return new CatalogReader({
      ...config.backstage,
      tokenProvider: new EntraTokenProvider(createCredential({ mode: 'local', managedIdentityClientId: clientId }), BACKSTAGE_SCOPE),
    });
  }

  test('a token for the wrong audience gets 401, one refresh, and a clear error', async () => {
    const reader = await readerFor({ audience: 'api://some-other-app' });
    const error = await reader.getEntityByRef('component:default/auth-service').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackstageAuthError);
    expect((error as BackstageAuthError).status).toBe(401);
    expect((error as Error).message).toMatch(/rejected the token \(401\).*externalAccess trusts this identity's issuer and audience/);
    expect(reader.requestCount).toBe(2); // the first try and one retry with a refreshed token
  });

  test('an expired token gets 401 and a clear error', async () => {
    // The endpoint claims a long lifetime, but the JWT itself has expired (e.g. clock skew).
    const reader = await readerFor({ tokenLifetimeInSeconds: -600, reportedLifetimeInSeconds: 3600 });
    const error = await reader.getEntityByRef('component:default/auth-service').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackstageAuthError);
    expect((error as Error).message).toMatch(/401/);
  });

  test('a good token is accepted (the same path, for contrast)', async () => {
    const reader = await readerFor({});
    await expect(reader.getEntityByRef('component:default/does-not-exist')).resolves.toBeUndefined();
    expect(reader.requestCount).toBe(1);
  });
});
