/**
 * The HTTP and timer functions, invoked the way the Functions host invokes them: with `@azure/functions`
 * HttpRequest / InvocationContext objects, against the process runtime built from app settings that point
 * at the stand-ins (real Backstage, Cosmos emulator, local identity).
 */
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { adminReconcile } from '../../functions/adminReconcile';
import { getReconcileRun } from '../../functions/getReconcileRun';
import { getEntity } from '../../functions/getEntity';
import { health } from '../../functions/health';
import { reconcileCatalog } from '../../functions/reconcileCatalog';
import { loadConfig } from '../../shared/platform/config';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { startFixtureCatalog, type FixtureCatalog } from '../support/backstage';
import { eventually, provisionCosmos, startBroker, testEnvironment, userToken } from '../support/stack';
import { startSyncTrigger } from '../support/triggers';
import type { LocalServiceBus } from '../../local/servicebus/broker';
import type { SessionTrigger } from '../../local/functions-host/service-bus';
import { rawContainers } from '../support/containers';
import { bodyJson } from '../support/http';

jest.setTimeout(120_000);

let fixture: FixtureCatalog;
let broker: LocalServiceBus;
let worker: SessionTrigger;
const logs: string[] = [];

beforeAll(async () => {
  fixture = await startFixtureCatalog();
  broker = await startBroker();
  const env = testEnvironment({ BACKSTAGE_BASE_URL: fixture.baseUrl, ServiceBusConnection: broker.connectionString });
  Object.assign(process.env, env);
  (await provisionCosmos(loadConfig(env))).dispose();
  // The sync trigger, which also runs the maintenance that POST /api/admin/reconcile queues.
  worker = startSyncTrigger(broker.connectionString);
});

afterAll(async () => {
  await worker?.stop();
  await resetRuntime();
  await broker?.stop();
  await fixture?.stop();
});

function context(functionName: string): InvocationContext {
  return new InvocationContext({
    invocationId: `test-${Math.random().toString(16).slice(2)}`,
    functionName,
    logHandler: (level, ...args) => logs.push(`${level} ${args.join(' ')}`),
  });
}

function request(method: string, path: string, options: { token?: string; params?: Record<string, string>; headers?: Record<string, string>; body?: string } = {}) {
  return new HttpRequest({
    method,
    url: `http://localhost:7071/api/${path}`,
    headers: { ...(options.token && { authorization: `Bearer ${options.token}` }), ...options.headers },
    params: options.params ?? {},
    ...(options.body !== undefined && { body: { string: options.body } }),
  });
}

const entityParams = (kind: string, namespace: string, name: string) => ({ kind, namespace, name });
const body = (response: HttpResponseInit) => bodyJson<any>(response);

describe('GET /api/health', () => {
  test('answers 200 with the Cosmos check', async () => {
    const response = await health(request('GET', 'health'), context('health'));
    expect(response.status).toBe(200);
    expect(body(response)).toMatchObject({ status: 'ok', mode: 'local', checks: { cosmos: { status: 'ok' } } });
  });
});

