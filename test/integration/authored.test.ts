/**
 * Two-way sync on the stand-ins: entities authored in Cosmos DB — through the authoring API or straight into the
 * `authored` container with the SDK — become catalog entities in a real Backstage (this repository's provider, reading
 * with Backstage's own read-only identity), then come back through the change-events module into the mirror and the
 * graph like any other entity. Deletes remove them everywhere. Backstage restarts with changes waiting: each is applied
 * once, none is lost, and a document that vanished without a trace on the feed goes with the next full mutation.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChangeFeedStartFrom, CosmosClient, type Container } from '@azure/cosmos';
import type { Entity } from '@backstage/catalog-model';
import { adminReconcile } from '../../functions/adminReconcile';
import { catalogEvents } from '../../functions/catalogEvents';
import { deleteAuthored } from '../../functions/deleteAuthored';
import { getAuthored } from '../../functions/getAuthored';
import { graph } from '../../functions/graph';
import { putAuthored } from '../../functions/putAuthored';
import { principalCredential, provisionerCredential } from '../../local/cosmos-setup';
import type { ChangeFeedTrigger } from '../../local/functions-host/cosmos';
import { startHttpHost, type HttpHost } from '../../local/functions-host/http';
import type { SessionTrigger } from '../../local/functions-host/service-bus';
import { catalogClient, LOCAL_API_AUDIENCE, startLocalStack, waitForCatalog, type LocalStack } from '../../local/stack';
import type { AuthoredDocument, EdgeDocument, LiveEntityDocument } from '../../shared/model/documents';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { eventually } from '../support/stack';
import { startProjectionTrigger, startSyncTrigger } from '../support/triggers';

jest.setTimeout(240_000);

const HARNESS = { token: 'authored-harness-token' };
const DATABASE = 'authored-e2e';
const WAIT_IN_MS = 60_000;

let stack: LocalStack;
let host: HttpHost;
let sessions: SessionTrigger;
let feed: ChangeFeedTrigger;
let dir: string;
let deployer: CosmosClient;
let authored: Container;
let mirror: Container;
let edges: Container;
let location: string;
const backstageLogs: string[] = [];
/** The app's invocation logs: the assertions read the stores, not the log. */
const quiet = () => undefined;

const FILE_CATALOG = `
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: { name: platform }
spec: { type: team, children: [] }
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata: { name: orders-db }
spec: { type: database, owner: group:default/platform }
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: { name: file-owned }
spec: { type: service, lifecycle: production, owner: group:default/platform }
`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'authored-'));
  writeFileSync(join(dir, 'catalog.yaml'), FILE_CATALOG);
  stack = await startLocalStack({
    identity: true,
    cosmos: { provision: DATABASE },
    serviceBus: true,
    functions: true,
    backstage: {
      staticToken: HARNESS.token,
      processingIntervalSeconds: 1,
      fileLocations: [join(dir, 'catalog.yaml')],
      changeEvents: { intervalInSeconds: 1 },
      // The provider with the module's defaults; the databases on disk, so a restart finds its continuation.
      authoredEntities: {},
      databaseDirectory: join(dir, 'db'),
      output: (line) => backstageLogs.push(line),
    },
  });
  await waitForCatalog(stack.backstage!, { refs: ['group:default/platform', 'resource:default/orders-db', 'component:default/file-owned'] }, { timeoutInMs: WAIT_IN_MS });
  // The app as the host runs it: its HTTP functions at the port the change-events module posts to, the sync on the
  // queue, the projection on the change feed.
  Object.assign(process.env, stack.settings({ COSMOS_DATABASE_NAME: DATABASE, LOG_LEVEL: 'error' }));
  const authoredRoute = 'authored/{kind}/{namespace}/{name}';
  host = await startHttpHost({
    port: Number(new URL(stack.functionsUrl!).port),
    routes: [
      { functionName: 'catalogEvents', route: 'catalog/events', methods: ['POST'], handler: catalogEvents },
      { functionName: 'getAuthored', route: authoredRoute, methods: ['GET'], handler: getAuthored },
      { functionName: 'putAuthored', route: authoredRoute, methods: ['PUT'], handler: putAuthored },
      { functionName: 'deleteAuthored', route: authoredRoute, methods: ['DELETE'], handler: deleteAuthored },
      { functionName: 'graph', route: 'graph/{kind}/{namespace}/{name}', methods: ['GET'], handler: graph },
      { functionName: 'adminReconcile', route: 'admin/reconcile', methods: ['POST'], handler: adminReconcile },
    ],
    logHandler: quiet,
  });
  sessions = startSyncTrigger(stack.broker!.connectionString, { logHandler: quiet });
  feed = startProjectionTrigger({ logHandler: quiet });
  await getRuntime().reconciler.reconcile();
  deployer = cosmosClient(provisionerCredential((o) => stack.identity!.mint(o)));
  authored = deployer.database(DATABASE).container('authored');
  mirror = deployer.database(DATABASE).container('entities');
  edges = deployer.database(DATABASE).container('edges');
  location = `cosmosdb:${new URL(stack.cosmos!.endpoint).host}/${DATABASE}/authored`;
});

