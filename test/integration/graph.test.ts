/**
 * GET /api/graph/{kind}/{namespace}/{name} on a fixture graph with an API hop, a cycle and a dangling dependency,
 * through the HTTP function against the Cosmos emulator.
 */
import { HttpRequest, InvocationContext } from '@azure/functions';
import { graph } from '../../functions/graph';
import { loadConfig } from '../../shared/platform/config';
import { toEntityDocument, toTombstone } from '../../shared/model/documents';
import { findCycles } from '../../shared/graph/cycles';
import type { GraphResult } from '../../shared/graph/traverse';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { graphFixture } from '../support/graph-fixture';
import { provisionCosmos, testEnvironment, userToken } from '../support/stack';
import { bodyText } from '../support/http';

let token: string;

beforeAll(async () => {
  const env = testEnvironment();
  Object.assign(process.env, env);
  (await provisionCosmos(loadConfig(env))).dispose();
  const runtime = getRuntime();
  const docs = graphFixture().map((e) => toEntityDocument(e));
  for (const doc of docs) await runtime.entityStore.create(doc);
  // A tombstoned entity: reads must treat it as absent.
  const gone = toEntityDocument({ apiVersion: 'v1', kind: 'Component', metadata: { name: 'retired', namespace: 'default' } });
  await runtime.entityStore.create(toTombstone(gone, 60));
  expect(await runtime.projector.projectBatch(docs)).toMatchObject({ failed: 0 });
  token = await userToken({ roles: ['Catalog.Read'] });
});
afterAll(() => resetRuntime());

async function get(ref: string, query: Record<string, string> = {}, auth = true) {
  const [kind, rest] = ref.split(':') as [string, string];
  const [namespace, name] = rest.split('/') as [string, string];
  const response = await graph(
    new HttpRequest({
      method: 'GET',
      url: `http://localhost:7071/api/graph/${kind}/${namespace}/${name}`,
      params: { kind, namespace, name },
      query,
      headers: auth ? { authorization: `Bearer ${token}` } : {},
    }),
    new InvocationContext({ functionName: 'graph' }),
  );
  return { status: response.status, headers: response.headers as Record<string, string>, text: bodyText(response) };
}

async function json(ref: string, query: Record<string, string> = {}): Promise<GraphResult> {
  const response = await get(ref, query);
  expect(response.status).toBe(200);
  return JSON.parse(response.text) as GraphResult;
}

const edge = (source: string, type: string, target: string) => ({ source, type, target });

describe('downstream', () => {
  test('depth 1: direct dependencies and consumed APIs', async () => {
    const result = await json('component:default/web', { depth: '1' });
    expect(result).toMatchObject({ root: 'Component:default/web', direction: 'downstream', depth: 1, relations: ['dependsOn', 'consumesApi', 'apiProvidedBy'] });
    expect(result.nodes).toEqual([
      { ref: 'Component:default/web', kind: 'Component', depth: 0 },
      { ref: 'API:default/orders-api', kind: 'API', depth: 1 },
      { ref: 'Component:default/api-gateway', kind: 'Component', depth: 1 },
    ]);
    expect(result.edges).toEqual([
      edge('Component:default/web', 'consumesApi', 'API:default/orders-api'),
      edge('Component:default/web', 'dependsOn', 'Component:default/api-gateway'),
    ]);
    expect(result).toMatchObject({ cycles: [], missing: [], truncated: false });
  });

  test('depth 3 crosses the API hop to the provider and its dependencies', async () => {
    const result = await json('component:default/web');
    expect(result.nodes.map((n) => [n.ref, n.depth])).toEqual([
      ['Component:default/web', 0],
      ['API:default/orders-api', 1],
      ['Component:default/api-gateway', 1],
      ['Component:default/orders', 2],
      ['Component:default/billing', 3],
      ['Resource:default/orders-db', 3],
    ]);
    expect(result.edges).toContainEqual(edge('API:default/orders-api', 'apiProvidedBy', 'Component:default/orders'));
    expect(result.edges).toHaveLength(5);
    expect(result.cycles).toEqual([]);
    // 1 root read + per level one edge query and one entity lookup.
    expect(result.stats.queries).toBe(7);
  });

  test('depth 6 finds the cycle and the dangling dependency', async () => {
    const result = await json('component:default/web', { depth: '6' });
    expect(result.cycles).toEqual([['Component:default/billing', 'Component:default/ledger', 'Component:default/billing']]);
    expect(result.missing).toEqual(['resource:default/missing-queue']);
    expect(result.nodes.find((n) => n.ref === 'resource:default/missing-queue')).toEqual({ ref: 'resource:default/missing-queue', kind: 'resource', depth: 5, missing: true });
    expect(result.edges).toContainEqual(edge('Component:default/ledger', 'dependsOn', 'Component:default/billing'));
  });

  test('a node cap truncates', async () => {
    const result = await json('component:default/web', { depth: '6', limit: '3' });
    expect(result.nodes).toHaveLength(3);
    expect(result.truncated).toBe(true);
    expect(result.edges.every((e) => result.nodes.some((n) => n.ref === e.target))).toBe(true);
  });
});

