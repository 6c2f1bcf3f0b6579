/**
 * The event pipeline end to end: POST /api/catalog/events (HTTP function) → local Service Bus broker →
 * `syncEntity` trigger (run as the host runs a session trigger) → Cosmos mirror, with the real Backstage behind a
 * fault proxy. Then the dead-letter path and its replay through the admin functions.
 */
import { randomUUID } from 'node:crypto';
import { HttpRequest, InvocationContext } from '@azure/functions';
import { ServiceBusClient } from '@azure/service-bus';
import { catalogEvents } from '../../functions/catalogEvents';
import { listDeadLetters } from '../../functions/listDeadLetters';
import { replayDeadLetters } from '../../functions/replayDeadLetters';
import '../../functions/syncEntity';
import { startFaultProxy, type FaultProxy } from '../../local/faults/http-proxy';
import type { SessionTrigger } from '../../local/functions-host/service-bus';
import type { LocalServiceBus } from '../../local/servicebus/broker';
import { loadConfig } from '../../shared/platform/config';
import type { LiveEntityDocument } from '../../shared/model/documents';
import type { InMemoryMetrics } from '../../shared/platform/metrics';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { startFixtureCatalog, type FixtureCatalog } from '../support/backstage';
import { eventually, provisionCosmos, startBroker, testEnvironment, userToken } from '../support/stack';
import { startSyncTrigger } from '../support/triggers';
import { bodyJson } from '../support/http';
import { rawContainers } from '../support/containers';

jest.setTimeout(120_000);

const QUEUE = 'entity-sync';
const HARNESS = { token: 'test-harness-static-token' };

let fixture: FixtureCatalog;
let proxy: FaultProxy;
let broker: LocalServiceBus;
let trigger: SessionTrigger;
let triggerClient: ServiceBusClient;
const functionLogs: string[] = [];

beforeAll(async () => {
  fixture = await startFixtureCatalog();
  proxy = await startFaultProxy(fixture.baseUrl);
  broker = await startBroker();
  const env = testEnvironment({
    BACKSTAGE_BASE_URL: proxy.url,
    BACKSTAGE_MAX_RETRIES: '0', // let failures reach the queue's retry policy at once
    ServiceBusConnection: broker.connectionString,
    QUEUE_MAX_ATTEMPTS: '3',
    QUEUE_RETRY_BASE_DELAY_MS: '200',
    QUEUE_RETRY_MAX_DELAY_MS: '400',
    LOG_LEVEL: 'error',
  });
  Object.assign(process.env, env);
  (await provisionCosmos(loadConfig(env))).dispose();
  triggerClient = new ServiceBusClient(broker.connectionString);
  trigger = startSyncTrigger(broker.connectionString, {
    maxConcurrentSessions: 4,
    sessionIdleTimeoutInMs: 300,
    logHandler: (level, ...args) => functionLogs.push(`${level} ${args.join(' ')}`),
  });
});

afterAll(async () => {
  await trigger?.stop();
  await triggerClient?.close();
  await resetRuntime();
  await broker?.stop();
  await proxy?.close();
  await fixture?.stop();
});

function event(ref: string, overrides: Record<string, unknown> = {}) {
  return {
    specversion: '1.0',
    id: randomUUID(),
    source: fixture.baseUrl,
    type: 'io.backstage.catalog.entity.upserted',
    subject: ref,
    time: new Date().toISOString(),
    data: { entityRef: ref },
    ...overrides,
  };
}

