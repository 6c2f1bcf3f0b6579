/**
 * The whole system as `npm start` runs it — a child process running local/start.ts on free ports, with every
 * stand-in, a real Backstage with the example catalog and the change-events module, and the Functions app in the
 * dev host — driven only from the outside: catalog files, the graph API, Cosmos DB and signals (sent to its process
 * group, as a terminal's Ctrl+C is).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CosmosClient, type Container } from '@azure/cosmos';
import { CatalogClient } from '@backstage/catalog-client';
import { parseAllDocuments } from 'yaml';
import { IdentityAdminClient } from '../../local/identity';
import { LOCAL_API_AUDIENCE } from '../../local/stack';
import { readStackState, type StackState } from '../../local/stack-state';
import type { EdgeDocument } from '../../shared/model/documents';
import type { EntityDocument } from '../../shared/model/documents';
import { eventually } from '../support/stack';

jest.setTimeout(180_000);

const ROOT = resolve(__dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'local-stack-'));
const statePath = join(dir, 'stack.json');
let child: ChildProcess;
let exited: Promise<number | null>;
let state: StackState;
let entities: Container;
let edges: Container;
let cosmos: CosmosClient;
const output: string[] = [];
/** The stack's process and its descendants, just before Ctrl+C. */
let tree: number[] = [];

/** Lines the stack printed after `mark` (an index into `output`). */
const linesSince = (mark: number) => output.slice(mark);