describe('upstream and both', () => {
  test('upstream from billing: who depends on it, through the API back to its consumer', async () => {
    const depth2 = await json('component:default/billing', { direction: 'upstream', depth: '2' });
    expect(depth2.relations).toEqual(['dependencyOf', 'providesApi', 'apiConsumedBy']);
    expect(depth2.nodes.map((n) => n.ref)).toEqual(['Component:default/billing', 'Component:default/ledger', 'Component:default/orders', 'API:default/orders-api']);
    expect(depth2.cycles).toEqual([['Component:default/billing', 'Component:default/ledger', 'Component:default/billing']]);
    const depth3 = await json('component:default/billing', { direction: 'upstream', depth: '3' });
    expect(depth3.nodes.at(-1)).toEqual({ ref: 'Component:default/web', kind: 'Component', depth: 3 });
    expect(depth3.edges).toContainEqual(edge('API:default/orders-api', 'apiConsumedBy', 'Component:default/web'));
  });

  test('both directions at depth 1', async () => {
    const result = await json('component:default/orders', { direction: 'both', depth: '1' });
    expect(result.nodes.map((n) => n.ref)).toEqual(['Component:default/orders', 'API:default/orders-api', 'Component:default/billing', 'Resource:default/orders-db']);
    expect(result.edges.map((e) => e.type).sort()).toEqual(['dependsOn', 'dependsOn', 'providesApi']);
  });

  test('an explicit relations filter', async () => {
    const result = await json('component:default/web', { relations: 'ownedBy', depth: '2' });
    expect(result.edges).toEqual([edge('Component:default/web', 'ownedBy', 'Group:default/shop')]);
  });
});

describe('formats', () => {
  test('Mermaid', async () => {
    const response = await get('component:default/web', { depth: '2', format: 'mermaid' });
    expect(response.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(response.text).toBe(
      [
        'graph LR',
        '  n0["Component:default/web"]',
        '  n1["API:default/orders-api"]',
        '  n2["Component:default/api-gateway"]',
        '  n3["Component:default/orders"]',
        '  n0 -->|consumesApi| n1',
        '  n0 -->|dependsOn| n2',
        '  n1 -->|apiProvidedBy| n3',
        '',
      ].join('\n'),
    );
  });

  test('Mermaid marks missing targets', async () => {
    const response = await get('component:default/ledger', { depth: '1', format: 'mermaid' });
    expect(response.text).toBe(
      [
        'graph LR',
        '  n0["Component:default/ledger"]',
        '  n1["Component:default/billing"]',
        '  n2["resource:default/missing-queue"]:::missing',
        '  n0 -->|dependsOn| n1',
        '  n0 -->|dependsOn| n2',
        '  classDef missing stroke-dasharray: 5 5',
        '',
      ].join('\n'),
    );
  });

  test('DOT', async () => {
    const response = await get('component:default/ledger', { depth: '2', format: 'dot' });
    expect(response.headers['content-type']).toBe('text/vnd.graphviz; charset=utf-8');
    expect(response.text).toBe(
      [
        'digraph "Component:default/ledger" {',
        '  rankdir=LR;',
        '  node [shape=box];',
        '  "Component:default/ledger";',
        '  "Component:default/billing";',
        '  "resource:default/missing-queue" [style=dashed];',
        '  "Component:default/ledger" -> "Component:default/billing" [label="dependsOn"];',
        '  "Component:default/ledger" -> "resource:default/missing-queue" [label="dependsOn"];',
        '  "Component:default/billing" -> "Component:default/ledger" [label="dependsOn"];',
        '}',
        '',
      ].join('\n'),
    );
  });
});

describe('errors', () => {
  test.each([
    [{ direction: 'sideways' }, /direction/],
    [{ depth: '0' }, /depth/],
    [{ depth: '11' }, /depth/],
    [{ depth: 'three' }, /depth/],
    [{ format: 'svg' }, /format/],
    [{ relations: 'depends on' }, /relations/],
    [{ limit: '0' }, /limit/],
  ])('400 for %j', async (query, message) => {
    const response = await get('component:default/web', query);
    expect(response.status).toBe(400);
    expect(JSON.parse(response.text)).toMatchObject({ type: 'urn:backstage-cosmos-sync:problem:invalid-request', detail: expect.stringMatching(message) });
  });

  test('404 for an unknown root and for a tombstoned one', async () => {
    expect((await get('component:default/nope')).status).toBe(404);
    expect((await get('component:default/retired')).status).toBe(404);
  });

  test('401 without a token; 400 for an invalid name', async () => {
    expect((await get('component:default/web', {}, false)).status).toBe(401);
    expect((await get('component:default/bad name')).status).toBe(400);
  });
});

test('cycle detection on its own: each cycle once, in a canonical rotation', () => {
  expect(findCycles(['a', 'b', 'c', 'd'], [['a', 'b'], ['b', 'c'], ['c', 'a'], ['c', 'd'], ['d', 'd']])).toEqual([
    ['a', 'b', 'c', 'a'],
    ['d', 'd'],
  ]);
  expect(findCycles(['x', 'y'], [['x', 'y']])).toEqual([]);
});
