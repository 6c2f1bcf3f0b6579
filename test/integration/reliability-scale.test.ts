/**
 * Reliability at scale, on a real Backstage holding a generated catalog of 1,000 entities (RELIABILITY_ENTITIES),
 * loaded in one mutation of the stand-in's entity provider and then left alone (an hour's processing interval):
 *
 * - token lifetime: a reconcile that outlives several short-lived Backstage tokens gets at most one 401 per token
 *   expiry, without flooding the token endpoint (tokens are refreshed at half their life; the proxy's 1.5 s delay can
 *   still carry one past its expiry, and the reader then refreshes once and retries);
 * - load: a burst of 5,000 events (RELIABILITY_EVENTS) for those entities through the HTTP intake → the broker →
 *   the session trigger → Cosmos ends with the mirror equal to the catalog and no dead letters, in bounded memory.
 *
 * Figures are printed (throughput, peak RSS); docs/reliability.md explains them.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HttpRequest, InvocationContext } from '@azure/functions';
import type { Entity } from '@backstage/catalog-model';
import { catalogEvents } from '../../functions/catalogEvents';
import { startFaultProxy, type FaultProxy } from '../../local/faults/http-proxy';
import { timeSpanToMs, type SessionTrigger } from '../../local/functions-host/service-bus';
import type { LocalServiceBus } from '../../local/servicebus/broker';
import { loadConfig } from '../../shared/platform/config';
import type { EntityDocument, LiveEntityDocument } from '../../shared/model/documents';
import { toDocumentId } from '../../shared/model/refs';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { startGeneratedCatalog, type GeneratedCatalog } from '../support/backstage';
import { generateCatalog, seededRandom } from '../../local/catalog-generator';
import { eventually, identityAdmin, provisionCosmos, startBroker, testEnvironment, uniqueName, userToken } from '../support/stack';
import { liveHeapBytes, sampleLiveHeap } from '../support/memory';
import { startSyncTrigger } from '../support/triggers';
import { rawContainers } from '../support/containers';

jest.setTimeout(600_000);

// The defaults keep `npm test` under ten minutes on two cores; docs/reliability.md gives the figures of larger runs.
const ENTITIES = Number(process.env.RELIABILITY_ENTITIES ?? 1_000);
const EVENTS = Number(process.env.RELIABILITY_EVENTS ?? 5_000);
const TOKEN_LIFETIME_SECONDS = 3;
const hostJson = JSON.parse(readFileSync(join(__dirname, '..', '..', 'host.json'), 'utf8')) as {
  extensions: { serviceBus: { maxConcurrentSessions: number; sessionIdleTimeout: string } };
};
const QUEUE = 'entity-sync';
// The burst's live-heap bounds at the default size, about three times what it measures (≈ 40 MB while it runs, ≈ 20 MB
// after — the documents the in-band emulator now stores). A message or a document kept per event would exceed them.
const LIVE_HEAP_PEAK_GROWTH_IN_MB = 128;
const LIVE_HEAP_RETAINED_GROWTH_IN_MB = 64;
const mb = (bytes: number): number => Math.round(bytes / 2 ** 20);

let catalog: GeneratedCatalog;
let proxy: FaultProxy;
let broker: LocalServiceBus;
let clientId: string;
const figures: string[] = [];

beforeAll(async () => {
  catalog = await startGeneratedCatalog(generateCatalog(ENTITIES, 42));
  proxy = await startFaultProxy(catalog.baseUrl);
  broker = await startBroker();
  clientId = uniqueName('mi-scale');
  const env = testEnvironment({
    AZURE_CLIENT_ID: clientId,
    BACKSTAGE_BASE_URL: proxy.url,
    ServiceBusConnection: broker.connectionString,
    INTAKE_MAX_BATCH_EVENTS: '500',
    LOG_LEVEL: 'error',
  });
  Object.assign(process.env, env);
  (await provisionCosmos(loadConfig(env))).dispose();
});

afterAll(async () => {
  await resetRuntime();
  await broker?.stop();
  await proxy?.close();
  await catalog?.stop();
  if (figures.length > 0) process.stdout.write(`\nreliability figures:\n${figures.map((f) => `  ${f}`).join('\n')}\n`);
});

async function mirror(): Promise<Map<string, EntityDocument>> {
  const { resources } = await rawContainers(getRuntime()).entities.items.query<EntityDocument>('SELECT * FROM c').fetchAll();
  return new Map(resources.map((d) => [d.id, d]));
}

/** Every catalog entity is mirrored with exactly its content; nothing else is live. */
async function expectMirrorEqualsCatalog(): Promise<void> {
  const entities = await catalog.entities();
  const docs = await mirror();
  const differing: string[] = [];
  for (const entity of entities) {
    const id = toDocumentId({ kind: entity.kind, namespace: entity.metadata.namespace ?? 'default', name: entity.metadata.name });
    const doc = docs.get(id) as LiveEntityDocument | undefined;
    if (!doc || doc.deleted || JSON.stringify(doc.entity) !== JSON.stringify(entity)) differing.push(id);
    docs.delete(id);
  }
  const extraLive = [...docs.values()].filter((d) => !d.deleted).map((d) => d.id);
  expect({ differing: differing.slice(0, 10), differingCount: differing.length, extraLive }).toEqual({ differing: [], differingCount: 0, extraLive: [] });
}

