/**
 * Throughput of the event pipeline on this machine: POST /api/catalog/events (the HTTP function) → local Service
 * Bus broker → syncEntity trigger (session runner, 8 sessions) → Cosmos emulator, with a real Backstage backend.
 * Everything runs on this machine, most of it in this process, so the figure is a floor for the service, not a
 * property of Azure.
 *
 *   npm run bench:pipeline -- [--entities 200] [--events 2000] [--batch 100]
 */
import { parseArgs } from 'node:util';
import { HttpRequest, InvocationContext } from '@azure/functions';
import { catalogEvents } from '../functions/catalogEvents';
import { syncEntity } from '../functions/syncEntity';
import { settingDefaults } from '../shared/platform/settings';
import { startSessionTrigger } from '../local/functions-host/service-bus';
import { LOCAL_API_AUDIENCE, startLocalStack, waitForCatalog } from '../local/stack';
import { getRuntime, resetRuntime } from '../shared/runtime';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { entities: { type: 'string', default: '200' }, events: { type: 'string', default: '2000' }, batch: { type: 'string', default: '100' } },
  });
  const entityCount = Number(values.entities);
  const eventCount = Number(values.events);
  const batchSize = Number(values.batch);

  const stack = await startLocalStack({
    identity: true,
    // The database the app's settings default to, created as infrastructure would; the app runs with its roles.
    cosmos: { provision: String(settingDefaults().COSMOS_DATABASE_NAME) },
    serviceBus: true,
    // The catalog in one mutation of the stand-in's provider; nothing reprocesses while the events flow.
    backstage: { staticToken: 'bench-pipeline-static-token', processingIntervalSeconds: 3600 },
  });
  const { identity, broker } = stack;
  const backstage = stack.backstage!;
  const catalog: object[] = [{ apiVersion: 'backstage.io/v1alpha1', kind: 'Group', metadata: { name: 'team' }, spec: { type: 'team', children: [] } }];
  for (let i = 0; i < entityCount; i += 1) {
    catalog.push({
      apiVersion: 'backstage.io/v1alpha1',
      kind: 'Component',
      metadata: { name: `svc-${i}` },
      spec: { type: 'service', lifecycle: 'production', owner: 'team', ...(i > 0 && { dependsOn: [`component:svc-${i - 1}`] }) },
    });
  }
  await backstage.loadCatalog(catalog);
  // Every entity processed and stitched before the clock starts.
  await waitForCatalog(backstage, { count: catalog.length, settled: true }, { timeoutInMs: 120_000, pollIntervalInMs: 1_000, what: 'the generated catalog' });

  // The app's settings, in this process's environment before the process credential is created.
  Object.assign(process.env, stack.settings({ LOG_LEVEL: 'error', BACKSTAGE_BASE_URL: backstage.baseUrl }));
  const runtime = getRuntime();

  const trigger = startSessionTrigger({
    connection: broker!.connectionString,
    queueName: 'entity-sync',
    functionName: 'syncEntity',
    handler: (input, context) => syncEntity(input, context),
    maxConcurrentSessions: 8,
    sessionIdleTimeoutInMs: 200,
    logHandler: () => undefined,
  });
  const token = await identity!.mint({ audience: LOCAL_API_AUDIENCE, roles: ['Events.Send'] });
  const events = Array.from({ length: eventCount }, (_, i) => ({
    specversion: '1.0',
    id: `bench-${i}`,
    source: backstage.baseUrl,
    type: 'io.backstage.catalog.entity.upserted',
    subject: `component:default/svc-${i % entityCount}`,
    time: new Date().toISOString(),
    data: { entityRef: `component:default/svc-${i % entityCount}` },
  }));

  const started = performance.now();
  let enqueued = 0;
  for (let i = 0; i < events.length; i += batchSize) {
    const response = await catalogEvents(
      new HttpRequest({
        method: 'POST',
        url: 'http://localhost:7071/api/catalog/events',
        headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${token}` },
        body: { string: JSON.stringify(events.slice(i, i + batchSize)) },
      }),
      new InvocationContext({ functionName: 'catalogEvents' }),
    );
    const body = typeof response.body === 'string' ? response.body : JSON.stringify(response.jsonBody ?? null);
    if (response.status !== 202) throw new Error(`intake answered ${response.status}: ${body}`);
    enqueued += (JSON.parse(body) as { enqueued: number }).enqueued;
  }
  const intakeDone = performance.now();
  for (;;) {
    const stats = broker!.stats('entity-sync');
    if (stats.active === 0 && stats.scheduled === 0 && stats.locked === 0 && trigger.inFlight === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const finished = performance.now();
  const mirrored = await runtime.cosmosClient.database(runtime.config.cosmos.databaseName).container(runtime.config.cosmos.entitiesContainer).items.query('SELECT VALUE COUNT(1) FROM c').fetchAll();

  const seconds = (finished - started) / 1000;
  const rows = [
    ['events posted', String(eventCount)],
    ['queue messages (after per-request coalescing)', String(enqueued)],
    ['sync invocations', String(trigger.invocations)],
    ['entities in the mirror', String(mirrored.resources[0])],
    ['intake time', `${((intakeDone - started) / 1000).toFixed(2)} s (${(eventCount / ((intakeDone - started) / 1000)).toFixed(0)} events/s)`],
    ['end-to-end time', `${seconds.toFixed(2)} s`],
    ['events/s end to end', (eventCount / seconds).toFixed(0)],
    ['syncs/s', (trigger.invocations / seconds).toFixed(0)],
    ['Backstage requests', String(runtime.catalog.requestCount)],
  ];
  console.log('| measure | value |\n| --- | --- |');
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);

  await trigger.stop();
  await resetRuntime();
  await stack.stop();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
