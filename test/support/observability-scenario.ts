/**
 * Run in a child process by test/integration/observability.test.ts (NODE_EXTRA_CA_CERTS, read at process start, must
 * trust the local ingestion endpoint): the app as a worker runs it — Application Insights on, Entra-authenticated
 * ingestion — with Cosmos DB behind a fault proxy. It injects latency, throttling and a failing dependency, stalls and
 * resumes the edge projection, leaves a message waiting and dead-letters one, measuring the backlogs at each step;
 * then flushes telemetry. Its log lines (JSON, stdout) and one line of facts (`{"facts": …}`) go to the test.
 */
// As in a Functions worker: telemetry starts before anything loads the Azure SDKs.
import '../../functions/lib/bootstrap';
import { ServiceBusClient } from '@azure/service-bus';
import { projectEdges } from '../../functions/projectEdges';
import { startFaultProxy } from '../../local/faults/http-proxy';
import { startChangeFeedTrigger } from '../../local/functions-host/cosmos';
import { startLocalStack } from '../../local/stack';
import { stopTelemetry } from '../../shared/platform/telemetry';
import { toServiceBusMessage } from '../../shared/queue/queue';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { startFixtureCatalog } from './backstage';
import { INJECTED_ACTIVITY_ID, INJECTED_DELAY_IN_MS, INJECTED_THROTTLES, RETRY_AFTER_IN_MS, SLOW_POINT_OPERATION_MS } from './observability-faults';
import { provisionCosmos, startBroker } from './stack';


async function main(): Promise<void> {
  const stack = await startLocalStack({ cosmos: true });
  const emulator = stack.cosmos!;
  const proxy = await startFaultProxy(emulator.endpoint, { tls: emulator.tls, targetCa: emulator.certificatePem });
  const [fixture, broker] = await Promise.all([startFixtureCatalog(), startBroker()]);
  Object.assign(process.env, {
    CosmosDBConnection__accountEndpoint: proxy.url,
    COSMOS_CA_CERT_PATH: emulator.certificatePath,
    BACKSTAGE_BASE_URL: fixture.baseUrl,
    ServiceBusConnection: broker.connectionString,
    COSMOS_SLOW_POINT_OPERATION_MS: String(SLOW_POINT_OPERATION_MS),
  });
  // The exporter may have built the runtime (for its ingestion token) before these settings were known.
  await resetRuntime();
  const runtime = getRuntime();
  (await provisionCosmos(runtime.config)).dispose();
  const database = runtime.cosmosClient.database(runtime.config.cosmos.databaseName);
  const facts: Record<string, unknown> = {};

  // Latency: three point reads through a proxy that holds each for INJECTED_DELAY_IN_MS.
  proxy.failAll({ delayInMs: INJECTED_DELAY_IN_MS }, { methods: ['GET'], path: /\/docs\/slow-/ });
  for (const id of ['slow-1', 'slow-2', 'slow-3']) await runtime.entityStore.read(id);
  proxy.heal();

  // Throttling: the first reads of throttle-1 answered 429 with a retry-after; the SDK waits and retries.
  const throttle = { 'x-ms-retry-after-ms': String(RETRY_AFTER_IN_MS), 'x-ms-substatus': '3200', 'x-ms-request-charge': '0', 'content-type': 'application/json' };
  proxy.failNext(INJECTED_THROTTLES, { status: 429, headers: throttle, body: JSON.stringify({ code: 'TooManyRequests', message: 'Request rate is large' }) }, { path: /\/docs\/throttle-1/ });
  await runtime.entityStore.read('throttle-1');

  // A failing dependency: every request for broken-1 answered 500 with a sub-status (no retry).
  proxy.failAll({ status: 500, headers: { 'x-ms-substatus': '21008', 'x-ms-activity-id': INJECTED_ACTIVITY_ID, 'content-type': 'application/json' }, body: JSON.stringify({ code: 'InternalServerError', message: 'injected' }) }, { path: /\/docs\/broken-1/ });
  facts.brokenError = await runtime.entityStore.read('broken-1').then(
    () => undefined,
    (error: unknown) => (error as Error).name,
  );
  proxy.heal();

  // The edge projection runs, catches up (nothing to read), stops: a stalled projection.
  const startProjection = () =>
    startChangeFeedTrigger({
      functionName: 'projectEdges',
      monitored: database.container(runtime.config.cosmos.entitiesContainer),
      leases: database.container(runtime.config.cosmos.leasesContainer),
      leaseContainerPrefix: 'projectEdges-',
      startFromBeginning: true,
      feedPollDelayInMs: 100,
      handler: (documents, context) => projectEdges(documents, context),
    });
  let projection = startProjection();
  await until(() => projection.idle, 'the projection to start and find nothing');
  await projection.stop();
  facts.idle = await runtime.backlogs.measure();

  // The catalog is mirrored while the projection is stopped: its backlog is every write.
  const reconciled = await runtime.reconciler.reconcile();
  facts.mirrorWrites = reconciled.created + reconciled.updated + reconciled.tombstoned;
  facts.stalled = await runtime.backlogs.measure();

  // The projection resumes and catches up.
  projection = startProjection();
  await until(() => projection.documents >= (facts.mirrorWrites as number) && projection.idle, 'the projection to catch up');
  facts.caughtUp = await runtime.backlogs.measure();
  await projection.stop();

  // The queue: one message waits (nothing consumes it), then is dead-lettered.
  await runtime.queue.enqueue([
    toServiceBusMessage(
      { messageId: 'observability-1', sessionId: 'component:default:payments-service', body: { entityRef: 'component:default/payments-service', type: 'upserted', eventId: 'observability-1', eventTime: new Date().toISOString(), source: 'urn:test' } },
      { attempt: 1 },
    ),
  ]);
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  facts.waiting = await runtime.backlogs.measure();
  const client = new ServiceBusClient(broker.connectionString);
  const session = await client.acceptNextSession(runtime.config.serviceBus.queueName);
  const [message] = await session.receiveMessages(1, { maxWaitTimeInMs: 5_000 });
  await session.deadLetterMessage(message!, { deadLetterReason: 'Test', deadLetterErrorDescription: 'dead-lettered by the observability scenario' });
  await session.close();
  await client.close();
  facts.deadLettered = await runtime.backlogs.measure();

  await stopTelemetry();
  await resetRuntime();
  await proxy.close();
  await Promise.all([broker.stop(), fixture.stop(), stack.stop()]);
  console.log(JSON.stringify({ facts }));
}

async function until(condition: () => boolean, what: string, timeoutInMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutInMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