test(`a reconcile of ${ENTITIES} entities that outlives several ${TOKEN_LIFETIME_SECONDS}-second tokens: at most one 401 per expiry`, async () => {
  // Cosmos DB's token first, with the usual lifetime: what is counted below is the Backstage token's refresh (the
  // Cosmos SDK asks again for any token that expires within minutes, which a 3-second token always does).
  await getRuntime().entityStore.ping();
  await identityAdmin().setClientBehaviour(clientId, { tokenLifetimeInSeconds: TOKEN_LIFETIME_SECONDS });
  // Slow Backstage down so the run spans several token lifetimes.
  proxy.failAll({ delayInMs: 1_500 });
  const tokensBefore = await identityAdmin().tokenRequests(clientId);
  const before = proxy.statuses();
  const started = Date.now();
  const result = await getRuntime().reconciler.reconcile();
  const seconds = (Date.now() - started) / 1000;
  proxy.heal();

  const unauthorized = (proxy.statuses()[401] ?? 0) - (before[401] ?? 0);
  const tokens = (await identityAdmin().tokenRequests(clientId)) - tokensBefore;
  const expiries = Math.floor(seconds / TOKEN_LIFETIME_SECONDS);
  figures.push(`token lifetime: reconcile of ${result.seen} in ${seconds.toFixed(1)} s with ${TOKEN_LIFETIME_SECONDS} s tokens: ${tokens} tokens fetched, ${unauthorized} × 401, ${result.backstageRequests} Backstage requests`);

  // The catalog holds exactly the generated entities (loaded by the stand-in's provider: no Location entity).
  // (The failures, if any, are in the message: what went wrong matters more than the count.)
  expect({ failed: result.failed, created: result.created, failures: result.failures.slice(0, 3) }).toEqual({ failed: 0, created: ENTITIES, failures: [] });
  expect(expiries).toBeGreaterThanOrEqual(2); // the run did outlive several tokens
  expect(unauthorized).toBeLessThanOrEqual(expiries);
  // Refreshed ahead of expiry, not per request: about two tokens per lifetime, far fewer than requests.
  expect(tokens).toBeLessThanOrEqual(Math.ceil(seconds / (TOKEN_LIFETIME_SECONDS / 2)) + 2);
  expect(tokens).toBeLessThan(result.backstageRequests);
  await expectMirrorEqualsCatalog();
});

