/**
 * Stopping a worker mid-batch: whether it stops gracefully (the host scaling in) or loses its connection with
 * invocations in flight (a crash), no message is lost — what was not completed is delivered again, to the same or
 * another worker — and no document is left half-written.
 */
import { randomUUID } from 'node:crypto';
import { HttpRequest, InvocationContext } from '@azure/functions';
import { catalogEvents } from '../../functions/catalogEvents';
import { startFaultProxy, type FaultProxy } from '../../local/faults/http-proxy';
import type { SessionTrigger } from '../../local/functions-host/service-bus';
import type { LocalServiceBus } from '../../local/servicebus/broker';
import { loadConfig } from '../../shared/platform/config';
import { computeSyncHash, type EntityDocument, type LiveEntityDocument } from '../../shared/model/documents';
import { toDocumentId } from '../../shared/model/refs';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { startFixtureCatalog, type FixtureCatalog } from '../support/backstage';
import { eventually, provisionCosmos, startBroker, testEnvironment, userToken } from '../support/stack';
import { startSyncTrigger } from '../support/triggers';
import { rawContainers } from '../support/containers';

jest.setTimeout(120_000);

const QUEUE = 'entity-sync';
let fixture: FixtureCatalog;
let proxy: FaultProxy;
let broker: LocalServiceBus;
const workers: SessionTrigger[] = [];

beforeAll(async () => {
  fixture = await startFixtureCatalog();
  proxy = await startFaultProxy(fixture.baseUrl);
  broker = await startBroker();
  // A short Backstage timeout: the crash test holds syncs in hung Backstage reads, which end when they time out.
  // One message per entity, whatever the request's size: what is under test is how sessions drain and come back.
  const env = testEnvironment({ BACKSTAGE_BASE_URL: proxy.url, BACKSTAGE_REQUEST_TIMEOUT_MS: '3000', ServiceBusConnection: broker.connectionString, INTAKE_BATCH_SYNC_MIN_EVENTS: '0', LOG_LEVEL: 'error' });
  Object.assign(process.env, env);
  (await provisionCosmos(loadConfig(env))).dispose();
});

afterAll(async () => {
  for (const w of workers) await w.stop();
  await resetRuntime();
  await broker?.stop();
  await proxy?.close();
  await fixture?.stop();
});

function worker(): SessionTrigger {
  const trigger = startSyncTrigger(broker.connectionString, { maxConcurrentSessions: 4, logHandler: () => undefined });
  workers.push(trigger);
  return trigger;
}

/** One event per entity, without etags, so every sync reads Backstage (slowed down below). */
async function postEventsForEveryEntity(): Promise<number> {
  const entities = await fixture.entities();
  const events = entities.map((e) => {
    const ref = `${e.kind}:${e.metadata.namespace ?? 'default'}/${e.metadata.name}`;
    return { specversion: '1.0', id: randomUUID(), source: fixture.baseUrl, type: 'io.backstage.catalog.entity.upserted', subject: ref, time: new Date().toISOString(), data: { entityRef: ref } };
  });
  const response = await catalogEvents(
    new HttpRequest({
      method: 'POST',
      url: 'http://localhost:7071/api/catalog/events',
      headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${await userToken({ roles: ['Events.Send'] })}` },
      body: { string: JSON.stringify(events) },
    }),
    new InvocationContext({ functionName: 'catalogEvents', logHandler: () => undefined }),
  );
  expect(response.status).toBe(202);
  return events.length;
}

async function emptyMirror(): Promise<void> {
  const container = rawContainers(getRuntime()).entities;
  const { resources } = await container.items.query<{ id: string }>('SELECT c.id FROM c').fetchAll();
  for (const { id } of resources) await container.item(id, id).delete();
}

async function drained(trigger: SessionTrigger): Promise<void> {
  await eventually(async () => {
    const s = broker.stats(QUEUE);
    return s.active + s.scheduled + s.locked === 0 && trigger.inFlight === 0;
  }, 'the queue to drain', 60_000);
}

/** Every catalog entity is mirrored whole: its exact content, and a sync hash that matches the document. */
async function expectWholeMirror(): Promise<void> {
  const entities = await fixture.entities();
  const { resources } = await rawContainers(getRuntime()).entities.items.query<EntityDocument>('SELECT * FROM c').fetchAll();
  const docs = new Map(resources.map((d) => [d.id, d]));
  for (const entity of entities) {
    const doc = docs.get(toDocumentId({ kind: entity.kind, namespace: entity.metadata.namespace ?? 'default', name: entity.metadata.name })) as LiveEntityDocument | undefined;
    expect(doc?.entity).toEqual(entity);
    expect(computeSyncHash(doc as unknown as Record<string, unknown>)).toBe(doc!.syncHash);
  }
  expect(resources).toHaveLength(entities.length);
}

test('a worker stopped gracefully mid-batch finishes what it holds; another worker takes the rest; nothing lost', async () => {
  await emptyMirror();
  proxy.failAll({ delayInMs: 300 }, /\/entities\/by-(name|refs)/);
  const enqueuedBefore = broker.stats(QUEUE).enqueued;
  const total = await postEventsForEveryEntity();
  const first = worker();
  await eventually(async () => first.invocations >= 2 && first.inFlight > 0, 'the first worker to be mid-batch', 30_000);
  const inFlightAtStop = first.inFlight;
  await first.stop();
  const doneByFirst = first.invocations;
  expect(inFlightAtStop).toBeGreaterThan(0);
  expect(first.inFlight).toBe(0);
  // Stopped before the end: the rest is still queued, none of it locked by the stopped worker.
  const left = broker.stats(QUEUE);
  expect(left.locked).toBe(0);
  expect(doneByFirst).toBeLessThan(total);
  expect(left.active).toBe(total - doneByFirst);

  const second = worker();
  await drained(second);
  await second.stop();
  proxy.heal();
  expect(second.invocations).toBe(total - doneByFirst);
  expect(broker.stats(QUEUE)).toMatchObject({ deadLettered: 0, enqueued: enqueuedBefore + total });
  await expectWholeMirror();
});

test('a worker that loses its connection with invocations in flight: their messages come back and are synced again', async () => {
  await emptyMirror();
  // Every sync is held in its Backstage read, so no message in flight can be settled before the crash.
  proxy.failAll({ hang: true }, /\/entities\/by-(name|refs)/);
  const total = await postEventsForEveryEntity();
  const crashing = worker();
  await eventually(async () => crashing.inFlight >= 2, 'invocations in flight', 30_000);
  const heldAtCrash = crashing.inFlight;
  // The broker drops every connection: the in-flight invocations cannot settle; their locks are released.
  broker.dropConnections();
  proxy.heal();
  await drained(crashing);
  // Each message held at the crash was delivered again (processed at least twice); none lost, none dead-lettered.
  expect(crashing.invocations).toBeGreaterThanOrEqual(total + heldAtCrash);
  expect(broker.stats(QUEUE).deadLettered).toBe(0);
  await expectWholeMirror();
});