afterAll(async () => {
  deployer?.dispose();
  await feed?.stop();
  await sessions?.stop();
  await host?.close();
  await resetRuntime();
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function cosmosClient(credential: ReturnType<typeof provisionerCredential>): CosmosClient {
  return new CosmosClient({
    endpoint: stack.cosmos!.endpoint,
    aadCredentials: credential,
    agent: new https.Agent({ ca: stack.cosmos!.certificatePem }),
    connectionPolicy: { enableEndpointDiscovery: false },
  });
}

function component(name: string, extra: { description?: string; dependsOn?: string[] } = {}): Entity {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: { name, ...(extra.description && { description: extra.description }) },
    spec: { type: 'service', lifecycle: 'experimental', owner: 'group:default/platform', ...(extra.dependsOn && { dependsOn: extra.dependsOn }) },
  };
}

/** The document a producer writes with the SDK (docs/data-model.md). */
function document(entity: Entity, producer: string): AuthoredDocument {
  const namespace = entity.metadata.namespace ?? 'default';
  return {
    id: `${entity.kind}:${namespace}:${entity.metadata.name}`.toLowerCase(),
    entityRef: `${entity.kind}:${namespace}/${entity.metadata.name}`,
    kind: entity.kind,
    namespace,
    name: entity.metadata.name,
    entity,
    authoredBy: { subject: producer },
    updatedAt: new Date().toISOString(),
  };
}

function tombstone(doc: AuthoredDocument, producer: string): AuthoredDocument {
  const { entity: _entity, ...identity } = doc;
  return { ...identity, authoredBy: { subject: producer }, updatedAt: new Date().toISOString(), deleted: true, ttl: 3600 };
}

async function api(method: string, path: string, options: { body?: unknown; roles?: string[]; headers?: Record<string, string> } = {}): Promise<Response> {
  const token = await stack.identity!.mint({ audience: LOCAL_API_AUDIENCE, subject: 'producer-pipeline', roles: options.roles ?? ['Catalog.Write', 'Catalog.Read'] });
  return fetch(`${host.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(options.body !== undefined && { 'content-type': 'application/json' }), ...options.headers },
    ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
  });
}

async function inBackstage(ref: string): Promise<Entity | undefined> {
  return catalogClient(stack.backstage!.baseUrl).getEntityByRef(ref, HARNESS);
}

type Mirrored = Partial<Omit<LiveEntityDocument, 'deleted'>> & { id: string; deleted?: boolean; _etag?: string };

async function mirrored(id: string): Promise<Mirrored | undefined> {
  const { resource } = await mirror.item(id, id).read<Mirrored>();
  return resource;
}

async function edgesOf(id: string): Promise<string[]> {
  const { resources } = await edges.items.query<EdgeDocument>({ query: 'SELECT * FROM c WHERE c.source = @id', parameters: [{ name: '@id', value: id }] }).fetchAll();
  return resources.map((e) => `${e.type} ${e.target}`).sort();
}

/** Applied delta changes the provider logged from `mark` on (one line per change-feed page). */
function deltaChangesSince(mark: number): number {
  return backstageLogs
    .slice(mark)
    .map((line) => /Applied (\d+) authored entity change/.exec(line))
    .reduce((sum, match) => sum + (match ? Number(match[1]) : 0), 0);
}

test('PUT through the authoring API: the entity reaches Backstage, then the mirror and the graph; DELETE removes it everywhere', async () => {
  const created = await api('PUT', '/api/authored/component/default/provisioned-svc', { body: component('provisioned-svc', { dependsOn: ['resource:default/orders-db'] }) });
  expect(created.status).toBe(201);

  const entity = await eventually(() => inBackstage('component:default/provisioned-svc'), 'the authored entity in Backstage', WAIT_IN_MS);
  expect(entity.metadata.annotations).toMatchObject({ 'backstage.io/managed-by-location': location, 'backstage.io/managed-by-origin-location': location });
  const id = 'component:default:provisioned-svc';
  await eventually(async () => (await edgesOf(id)).includes('dependsOn resource:default:orders-db') && (await edgesOf(id)).includes('ownedBy group:default:platform'), 'its relations as edges', WAIT_IN_MS);
  const doc = await mirrored(id);
  expect(doc?.deleted).toBeFalsy();
  expect(doc?.entity?.metadata.annotations?.['backstage.io/managed-by-location']).toBe(location);

  const graph = await api('GET', '/api/graph/component/default/provisioned-svc?depth=1&format=json', { roles: ['Catalog.Read'] });
  expect(graph.status).toBe(200);
  expect(((await graph.json()) as { edges: unknown[] }).edges).toEqual([{ source: 'Component:default/provisioned-svc', type: 'dependsOn', target: 'Resource:default/orders-db' }]);

  const read = await api('GET', '/api/authored/component/default/provisioned-svc');
  const removed = await api('DELETE', '/api/authored/component/default/provisioned-svc', { headers: { 'if-match': read.headers.get('etag')! } });
  expect(removed.status).toBe(204);
  await eventually(async () => (await inBackstage('component:default/provisioned-svc')) === undefined, 'the entity to leave Backstage', WAIT_IN_MS);
  await eventually(async () => (await mirrored(id))?.deleted === true, 'the mirror document to be tombstoned', WAIT_IN_MS);
  await eventually(async () => (await edgesOf(id)).length === 0, 'its edges to be removed', WAIT_IN_MS);
});

test('an edit converges in one round: one change on the authored feed, the mirror updated once, a reconcile then writes nothing', async () => {
  const path = '/api/authored/component/default/edited-svc';
  const id = 'component:default:edited-svc';
  expect((await api('PUT', path, { body: component('edited-svc', { description: 'first' }) })).status).toBe(201);
  await eventually(async () => (await mirrored(id))?.entity?.metadata.description === 'first', 'the first version in the mirror', WAIT_IN_MS);

  const feed = authored.items.getChangeFeedIterator<AuthoredDocument>({ changeFeedStartFrom: ChangeFeedStartFrom.Now() });
  await feed.readNext();
  const before = (await mirrored(id))!;
  const current = await api('GET', path);
  const edited = await api('PUT', path, { body: component('edited-svc', { description: 'second' }), headers: { 'if-match': current.headers.get('etag')! } });
  expect(edited.status).toBe(200);
  await eventually(async () => (await mirrored(id))?.entity?.metadata.description === 'second', 'the edit in the mirror', WAIT_IN_MS);
  await waitForCatalog(stack.backstage!, { settled: true }, { timeoutInMs: WAIT_IN_MS });

  // Nothing that reads the mirror writes `authored`: its feed holds the edit alone.
  const changes: AuthoredDocument[] = [];
  for (let page = await feed.readNext(); page.result.length > 0; page = await feed.readNext()) changes.push(...page.result);
  expect(changes.map((c) => `${c.id} ${c.entity?.metadata.description}`)).toEqual([`${id} second`]);
  // The mirror took the edit and is level: a full reconcile finds nothing to write.
  const after = (await mirrored(id))!;
  expect(after.sourceEtag).not.toBe(before.sourceEtag);
  // Requested as a run that the sync trigger executes; the answer waits for it.
  const reconcile = await api('POST', '/api/admin/reconcile', { roles: ['Catalog.Admin'], headers: { prefer: 'wait=60' } });
  expect(reconcile.status).toBe(200);
  const run = (await reconcile.json()) as { status: string; result: { created: number; updated: number; tombstoned: number; failed: number } };
  expect(run.status).toBe('succeeded');
  const result = run.result;
  expect({ created: result.created, updated: result.updated, tombstoned: result.tombstoned, failed: result.failed }).toEqual({ created: 0, updated: 0, tombstoned: 0, failed: 0 });
  expect((await mirrored(id))!._etag).toBe(after._etag);
});

test('bad writes change nothing: invalid entity, a kind the policy refuses, a file-owned entity, a stale If-Match, no role', async () => {
  const before = await authored.items.query<{ id: string; _etag: string }>('SELECT c.id, c._etag FROM c').fetchAll();
  const fileOwned = await inBackstage('component:default/file-owned');

  const invalid = await api('PUT', '/api/authored/component/default/bad-svc', { body: { ...component('bad-svc'), spec: { type: 'service' } } });
  expect([invalid.status, ((await invalid.json()) as { type: string }).type]).toEqual([400, 'urn:backstage-cosmos-sync:problem:invalid-entity']);
  const group = await api('PUT', '/api/authored/group/default/new-team', { body: { apiVersion: 'backstage.io/v1alpha1', kind: 'Group', metadata: { name: 'new-team' }, spec: { type: 'team', children: [] } } });
  expect([group.status, ((await group.json()) as { type: string }).type]).toEqual([403, 'urn:backstage-cosmos-sync:problem:authoring-not-allowed']);
  const takeOver = await api('PUT', '/api/authored/component/default/file-owned', { body: component('file-owned') });
  const problem = (await takeOver.json()) as { type: string; ownerLocation: string };
  expect([takeOver.status, problem.type]).toEqual([409, 'urn:backstage-cosmos-sync:problem:owned-elsewhere']);
  expect(problem.ownerLocation).toBe(`file:${join(dir, 'catalog.yaml')}`);
  const stale = await api('PUT', '/api/authored/component/default/stale-svc', { body: component('stale-svc'), headers: { 'if-match': '"not-a-version"' } });
  expect(stale.status).toBe(412);
  const reader = await api('PUT', '/api/authored/component/default/reader-svc', { body: component('reader-svc'), roles: ['Catalog.Read'] });
  expect(reader.status).toBe(403);

  const after = await authored.items.query<{ id: string; _etag: string }>('SELECT c.id, c._etag FROM c').fetchAll();
  expect(after.resources).toEqual(before.resources);
  const stillFileOwned = await inBackstage('component:default/file-owned');
  expect(stillFileOwned?.metadata.etag).toBe(fileOwned?.metadata.etag);
  expect(stillFileOwned?.metadata.annotations?.['backstage.io/managed-by-location']).toBe(`file:${join(dir, 'catalog.yaml')}`);
});

test("a producer writes with the SDK and its own identity (the authors role): create, then a soft delete; it may not hard-delete or touch the mirror", async () => {
  const producer = randomUUID();
  stack.cosmos!.rbac.assign(producer, 'authors');
  const client = cosmosClient(principalCredential((o) => stack.identity!.mint(o), producer));
  try {
    const container = client.database(DATABASE).container('authored');
    const doc = document(component('sdk-svc', { dependsOn: ['resource:default/orders-db'] }), producer);
    await container.items.upsert(doc);
    await eventually(() => inBackstage('component:default/sdk-svc'), 'the SDK-written entity in Backstage', WAIT_IN_MS);
    await eventually(async () => (await edgesOf(doc.id)).includes('dependsOn resource:default:orders-db'), 'its edges in the mirror', WAIT_IN_MS);

    await expect(container.item(doc.id, doc.id).delete()).rejects.toMatchObject({ code: 403 });
    await expect(client.database(DATABASE).container('entities').items.upsert({ id: 'component:default:forged' })).rejects.toMatchObject({ code: 403 });

    await container.items.upsert(tombstone(doc, producer));
    await eventually(async () => (await inBackstage('component:default/sdk-svc')) === undefined, 'the entity to leave Backstage', WAIT_IN_MS);
    await eventually(async () => (await mirrored(doc.id))?.deleted === true, 'the mirror document to be tombstoned', WAIT_IN_MS);
  } finally {
    client.dispose();
  }
});

test("Backstage's identity only reads: the emulator refuses it a write, and the provider never needed one", async () => {
  const principal = stack.backstagePrincipalId!;
  const client = cosmosClient(principalCredential((o) => stack.identity!.mint(o), principal));
  try {
    const container = client.database(DATABASE).container('authored');
    await expect(container.items.upsert(document(component('forged-by-backstage'), principal))).rejects.toMatchObject({ code: 403 });
    expect((await container.items.query('SELECT c.id FROM c').fetchAll()).resources.length).toBeGreaterThan(0);
    const refused = stack.cosmos!.rbac.denials().filter((d) => d.principal === principal);
    expect(refused.map((d) => d.action)).toEqual(['Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/upsert']);
  } finally {
    client.dispose();
  }
});

test('Backstage down for a while: after it restarts every change is applied once, none is lost, and a document gone from the feed leaves with the full mutation', async () => {
  const producer = randomUUID();
  stack.cosmos!.rbac.assign(producer, 'authors');
  const client = cosmosClient(principalCredential((o) => stack.identity!.mint(o), producer));
  try {
    const container = client.database(DATABASE).container('authored');
    const [a, b, c, d] = ['restart-a', 'restart-b', 'restart-c', 'restart-d'].map((name) => document(component(name), producer)) as [AuthoredDocument, AuthoredDocument, AuthoredDocument, AuthoredDocument];
    for (const doc of [a, b, c]) await container.items.upsert(doc);
    await waitForCatalog(stack.backstage!, { refs: ['component:default/restart-a', 'component:default/restart-b', 'component:default/restart-c'] }, { timeoutInMs: WAIT_IN_MS });

    await stack.backstage!.stop();
    // While it is down: an edit, a soft delete, a new entity — and a document removed outright (an expired TTL, an
    // operator's delete), which the feed never shows.
    await container.items.upsert({ ...a, entity: component('restart-a', { description: 'edited while Backstage was down' }) });
    await container.items.upsert(tombstone(b, producer));
    await container.items.upsert(d);
    await authored.item(c.id, c.id).delete();
    // The authoring API cannot check for a take-over while Backstage is away: it refuses rather than guesses.
    expect((await api('PUT', '/api/authored/component/default/restart-e', { body: component('restart-e') })).status).toBe(503);

    const mark = backstageLogs.length;
    await stack.backstage!.start();
    await eventually(
      async () => {
        const [ea, eb, ec, ed] = await Promise.all(['a', 'b', 'c', 'd'].map((n) => inBackstage(`component:default/restart-${n}`)));
        return ea?.metadata.description === 'edited while Backstage was down' && eb === undefined && ec === undefined && ed !== undefined;
      },
      'Backstage to show every change made while it was down',
      WAIT_IN_MS,
    );
    // The feed resumed at the stored continuation: the three changes made while it was down, once each.
    expect(deltaChangesSince(mark)).toBe(3);
    expect(backstageLogs.slice(mark).some((line) => /Applied a full mutation of \d+ authored entities/.test(line))).toBe(true);
    // And the mirror follows.
    // (b and c may never have reached the mirror before the stop: gone or tombstoned, never live.)
    const live = async (id: string) => {
      const doc = await mirrored(id);
      return doc !== undefined && doc.deleted !== true;
    };
    await eventually(
      async () => !(await live(b.id)) && !(await live(c.id)) && (await live(d.id)) && (await mirrored(a.id))?.entity?.metadata.description === 'edited while Backstage was down',
      'the mirror to follow',
      WAIT_IN_MS,
    );
  } finally {
    client.dispose();
  }
});