beforeAll(async () => {
  child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'local', 'start.ts'), '--ports', 'auto', '--state', statePath, '--module-interval', '2', '--processing-interval', '2'],
    {
      cwd: ROOT,
      // Its own process group, so the test can send Ctrl+C the way a terminal does.
      detached: true,
      // A reconcile every 20 s, so the timer's effect is observable within the test; Backstage requests time out
      // after 5 s (a sync stuck on an unresponsive Backstage still retries for ≈ 30 s, see the last test).
      env: { ...process.env, RECONCILE_SCHEDULE: '*/20 * * * * *', BACKSTAGE_REQUEST_TIMEOUT_MS: '5000', NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  exited = new Promise((r) => child.once('exit', (code) => r(code)));
  let buffer = '';
  const onData = (chunk: Buffer) => {
    buffer += chunk.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop()!;
    output.push(...lines);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const ready = eventually(() => Promise.resolve(output.includes('READY')), 'npm start to print READY', 150_000);
  const failed = exited.then((code) => Promise.reject(new Error(`npm start exited with ${code}:\n${output.join('\n')}`)));
  await Promise.race([ready, failed]);
  state = readStackState(statePath);
  const identity = new IdentityAdminClient(state.identityUrl!);
  cosmos = new CosmosClient({
    endpoint: state.cosmos.endpoint,
    aadCredentials: {
      getToken: async () => ({
        token: await identity.mint({ audience: 'https://cosmos.azure.com', subject: 'e2e-test' }),
        expiresOnTimestamp: Date.now() + 3_600_000,
      }),
    },
    agent: new https.Agent({ ca: readFileSync(state.cosmos.caPath!, 'utf8') }),
    connectionPolicy: { enableEndpointDiscovery: false },
  });
  entities = cosmos.database(state.cosmos.databaseName).container('entities');
  edges = cosmos.database(state.cosmos.databaseName).container('edges');
});

afterAll(() => {
  cosmos?.dispose();
  for (const pid of [...(state?.pids ?? []), ...tree]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** The refs a catalog file describes. */
function refsIn(path: string): string[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).map((doc) => {
    const entity = doc.toJS() as { kind: string; metadata: { name: string; namespace?: string } };
    return `${entity.kind}:${entity.metadata.namespace ?? 'default'}/${entity.metadata.name}`.toLowerCase();
  });
}

/** The example catalog and this repository's own catalog-info.yaml, both of which npm start registers. */
function exampleRefs(): string[] {
  const refs: string[] = refsIn(join(ROOT, 'catalog-info.yaml'));
  for (const file of ['org', 'systems', 'shop', 'billing', 'platform']) {
    for (const doc of parseAllDocuments(readFileSync(join(ROOT, 'local', 'example-catalog', `${file}.yaml`), 'utf8'))) {
      const entity = doc.toJS() as { kind: string; metadata: { name: string; namespace?: string } };
      refs.push(`${entity.kind}:${entity.metadata.namespace ?? 'default'}/${entity.metadata.name}`.toLowerCase());
    }
  }
  return refs;
}

async function mirror(): Promise<EntityDocument[]> {
  return (await entities.items.query<EntityDocument>('SELECT * FROM c').fetchAll()).resources;
}

async function edgesFrom(id: string): Promise<EdgeDocument[]> {
  return (await edges.items.query<EdgeDocument>({ query: 'SELECT * FROM c WHERE c.source = @s', parameters: [{ name: '@s', value: id }] }).fetchAll()).resources;
}

async function graph(path: string): Promise<{ nodes: Array<{ ref: string; missing?: boolean }>; edges: Array<{ source: string; type: string; target: string }> }> {
  const response = await fetch(`${state.functionsUrl}/api/graph/${path}`, { headers: { authorization: `Bearer ${state.tokens!.read}` } });
  expect(response.status).toBe(200);
  return (await response.json()) as never;
}

function editCatalog(file: string, edit: (text: string) => string): void {
  const path = join(state.catalogDir!, file);
  const before = readFileSync(path, 'utf8');
  const after = edit(before);
  expect(after).not.toBe(before);
  writeFileSync(path, after);
}

test('the stack is up: every stand-in, the dev host listing each function, and the initial reconcile', async () => {
  const text = output.join('\n');
  expect(text).toMatch(/Backstage\s+http:\/\/127\.0\.0\.1:\d+/);
  for (const fn of ['catalogEvents', 'syncEntity', 'projectEdges', 'reconcileCatalog', 'graph']) expect(text).toContain(`    ${fn}`);
  expect(text).toMatch(/reconcile seen \d+: \+\d+/);
  expect(state.pids.length).toBeGreaterThanOrEqual(3); // the stack, Azurite, Backstage
  const health = await fetch(`${state.functionsUrl}/api/health`);
  expect(health.status).toBe(200);
});

test('the initial reconcile mirrors the example catalog, and the change feed projects its edges', async () => {
  const live = (await mirror()).filter((d) => !d.deleted).map((d) => d.entityRef.toLowerCase());
  const expected = exampleRefs();
  expect(expected.length).toBeGreaterThanOrEqual(30);
  expect(live).toEqual(expect.arrayContaining(expected));
  // Only the example catalog, the service itself and their Location entities: nothing else slipped in.
  expect(live.filter((ref) => !ref.startsWith('location:')).sort()).toEqual([...expected].sort());

  // The projection writes each document's edges on its own, so wait for the ones this test looks at.
  const ledger = await eventually(async () => {
    const g = await graph('component/default/ledger?direction=downstream&depth=3');
    const has = (source: string, target: string) => g.edges.some((e) => e.source === source && e.type === 'dependsOn' && e.target === target);
    const dangling = g.nodes.some((n) => n.ref === 'resource:default/legacy-settlement-queue' && n.missing);
    return has('Component:default/ledger', 'Component:default/invoicing') && has('Component:default/invoicing', 'Component:default/ledger') && dangling && g;
  }, 'the edges of the example catalog', 30_000);
  // The cycle ledger → invoicing → ledger and the dangling ref are both there.
  expect(ledger.edges).toEqual(expect.arrayContaining([
    expect.objectContaining({ source: 'Component:default/ledger', type: 'dependsOn', target: 'Component:default/invoicing' }),
    expect.objectContaining({ source: 'Component:default/invoicing', type: 'dependsOn', target: 'Component:default/ledger' }),
  ]));
  expect(ledger.nodes).toContainEqual(expect.objectContaining({ ref: 'resource:default/legacy-settlement-queue', missing: true }));
});

test('the service is in its own catalog: accepted without processing errors, its API definition resolved, mirrored and in the graph', async () => {
  const admin = new CatalogClient({ discoveryApi: { getBaseUrl: async () => `${state.backstageUrl}/api/catalog` } });
  const token = { token: state.backstageAdminToken! };
  const own = refsIn(join(ROOT, 'catalog-info.yaml'));
  expect(own).toContain('component:default/backstage-cosmos-sync');
  const { items } = await admin.getEntitiesByRefs({ entityRefs: own }, token);
  expect(items.map((e) => e && `${e.kind}:${e.metadata.namespace}/${e.metadata.name}`.toLowerCase())).toEqual(own);
  // Processing errors would be on the entities (status items) or on the location that failed to read.
  const errors = (e: (typeof items)[number]) => (e as { status?: { items?: unknown[] } } | undefined)?.status?.items ?? [];
  for (const entity of items) expect({ ref: entity!.metadata.name, status: errors(entity) }).toEqual({ ref: entity!.metadata.name, status: [] });
  const api = items.find((e) => e!.kind === 'API')!;
  expect(api.spec!.definition).toBe(readFileSync(join(ROOT, 'docs', 'openapi.yaml'), 'utf8'));

  const graphed = await eventually(async () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'graph.ts'), 'component:default/backstage-cosmos-sync', '--format', 'json', '--state', statePath], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    if (run.status !== 0) return undefined;
    const g = JSON.parse(run.stdout) as { edges: Array<{ source: string; type: string; target: string }> };
    return g.edges.some((e) => e.target === 'Resource:default/backstage-cosmos-sync-queue') && g;
  }, 'npm run graph to show the service and its dependencies', 60_000);
  expect(graphed.edges).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ source: 'Component:default/backstage-cosmos-sync', type: 'dependsOn', target: 'Resource:default/backstage-cosmos-sync-entities' }),
      expect.objectContaining({ source: 'Component:default/backstage-cosmos-sync', type: 'dependsOn', target: 'Resource:default/backstage-cosmos-sync-queue' }),
    ]),
  );
});