describe('GET /api/entities/{kind}/{namespace}/{name}', () => {
  const get = (options: Parameters<typeof request>[2]) =>
    getEntity(request('GET', 'entities/component/default/payments-service', { params: entityParams('component', 'default', 'payments-service'), ...options }), context('getEntity'));

  test('401 problem without a token, with a Bearer challenge', async () => {
    const response = await get({});
    expect(response.status).toBe(401);
    expect((response.headers as Record<string, string>)['content-type']).toBe('application/problem+json');
    expect((response.headers as Record<string, string>)['www-authenticate']).toBe('Bearer');
    expect(body(response)).toMatchObject({ status: 401, type: 'urn:backstage-cosmos-sync:problem:unauthorized', title: 'Unauthorized' });
  });

  test('401 for a malformed Authorization header', async () => {
    const response = await get({ headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    expect(response.status).toBe(401);
    expect(body(response).detail).toMatch(/must be "Bearer <token>"/);
  });

  test('401 for an expired token, saying so', async () => {
    const response = await get({ token: await userToken({ roles: ['Catalog.Read'], lifetimeInSeconds: -300 }) });
    expect(response.status).toBe(401);
    expect(body(response).detail).toBe('The token has expired');
    expect((response.headers as Record<string, string>)['www-authenticate']).toMatch(/error="invalid_token"/);
  });

  test('401 for a token meant for another API', async () => {
    const response = await get({ token: await userToken({ roles: ['Catalog.Read'], audience: 'api://someone-else' }) });
    expect(response.status).toBe(401);
    expect(body(response).detail).toMatch(/audience is not one this API accepts/);
  });

  test('401 for a token signed by a key the issuer does not publish', async () => {
    const response = await get({ token: await userToken({ roles: ['Catalog.Read'], foreignKey: true }) });
    expect(response.status).toBe(401);
    expect(body(response).detail).toMatch(/key the issuer does not publish|signature is invalid/);
  });

  test('401 for a token from another issuer', async () => {
    const response = await get({ token: await userToken({ roles: ['Catalog.Read'], issuer: 'https://login.example.com/other/v2.0' }) });
    expect(response.status).toBe(401);
    expect(body(response).detail).toMatch(/issuer is not trusted/);
  });

  test('403 for a valid token without the read role', async () => {
    const response = await get({ token: await userToken({ roles: ['Something.Else'] }) });
    expect(response.status).toBe(403);
    expect(body(response)).toMatchObject({ type: 'urn:backstage-cosmos-sync:problem:forbidden', requiredRoles: ['Catalog.Read', 'Catalog.Admin'] });
  });

  test('400 for an invalid entity name', async () => {
    const response = await getEntity(
      request('GET', 'entities/component/default/bad%20name', { params: entityParams('component', 'default', 'bad name'), token: await userToken({ roles: ['Catalog.Read'] }) }),
      context('getEntity'),
    );
    expect(response.status).toBe(400);
    expect(body(response).type).toBe('urn:backstage-cosmos-sync:problem:invalid-entity-ref');
  });

  test('404 for an entity the mirror does not have', async () => {
    const response = await get({ token: await userToken({ roles: ['Catalog.Read'] }) });
    expect(response.status).toBe(404);
    expect(body(response)).toMatchObject({ status: 404, type: 'urn:backstage-cosmos-sync:problem:not-found' });
  });
});

describe('POST /api/admin/reconcile, then reads', () => {
  test('403 with only the read role; nothing is written', async () => {
    const response = await adminReconcile(request('POST', 'admin/reconcile', { token: await userToken({ roles: ['Catalog.Read'] }) }), context('adminReconcile'));
    expect(response.status).toBe(403);
    const read = await getEntity(
      request('GET', 'x', { params: entityParams('component', 'default', 'payments-service'), token: await userToken({ roles: ['Catalog.Read'] }) }),
      context('getEntity'),
    );
    expect(read.status).toBe(404);
  });

  test('400 for a body that is not JSON', async () => {
    const response = await adminReconcile(
      request('POST', 'admin/reconcile', { token: await userToken({ roles: ['Catalog.Admin'] }), body: 'force please' }),
      context('adminReconcile'),
    );
    expect(response.status).toBe(400);
    expect(body(response).detail).toMatch(/body must be a JSON object or empty/);
  });

  test('202 with the queued run and where to follow it; the worker runs it and the run answers its stats', async () => {
    const catalog = await fixture.entities();
    const token = await userToken({ roles: ['Catalog.Admin'] });
    const response = await adminReconcile(request('POST', 'admin/reconcile', { token }), context('adminReconcile'));
    expect(response.status).toBe(202);
    const queued = body(response);
    expect(queued).toMatchObject({ status: 'queued', force: false });
    const headers = response.headers as Record<string, string>;
    expect(headers.location).toBe(`http://localhost:7071/api/admin/reconcile/runs/${queued.id}`);
    expect(headers['retry-after']).toBe('5');

    const get = () => getReconcileRun(request('GET', `admin/reconcile/runs/${queued.id}`, { token, params: { id: queued.id } }), context('getReconcileRun'));
    const run = await eventually(async () => {
      const current = body(await get());
      return ['succeeded', 'refused', 'failed'].includes(current.status) && current;
    }, 'the run to end', 60_000);
    expect(run).toMatchObject({ id: queued.id, status: 'succeeded', startedAt: expect.any(String), finishedAt: expect.any(String) });
    expect(run.result).toMatchObject({ seen: catalog.length, created: catalog.length, failed: 0, deletionGuard: { tripped: false } });
    expect(run.progress).toBeUndefined();
    const final = await get();
    expect((final.headers as Record<string, string>)['retry-after']).toBeUndefined();
  });

  test('Prefer: wait answers 200 with the finished run when it ends in time', async () => {
    const catalog = await fixture.entities();
    const response = await adminReconcile(
      request('POST', 'admin/reconcile', { token: await userToken({ roles: ['Catalog.Admin'] }), headers: { prefer: 'respond-async, wait=60' } }),
      context('adminReconcile'),
    );
    expect(response.status).toBe(200);
    const run = body(response);
    expect((response.headers as Record<string, string>)['content-location']).toBe(`http://localhost:7071/api/admin/reconcile/runs/${run.id}`);
    expect(run).toMatchObject({ status: 'succeeded', result: { seen: catalog.length, unchanged: catalog.length, writes: 0 } });
  });

  test('a run id that is not one: 400; one that no run has: 404', async () => {
    const token = await userToken({ roles: ['Catalog.Admin'] });
    const bad = await getReconcileRun(request('GET', 'admin/reconcile/runs/x', { token, params: { id: 'not-a-run' } }), context('getReconcileRun'));
    expect({ status: bad.status, type: body(bad).type }).toEqual({ status: 400, type: 'urn:backstage-cosmos-sync:problem:invalid-request' });
    const id = '00000000-0000-4000-8000-000000000000';
    const missing = await getReconcileRun(request('GET', `admin/reconcile/runs/${id}`, { token, params: { id } }), context('getReconcileRun'));
    expect({ status: missing.status, type: body(missing).type }).toEqual({ status: 404, type: 'urn:backstage-cosmos-sync:problem:not-found' });
  });

  test('200 with the mirror document, its ETag, and 304 when it has not changed', async () => {
    const token = await userToken({ roles: ['Catalog.Read'] });
    const params = entityParams('Component', 'default', 'Payments-Service'); // refs are case-insensitive
    const response = await getEntity(request('GET', 'x', { params, token }), context('getEntity'));
    expect(response.status).toBe(200);
    const doc = body(response);
    expect(doc).toMatchObject({ id: 'component:default:payments-service', entityRef: 'Component:default/payments-service', kind: 'Component' });
    expect(doc.entity.spec.owner).toBe('payments-team');
    expect(Object.keys(doc).filter((k) => k.startsWith('_'))).toEqual([]);
    const etag = (response.headers as Record<string, string>).etag!;
    expect(etag).toMatch(/^".+"$/);

    const again = await getEntity(request('GET', 'x', { params, token, headers: { 'if-none-match': etag } }), context('getEntity'));
    expect(again.status).toBe(304);
  });

  test('the timer function reconciles (nothing to do now)', async () => {
    await reconcileCatalog({ isPastDue: false, scheduleStatus: undefined } as never, context('reconcileCatalog'));
    const line = logs.find((l) => l.includes('Scheduled reconcile finished'));
    expect(line).toBeDefined();
    expect(line).toMatch(/"created":0/);
    expect(line).toMatch(/"writes":0/);
  });

  test('the timer function also replays recorded projection failures, repairing the edges', async () => {
    const { projectionFailures, edgeStore, entityStore } = getRuntime();
    const id = 'component:default:payments-service';
    const doc = await entityStore.read(id);
    const relations = (doc as { entity: { relations: Array<{ type: string }> } }).entity.relations;
    expect(relations.length).toBeGreaterThan(0);
    // As after an outage: the projection failed, so the edges are missing and the failure is on record.
    for (const edge of await edgeStore.edgesOf(id)) await rawContainers(getRuntime()).edges.item(edge.id, id).delete();
    await projectionFailures.record({ id, entityRef: 'Component:default/payments-service', error: 'simulated outage' });
    await projectionFailures.record({ id: 'component:default:gone-meanwhile', error: 'simulated outage' });
    expect(await entityStore.read('component:default:gone-meanwhile')).toBeUndefined();

    logs.length = 0;
    await reconcileCatalog({ isPastDue: false, scheduleStatus: undefined } as never, context('reconcileCatalog'));
    expect(logs.find((l) => l.includes('Scheduled reconcile finished'))).toMatch(/"projectionsReplayed":2/);
    expect((await edgeStore.edgesOf(id)).map((e) => e.type).sort()).toEqual(relations.map((r) => r.type).sort());
    expect(await projectionFailures.list(10)).toEqual([]);
  });
});
