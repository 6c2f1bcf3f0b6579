/**
 * Throughput of the event pipeline on this machine: POST /api/catalog/events (the HTTP function) → local Service
 * Bus broker → syncEntity trigger (session runner, 8 sessions) → Cosmos emulator, with a real Backstage backend.
 * Everything runs on this machine, most of it in this process, so the figure is a floor for the service, not a
 * property of Azure.
 *
 *   npm run bench:pipeline -- [--entities 200] [--events 2000] [--batch 100]
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { HttpRequest, InvocationContext } from '@azure/functions';
import { catalogEvents } from '../functions/catalogEvents';
import { syncEntity } from '../functions/syncEntity';
import { BACKSTAGE_AUDIENCE, startBackstage } from '../local/backstage';
import { startCosmosEmulator } from '../local/cosmos';
import { ensureCosmosResources } from '../local/cosmos-setup';
import { startSessionTrigger } from '../local/functions-host/service-bus';
import { startIdentityServer } from '../local/identity';
import { LocalServiceBus } from '../local/servicebus/broker';
import { loadEmulatorConfig } from '../local/servicebus/config';
import { getRuntime, resetRuntime } from '../shared/runtime';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { entities: { type: 'string', default: '200' }, events: { type: 'string', default: '2000' }, batch: { type: 'string', default: '100' } },
  });
  const entityCount = Number(values.entities);
  const eventCount = Number(values.events);
  const batchSize = Number(values.batch);

  // The identity stand-in must be in the environment before the process credential is created.
  const identity = await startIdentityServer();
  process.env.IDENTITY_ENDPOINT = identity.identityEndpoint;
  process.env.IDENTITY_HEADER = identity.identityHeader;


  const cosmos = await startCosmosEmulator();
  const dir = mkdtempSync(join(tmpdir(), 'bench-catalog-'));
  const yaml = ['apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team\nspec:\n  type: team\n  children: []'];
  for (let i = 0; i < entityCount; i += 1) {
    yaml.push(`apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: svc-${i}\nspec:\n  type: service\n  lifecycle: production\n  owner: team${i > 0 ? `\n  dependsOn: [component:svc-${i - 1}]` : ''}`);
  }
  writeFileSync(join(dir, 'catalog.yaml'), yaml.join('\n---\n'));
  const backstage = await startBackstage({
    jwks: { url: identity.jwksUri, issuer: identity.issuer, audience: BACKSTAGE_AUDIENCE },
    locations: [join(dir, 'catalog.yaml')],
    processingIntervalSeconds: 5,
  });
  const broker = await LocalServiceBus.start({ queues: loadEmulatorConfig(join(__dirname, '..', 'local', 'servicebus', 'Config.json')) });

  Object.assign(process.env, {
    APP_MODE: 'local',
    LOG_LEVEL: 'error',
    CosmosDBConnection__accountEndpoint: cosmos.endpoint,
    COSMOS_CA_CERT_PATH: cosmos.certificatePath,
    ServiceBusConnection: broker.connectionString,
    BACKSTAGE_BASE_URL: backstage.baseUrl,
    BACKSTAGE_TOKEN_SCOPE: `${BACKSTAGE_AUDIENCE}/.default`,
    AUTH_ISSUER: identity.issuer,
    AUTH_AUDIENCE: 'api://bench',
  });
  const runtime = getRuntime();
  await ensureCosmosResources(runtime.cosmosClient, runtime.config.cosmos);

  // Wait until Backstage has every entity.
  const deadline = Date.now() + 120_000;
  for (;;) {
    const page = await runtime.catalog.getEntitiesByRefs([`component:default/svc-${entityCount - 1}`]);
    if (page[0]?.relations?.length) break;
    if (Date.now() > deadline) throw new Error('Backstage did not load the generated catalog');
    await new Promise((r) => setTimeout(r, 250));
  }

  const trigger = startSessionTrigger({
    connection: broker.connectionString,
    queueName: 'entity-sync',
    functionName: 'syncEntity',
    handler: (input, context) => syncEntity(input, context),
    maxConcurrentSessions: 8,
    sessionIdleTimeoutInMs: 200,
    logHandler: () => undefined,
  });
  const token = await identity.mint({ audience: 'api://bench', roles: ['Events.Send'] });
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
    if (response.status !== 202) throw new Error(`intake answered ${response.status}: ${String(response.body)}`);
    enqueued += (JSON.parse(String(response.body)) as { enqueued: number }).enqueued;
  }
  const intakeDone = performance.now();
  for (;;) {
    const stats = broker.stats('entity-sync');
    if (stats.active === 0 && stats.scheduled === 0 && stats.locked === 0 && trigger.inFlight === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const finished = performance.now();
  const mirrored = await runtime.entityStore.container.items.query('SELECT VALUE COUNT(1) FROM c').fetchAll();

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
  await broker.stop();
  await backstage.stop();
  await cosmos.close();
  await identity.close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