test('a dependency added in a catalog file reaches the mirror, the edges and the graph API through the module events', async () => {
  const mark = output.length;
  editCatalog('shop.yaml', (text) =>
    text.replace('dependsOn: [component:cart-service, resource:orders-db]', 'dependsOn: [component:cart-service, resource:orders-db, resource:search-index]'),
  );
  const g = await eventually(async () => {
    const result = await graph('component/default/checkout-service?depth=1');
    return result.edges.some((e) => e.target === 'Resource:default/search-index') && result;
  }, 'the new dependency in the graph API', 60_000);
  expect(g.edges).toContainEqual(expect.objectContaining({ source: 'Component:default/checkout-service', type: 'dependsOn', target: 'Resource:default/search-index' }));

  const doc = (await entities.item('component:default:checkout-service', 'component:default:checkout-service').read<EntityDocument>()).resource!;
  expect(doc.deleted).toBeFalsy();
  expect((doc as unknown as { entity: { spec: { dependsOn: string[] } } }).entity.spec.dependsOn).toContain('resource:search-index');
  const stored = await edgesFrom('component:default:checkout-service');
  expect(stored).toContainEqual(expect.objectContaining({ type: 'dependsOn', target: 'resource:default:search-index' }));
  // The reverse edge is the target's own relation, written when Backstage restitched it.
  expect(await edgesFrom('resource:default:search-index')).toContainEqual(expect.objectContaining({ type: 'dependencyOf', target: 'component:default:checkout-service' }));

  // The new version is in the entity's history, with the dependency in its diff.
  const history = cosmos.database(state.cosmos.databaseName).container('history');
  const updated = await eventually(async () => {
    const { resources } = await history.items
      .query<{ operation: string; diff?: Array<{ op: string; path: string; value?: unknown }> }>({
        query: "SELECT * FROM c WHERE c.entityId = 'component:default:checkout-service' AND c.operation = 'updated'",
      })
      .fetchAll();
    return resources.find((r) => JSON.stringify(r.diff ?? []).includes('resource:search-index'));
  }, 'a history record of the new dependency', 30_000);
  expect(updated.diff).toContainEqual(expect.objectContaining({ op: 'add', path: expect.stringMatching(/^\/spec\/dependsOn\/(\d+|-)$/), value: 'resource:search-index' }));
  // …and `npm run history` shows it to a person.
  const timeline = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'history.ts'), 'component:default/checkout-service', '--state', statePath], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  expect(timeline.status).toBe(0);
  expect(timeline.stdout).toMatch(/^component:default\/checkout-service — \d+ versions, newest first\n/);
  expect(timeline.stdout).toMatch(/ updated +uid [0-9a-f-]+\n(.*\n)*? {4}\+ \/spec\/dependsOn\/(\d+|-) "resource:search-index"/);
  // …and the change log carries it to a follower, who pages from the beginning with the README's request.
  const seen: Array<{ entityRef: string; operation: string; entity?: { spec?: { dependsOn?: string[] } } }> = [];
  let cursor: string | undefined;
  for (;;) {
    const response = await fetch(`${state.functionsUrl}/api/changes?pageSize=100${cursor ? `&after=${cursor}` : ''}`, { headers: { authorization: `Bearer ${state.tokens!.read}` } });
    expect(response.status).toBe(200);
    const page = (await response.json()) as { items: typeof seen; cursor: string };
    if (page.items.length === 0) break;
    seen.push(...page.items);
    cursor = page.cursor;
  }
  expect(seen.filter((c) => c.entityRef === 'Component:default/checkout-service').map((c) => c.operation)).toEqual(expect.arrayContaining(['created', 'updated']));
  expect(seen.some((c) => c.entityRef === 'Component:default/checkout-service' && c.entity?.spec?.dependsOn?.includes('resource:search-index'))).toBe(true);

  // It came through the module: a batch of catalog events accepted, then a queued sync of the entity.
  const after = linesSince(mark);
  expect(after.some((l) => /events\s+\d+ accepted/.test(l))).toBe(true);
  expect(after.some((l) => /sync\s+Component:default\/checkout-service → (updated|unchanged)/.test(l))).toBe(true);
});

