/**
 * Run in a child process by test/integration/telemetry.test.ts, so that NODE_EXTRA_CA_CERTS (read at process start)
 * trusts the local ingestion endpoint: the process starts the app as a worker would (runtime + Application
 * Insights), serves POST /api/catalog/events over HTTP, runs the sync trigger and the change-feed trigger, posts one
 * event with the caller's trace, waits until the change is mirrored and projected, then flushes telemetry.
 */
// As in a Functions worker: telemetry starts before anything loads the Azure SDKs.
import '../../functions/lib/bootstrap';
import { catalogEvents } from '../../functions/catalogEvents';
import { projectEdges } from '../../functions/projectEdges';
import { syncEntity } from '../../functions/syncEntity';
import { provisionCosmos } from './stack';
import { startChangeFeedTrigger } from '../../local/functions-host/cosmos';
import { startHttpHost } from '../../local/functions-host/http';
import { startSessionTrigger } from '../../local/functions-host/service-bus';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { stopTelemetry } from '../../shared/platform/telemetry';

async function main(): Promise<void> {
  const runtime = getRuntime();
  (await provisionCosmos(runtime.config)).dispose();
  const database = runtime.cosmosClient.database(runtime.config.cosmos.databaseName);
  const host = await startHttpHost({ routes: [{ functionName: 'catalogEvents', route: 'catalog/events', methods: ['POST'], handler: catalogEvents }] });
  const sessions = startSessionTrigger({
    connection: process.env.ServiceBusConnection!,
    queueName: runtime.config.serviceBus.queueName,
    functionName: 'syncEntity',
    handler: (input, context) => syncEntity(input, context),
    sessionIdleTimeoutInMs: 200,
  });
  const feed = startChangeFeedTrigger({
    functionName: 'projectEdges',
    monitored: database.container(runtime.config.cosmos.entitiesContainer),
    leases: database.container(runtime.config.cosmos.leasesContainer),
    startFromBeginning: true,
    feedPollDelayInMs: 100,
    handler: (documents, context) => projectEdges(documents, context),
  });

  const ref = 'component:default/payments-service';
  const response = await fetch(`${host.url}/api/catalog/events`, {
    method: 'POST',
    headers: {
      'content-type': 'application/cloudevents+json',
      authorization: `Bearer ${process.env.TEST_SENDER_TOKEN}`,
      traceparent: process.env.TEST_TRACEPARENT!,
    },
    body: JSON.stringify({
      specversion: '1.0',
      id: 'telemetry-1',
      source: process.env.BACKSTAGE_BASE_URL,
      type: 'io.backstage.catalog.entity.upserted',
      subject: ref,
      time: new Date().toISOString(),
      data: { entityRef: ref },
    }),
  });
  if (response.status !== 202) throw new Error(`intake answered ${response.status}: ${await response.text()}`);

  const deadline = Date.now() + 60_000;
  for (;;) {
    const edges = await runtime.edgeStore.edgesOf('component:default:payments-service');
    if (edges.length > 0 && feed.idle && sessions.inFlight === 0) break;
    if (Date.now() > deadline) throw new Error('the change was not mirrored and projected in time');
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 300));
  await stopTelemetry();
  await feed.stop();
  await sessions.stop();
  await host.close();
  await resetRuntime();
  console.log(JSON.stringify({ ok: true }));
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