test(`a burst of ${EVENTS} events for ${ENTITIES} entities: the mirror equals the catalog, no dead letters, bounded memory`, async () => {
  await identityAdmin().setClientBehaviour(clientId, {});
  // Start from an empty mirror so every entity must come through the queue.
  const store = rawContainers(getRuntime()).entities;
  const { resources: ids } = await store.items.query<{ id: string }>('SELECT c.id FROM c').fetchAll();
  for (const { id } of ids) await store.item(id, id).delete();

  const entities: Entity[] = await catalog.entities();
  const random = seededRandom(7);
  const refs = entities.map((e) => ({ ref: `${e.kind}:${e.metadata.namespace ?? 'default'}/${e.metadata.name}`, uid: e.metadata.uid, etag: e.metadata.etag }));
  // Every entity at least once, the rest at random; shuffled so the same entity's events spread over many batches.
  const events = Array.from({ length: EVENTS }, (_, i) => refs[i < refs.length ? i : Math.floor(random() * refs.length)]!);
  for (let i = events.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [events[i], events[j]] = [events[j]!, events[i]!];
  }

  const trigger: SessionTrigger = startSyncTrigger(broker.connectionString, {
    // As deployed: host.json's session concurrency and idle timeout.
    maxConcurrentSessions: hostJson.extensions.serviceBus.maxConcurrentSessions,
    sessionIdleTimeoutInMs: timeSpanToMs(hostJson.extensions.serviceBus.sessionIdleTimeout)!,
    logHandler: () => undefined,
  });
  // Memory is bounded on the live heap (after a full collection), sampled through the burst: what the process has to
  // keep, whatever V8's collection timing. The RSS peak is printed too, but not bounded: with this machine's heap limit
  // V8 keeps garbage as long as it likes, and the same run's peak differs by hundreds of megabytes.
  const baseLive = liveHeapBytes();
  const live = sampleLiveHeap(1_000);
  let peakRss = process.memoryUsage().rss;
  const baseRss = peakRss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 100);
  const token = await userToken({ roles: ['Events.Send'] });
  const enqueuedBefore = broker.stats(QUEUE).enqueued;
  let entitiesQueued = 0;
  const started = Date.now();
  try {
    for (let offset = 0; offset < events.length; offset += 500) {
      const batch = events.slice(offset, offset + 500).map((e) => ({
        specversion: '1.0',
        id: randomUUID(),
        source: catalog.baseUrl,
        type: 'io.backstage.catalog.entity.upserted',
        subject: e.ref,
        time: new Date().toISOString(),
        data: { entityRef: e.ref, uid: e.uid, etag: e.etag },
      }));
      const response = await catalogEvents(
        new HttpRequest({
          method: 'POST',
          url: 'http://localhost:7071/api/catalog/events',
          headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${token}` },
          body: { string: JSON.stringify(batch) },
        }),
        new InvocationContext({ functionName: 'catalogEvents', logHandler: () => undefined }),
      );
      expect(response.status).toBe(202);
      entitiesQueued += (JSON.parse(response.body as string) as { enqueued: number }).enqueued;
    }
    const intakeSeconds = (Date.now() - started) / 1000;
    await eventually(async () => {
      const stats = broker.stats(QUEUE);
      return stats.active + stats.scheduled + stats.locked === 0 && trigger.inFlight === 0;
    }, 'the queue to drain', 480_000);
    const seconds = (Date.now() - started) / 1000;
    live.stop();
    const retained = liveHeapBytes();
    const stats = broker.stats(QUEUE);
    const messages = stats.enqueued - enqueuedBefore;
    figures.push(
      `load: ${EVENTS} events → ${entitiesQueued} entity syncs (coalesced per request and entity) in ${messages} messages (batches of up to 100 entities) for ${ENTITIES} entities; intake ${(EVENTS / intakeSeconds).toFixed(0)} events/s; ` +
        `drained in ${seconds.toFixed(1)} s (${(EVENTS / seconds).toFixed(0)} events/s, ${(entitiesQueued / seconds).toFixed(0)} entity syncs/s); ` +
        `live heap ${mb(baseLive)} → peak ${mb(live.peakBytes)} MB (${live.samples} samples) → ${mb(retained)} MB after the drain; ` +
        `RSS ${mb(baseRss)} → peak ${mb(peakRss)} MB (test process: app, broker, and the Cosmos emulator when Jest runs in band; Backstage is a child process)`,
    );
    expect(stats.deadLettered).toBe(0);
    // Every entity queued at least once; a request of 500 events is 5 batch messages, not 500.
    expect(entitiesQueued).toBeGreaterThanOrEqual(ENTITIES);
    expect(messages).toBeLessThan(entitiesQueued);
    await expectMirrorEqualsCatalog();
    // Bounded: what the burst makes the process keep does not grow with the number of events — neither while it runs
    // (in-flight messages are bounded by the session concurrency) nor after it (nothing is left behind per event).
    expect(mb(live.peakBytes - baseLive)).toBeLessThan(LIVE_HEAP_PEAK_GROWTH_IN_MB);
    expect(mb(retained - baseLive)).toBeLessThan(LIVE_HEAP_RETAINED_GROWTH_IN_MB);
  } finally {
    live.stop();
    clearInterval(sampler);
    await trigger.stop();
  }
});