test('an entity removed from a catalog file is tombstoned and its edges removed', async () => {
  editCatalog('shop.yaml', (text) =>
    text.replace(
      'apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: { name: cdn-edge, description: Edge cache and routing }\nspec: { type: service, lifecycle: production, owner: platform, system: shop }\n---\n',
      '',
    ),
  );
  expect(await edgesFrom('component:default:cdn-edge')).not.toHaveLength(0);
  // Backstage deletes the orphaned entity on its next orphan clean-up (every 30 s).
  const tombstone = await eventually(async () => {
    const { resource } = await entities.item('component:default:cdn-edge', 'component:default:cdn-edge').read<EntityDocument>();
    return resource?.deleted === true && resource;
  }, 'the tombstone of component:default/cdn-edge', 90_000);
  expect(tombstone).toMatchObject({ deleted: true, ttl: expect.any(Number) });
  await eventually(async () => (await edgesFrom('component:default:cdn-edge')).length === 0, 'the edges of the removed entity to go', 30_000);
  // Entities that still point at it now show a missing node.
  const web = await graph('component/default/web-shop?depth=1');
  expect(web.nodes).toContainEqual(expect.objectContaining({ ref: 'component:default/cdn-edge', missing: true }));
});

test('the README round trip: an entity PUT through the authoring API reaches Backstage, the mirror and the graph; DELETE removes it', async () => {
  const mark = output.length;
  const url = `${state.functionsUrl}/api/authored/component/default/provisioned-service`;
  const auth = { authorization: `Bearer ${state.tokens!.write}` };
  const created = await fetch(url, { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: readFileSync(join(ROOT, 'local', 'example-authored', 'provisioned-service.json')) });
  expect(created.status).toBe(201);
  const backstage = new CatalogClient({ discoveryApi: { getBaseUrl: (pluginId) => Promise.resolve(`${state.backstageUrl}/api/${pluginId}`) } });
  const entity = await eventually(() => backstage.getEntityByRef('component:default/provisioned-service', { token: state.backstageAdminToken! }), 'the authored entity in Backstage', 60_000);
  expect(entity.metadata.annotations?.['backstage.io/managed-by-location']).toBe(`cosmosdb:${new URL(state.cosmos.endpoint).host}/${state.cosmos.databaseName}/authored`);
  const g = await eventually(async () => {
    const result = await graph('component/default/provisioned-service?depth=1');
    return result.edges.length === 2 && result;
  }, 'the authored entity in the graph API', 60_000);
  expect(g.edges.map((e) => e.target).sort()).toEqual(['Resource:default/cart-cache', 'Resource:default/orders-db']);
  expect(linesSince(mark).some((l) => /authored\s+Component:default\/provisioned-service created by local-producer/.test(l))).toBe(true);

  const removed = await fetch(url, { method: 'DELETE', headers: auth });
  expect(removed.status).toBe(204);
  await eventually(async () => (await backstage.getEntityByRef('component:default/provisioned-service', { token: state.backstageAdminToken! })) === undefined, 'the entity to leave Backstage', 60_000);
  await eventually(async () => {
    const { resource } = await entities.item('component:default:provisioned-service', 'component:default:provisioned-service').read<EntityDocument>();
    return resource?.deleted === true;
  }, 'the mirror document to be tombstoned', 60_000);
  await eventually(async () => (await edgesFrom('component:default:provisioned-service')).length === 0, 'its edges to go', 30_000);
});