async function post(events: unknown[]) {
  const response = await catalogEvents(
    new HttpRequest({
      method: 'POST',
      url: 'http://localhost:7071/api/catalog/events',
      headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${await userToken({ roles: ['Events.Send'] })}` },
      body: { string: JSON.stringify(events) },
    }),
    new InvocationContext({ functionName: 'catalogEvents' }),
  );
  expect(response.status).toBe(202);
  return bodyJson<{ accepted: number; enqueued: number }>(response);
}

async function admin(fn: typeof listDeadLetters, method: string, path: string, body?: unknown) {
  const url = `http://localhost:7071/api/${path}`;
  const response = await fn(
    new HttpRequest({
      method,
      url,
      query: Object.fromEntries(new URL(url).searchParams),
      headers: { authorization: `Bearer ${await userToken({ roles: ['Catalog.Admin'] })}`, 'content-type': 'application/json' },
      ...(body !== undefined && { body: { string: JSON.stringify(body) } }),
    }),
    new InvocationContext({ functionName: path }),
  );
  return { status: response.status, body: bodyJson<any>(response) };
}

/** Waits until the queue holds nothing (active, scheduled or locked) and no invocation runs. */
async function settled(): Promise<void> {
  await eventually(async () => {
    const stats = broker.stats(QUEUE);
    return stats.active === 0 && stats.scheduled === 0 && stats.locked === 0 && trigger.inFlight === 0;
  }, 'the queue to drain', 60_000);
}

const doc = (id: string) => getRuntime().entityStore.read(id) as Promise<(LiveEntityDocument & { deleted?: boolean }) | undefined>;

function writes(): number {
  const { measurements } = (getRuntime().metrics as InMemoryMetrics).snapshot();
  return Object.entries(measurements)
    .filter(([key]) => /^cosmos\.request_charge\{container=entities,operation=(create|replace)\}$/.test(key))
    .reduce((n, [, s]) => n + s.count, 0);
}

test('a burst of 200 events for 20 entities syncs each entity once: at most 20 writes', async () => {
  const live = (await fixture.entities()).map((e) => `${e.kind}:${e.metadata.namespace}/${e.metadata.name}`.toLowerCase());
  const unknown = ['component:default/ghost-1', 'component:default/ghost-2', 'api:default/ghost-3', 'resource:default/ghost-4'];
  const refs = [...live, ...unknown];
  expect(refs).toHaveLength(20);
  const before = writes();
  const events = Array.from({ length: 200 }, (_, i) => event(refs[i % refs.length]!));
  const accepted = [];
  // Ten events to a request (under INTAKE_BATCH_SYNC_MIN_EVENTS): one message per entity, each in its entity's session.
  for (let i = 0; i < events.length; i += 10) accepted.push(await post(events.slice(i, i + 10)));
  expect(accepted.reduce((n, a) => n + a.accepted, 0)).toBe(200);
  await settled();

  expect(writes() - before).toBe(live.length);
  expect(writes() - before).toBeLessThanOrEqual(20);
  for (const ref of live) {
    const mirrored = await doc(ref.replace('/', ':'));
    expect(mirrored?.entityRef.toLowerCase()).toBe(ref);
    expect(mirrored?.deleted).toBeUndefined();
  }
  for (const ref of unknown) expect(await doc(ref.replace('/', ':'))).toBeUndefined();
  expect(broker.stats(QUEUE).deadLettered).toBe(0);
});

test('a burst in one request is synced as one batch: one by-refs read for all its entities, and a failed read retries the batch', async () => {
  const live = (await fixture.entities()).map((e) => `${e.kind}:${e.metadata.namespace}/${e.metadata.name}`.toLowerCase());
  const unknown = ['component:default/ghost-1', 'component:default/ghost-2', 'api:default/ghost-3', 'resource:default/ghost-4'];
  expect(live.length + unknown.length).toBe(20); // INTAKE_BATCH_SYNC_MIN_EVENTS's default: a batch
  // Every live entity changed, as far as the mirror knows.
  const entities = rawContainers(getRuntime()).entities;
  for (const ref of live) {
    const id = ref.replace('/', ':');
    const { resource } = await entities.item(id, id).read<LiveEntityDocument>();
    await entities.item(id, id).replace({ ...resource!, sourceEtag: `stale-${randomUUID()}` });
  }
  const before = { enqueued: broker.stats(QUEUE).enqueued, requests: proxy.requests, writes: writes() };
  proxy.failNext(1, { status: 503, headers: { 'retry-after': '0' } }, /entities\/by-refs/);
  const accepted = await post([...live, ...unknown].map((ref) => event(ref)));
  expect(accepted).toEqual({ accepted: 20, enqueued: 20, outOfScope: 0 });
  await settled();

  // One batch message, and its retry after the failed read (BACKSTAGE_MAX_RETRIES is 0 here).
  expect(broker.stats(QUEUE).enqueued - before.enqueued).toBe(2);
  // The failed by-refs, the one that answered, and a by-name for each ghost (the single-entity sync confirms it absent).
  expect(proxy.requests - before.requests).toBe(2 + unknown.length);
  expect(writes() - before.writes).toBe(live.length);
  for (const ref of live) expect((await doc(ref.replace('/', ':')))?.sourceEtag).not.toMatch(/^stale-/);
  for (const ref of unknown) expect(await doc(ref.replace('/', ':'))).toBeUndefined();
  expect(broker.stats(QUEUE).deadLettered).toBe(0);
});

test('an edit in Backstage reaches the mirror through an event; an event whose etag the mirror has costs no Backstage read', async () => {
  const ref = 'component:default/ledger-service';
  await fixture.editFile(
    'catalog-info.yaml',
    (t) => t.replace('description: Double-entry ledger', 'description: Ledger v2'),
    async () => (await fixture.admin.getEntityByRef(ref, HARNESS))?.metadata.description === 'Ledger v2',
  );
  const current = await fixture.admin.getEntityByRef(ref, HARNESS);
  await post([event(ref, { data: { entityRef: ref, etag: current!.metadata.etag } })]);
  await settled();
  const updated = await doc('component:default:ledger-service');
  expect(updated!.entity.metadata.description).toBe('Ledger v2');
  expect(updated!.sourceEtag).toBe(current!.metadata.etag);

  const requests = proxy.requests;
  await post([event(ref, { data: { entityRef: ref, etag: current!.metadata.etag } })]);
  await settled();
  expect(proxy.requests).toBe(requests);
});

test('a deleted event tombstones the entity once Backstage no longer has it', async () => {
  await fixture.removeLocation('removable');
  const ref = 'component:default/legacy-batch';
  await post([event(ref, { type: 'io.backstage.catalog.entity.deleted' })]);
  await settled();
  expect(await doc('component:default:legacy-batch')).toMatchObject({ deleted: true });
});

test('a transient Backstage failure ends in success after a rescheduled retry', async () => {
  const ref = 'component:default/checkout-web';
  await fixture.editFile(
    'catalog-info.yaml',
    (t) => t.replace('The checkout front end', 'Checkout, retried'),
    async () => (await fixture.admin.getEntityByRef(ref, HARNESS))?.metadata.description === 'Checkout, retried',
  );
  const metrics = getRuntime().metrics as InMemoryMetrics;
  const retriesBefore = metrics.counter('sync.retries');
  proxy.failNext(1, { status: 503, headers: { 'retry-after': '0' } }, /entities\/by-name\/component\/default\/checkout-web/);
  await post([event(ref)]);
  await settled();
  expect(metrics.counter('sync.retries') - retriesBefore).toBe(1);
  expect((await doc('component:default:checkout-web'))!.entity.metadata.description).toBe('Checkout, retried');
  expect(broker.stats(QUEUE).deadLettered).toBe(0);
});

test('a lock lost mid-retry does not fork the retry chain: the redelivered message schedules the same retry, which duplicate detection drops', async () => {
  const before = broker.stats(QUEUE);
  const metrics = getRuntime().metrics as InMemoryMetrics;
  const retriesBefore = metrics.counter('sync.retries');
  const requestsBefore = proxy.requests;
  // Both deliveries of the event fail, slowly enough that the lock can be lost while the first is in flight.
  proxy.failNext(2, { status: 503, headers: { 'retry-after': '0' }, delayInMs: 1_500 }, /entities\/by-name\/component\/default\/payments-service/);
  await post([event('component:default/payments-service')]);
  await eventually(async () => proxy.requests > requestsBefore, 'the first attempt reaches Backstage', 10_000);
  broker.expireLocks(QUEUE);
  await settled();
  const after = broker.stats(QUEUE);
  // The event, and exactly one retry: the second delivery's retry had the same id and was dropped.
  expect(after.enqueued - before.enqueued).toBe(2);
  expect(after.duplicatesDropped - before.duplicatesDropped).toBe(1);
  expect(after.deadLettered).toBe(before.deadLettered);
  expect(metrics.counter('sync.retries') - retriesBefore).toBe(1);
});

test('retries exhausted → dead-letter queue with the reason; replay brings the message back once Backstage recovers', async () => {
  const ref = 'component:default/auth-service';
  await fixture.editFile(
    'catalog-info.yaml',
    (t) => t.replace('  name: auth-service\nspec:', '  name: auth-service\n  description: Auth, replayed\nspec:'),
    async () => (await fixture.admin.getEntityByRef(ref, HARNESS))?.metadata.description === 'Auth, replayed',
  );
  proxy.failAll({ status: 502 }, /entities\/by-name\/component\/default\/auth-service/);
  await post([event(ref)]);
  await settled();
  expect(broker.stats(QUEUE).deadLettered).toBe(1);

  const listed = await admin(listDeadLetters, 'GET', 'admin/deadletters');
  expect(listed.status).toBe(200);
  expect(listed.body.items).toEqual([
    expect.objectContaining({ entityRef: ref, reason: 'RetriesExhausted', attempt: 3, description: expect.stringMatching(/Gave up after 3 attempts; last error: .*502/) }),
  ]);

  proxy.heal();
  const replay = await admin(replayDeadLetters, 'POST', 'admin/deadletters/replay', { sequenceNumbers: [listed.body.items[0].sequenceNumber] });
  expect(replay.status).toBe(200);
  expect(replay.body.replayed).toEqual([expect.objectContaining({ entityRef: ref })]);
  await settled();
  expect(broker.stats(QUEUE).deadLettered).toBe(0);
  expect((await doc('component:default:auth-service'))!.entity.metadata.description).toBe('Auth, replayed');
});

test('a message that breaks the contract is dead-lettered at once; replay refuses it', async () => {
  const producer = triggerClient.createSender(QUEUE);
  await producer.sendMessages({ body: { entityRef: 'not a ref', type: 'upserted' }, sessionId: 'bad', messageId: 'bad-1' });
  await producer.close();
  await settled();
  const listed = await admin(listDeadLetters, 'GET', 'admin/deadletters?max=10');
  const entry = listed.body.items.find((i: { messageId: string }) => i.messageId === 'bad-1');
  expect(entry).toMatchObject({ reason: 'InvalidMessage', description: expect.stringMatching(/does not follow the sync contract/) });
  expect(functionLogs.some((l) => l.includes('Message dead-lettered') && l.includes('InvalidMessage'))).toBe(true);

  const replay = await admin(replayDeadLetters, 'POST', 'admin/deadletters/replay', {});
  expect(replay.body).toEqual({ replayed: [], skipped: [{ sequenceNumber: entry.sequenceNumber, why: expect.stringMatching(/does not follow/) }] });
  expect(broker.stats(QUEUE).deadLettered).toBe(1);
});

test('admin endpoints require the admin role and validate input', async () => {
  const reader = await userToken({ roles: ['Catalog.Read'] });
  const forbidden = await listDeadLetters(
    new HttpRequest({ method: 'GET', url: 'http://localhost:7071/api/admin/deadletters', headers: { authorization: `Bearer ${reader}` } }),
    new InvocationContext({ functionName: 'listDeadLetters' }),
  );
  expect(forbidden.status).toBe(403);
  expect((await admin(listDeadLetters, 'GET', 'admin/deadletters?max=0')).status).toBe(400);
  expect((await admin(replayDeadLetters, 'POST', 'admin/deadletters/replay', { sequenceNumbers: [1] })).status).toBe(400);
});