test('the reconcile timer reaches the sync: a document lost from the mirror comes back without any event', async () => {
  const id = 'group:default:storefront';
  await entities.item(id, id).delete();
  const mark = output.length;
  const restored = await eventually(async () => (await entities.item(id, id).read<EntityDocument>()).resource, 'the timer to restore the document', 60_000);
  expect(restored).toMatchObject({ entityRef: 'Group:default/storefront' });
  expect(restored.deleted).toBeFalsy();
  // No event was involved: the entity did not change in Backstage, only the reconcile saw the gap. The run prints its
  // summary when it ends, which may be after the document is back.
  await eventually(async () => Promise.resolve(linesSince(mark).some((l) => /reconcile seen \d+: \+1 /.test(l))), 'the reconcile summary', 60_000);
  expect(linesSince(mark).some((l) => /sync\s+Group:default\/storefront/.test(l))).toBe(false);
});

/** `pid` and its descendants (Linux /proc). */
function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const ppid = Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited while we looked
    }
  }
  const all: number[] = [];
  const visit = (p: number) => {
    all.push(p);
    for (const c of children.get(p) ?? []) visit(c);
  };
  visit(pid);
  return all;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')); // a zombie has exited
  } catch {
    return false;
  }
}

test('Ctrl+C stops everything within 15 s and leaves no process behind — even with a backlog stuck on an unresponsive Backstage', async () => {
  const functionsUrl = state.functionsUrl!;
  // Backstage stops answering (as one saturated by a large catalog, or busy in its own shutdown: connections are
  // accepted, nothing comes back); then 3 000 sync messages arrive, one session per entity. Every session of the dev
  // host is soon in a sync that retries Backstage for half a minute, and such an invocation cannot be cancelled.
  process.kill(state.pids.at(-1)!, 'SIGSTOP');
  const token = await new IdentityAdminClient(state.identityUrl!).mint({ audience: LOCAL_API_AUDIENCE, roles: ['Events.Send'] });
  for (let offset = 0; offset < 3_000; offset += 500) {
    const events = Array.from({ length: 500 }, (_, i) => {
      const ref = `component:default/backlog-${offset + i}`;
      return { specversion: '1.0', id: `backlog-${offset + i}`, source: 'http://backstage.local', type: 'io.backstage.catalog.entity.upserted', subject: ref, time: new Date().toISOString(), data: { entityRef: ref } };
    });
    const response = await fetch(`${functionsUrl}/api/catalog/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${token}` },
      body: JSON.stringify(events),
    });
    expect(response.status).toBe(202);
  }
  const mark = output.length;
  await eventually(() => Promise.resolve(linesSince(mark).some((l) => /Backstage request failed; retrying.*timed out/.test(l))), 'the syncs in flight to be stuck on Backstage', 60_000);

  tree = processTree(child.pid!);
  expect(tree).toEqual(expect.arrayContaining(state.pids));
  const signalled = Date.now();
  process.kill(-child.pid!, 'SIGINT');
  await eventually(() => Promise.resolve(tree.every((pid) => !isAlive(pid))), `every process of the stack (${tree.join(', ')}) to be gone`, 15_000);
  process.stdout.write(`Ctrl+C with a stuck backlog: every process gone in ${((Date.now() - signalled) / 1000).toFixed(1)} s\n`);
  expect(await exited).toBe(0);
  await expect(fetch(`${functionsUrl}/api/health`)).rejects.toThrow();
});
