/**
 * Run in a child process by test/integration/telemetry.test.ts, so that NODE_EXTRA_CA_CERTS (read at process start)
 * trusts the local ingestion endpoint: the process starts the app as a worker would (runtime + Application
 * Insights), serves POST /api/catalog/events over HTTP, runs the sync trigger and the change-feed trigger, posts one
 * event with the caller's trace, waits until the change is mirrored and projected, then flushes telemetry.
 *
 * Two layouts of the app:
 * - the sources (default): functions/*.ts under tsx, wired to the dev host's triggers one by one;
 * - the deployed artifact (TEST_APP_BUNDLE = the path of a bundle built by scripts/bundle.ts, as `package.json`
 *   `main` points at dist-bundle/main.js): the dev host loads the bundle as the Functions host loads `main` and runs
 *   every function it registers with its trigger (timers off). The host side — the trigger's Cosmos DB and Service
 *   Bus connections — uses its own clients, as the real host does; the app's runtime, telemetry included, is the
 *   bundle's own, built by its `appStart` hook. Telemetry is flushed through the OpenTelemetry API, which the bundle
 *   leaves external and so shares with this process.
 */
// As in a Functions worker: telemetry starts before anything loads the Azure SDKs.
import './telemetry-scenario-bootstrap';
import { join, resolve, sep } from 'node:path';
import type { Container } from '@azure/cosmos';
import { logs } from '@opentelemetry/api-logs';
import { metrics, trace } from '@opentelemetry/api';
import { provisionCosmos } from './stack';
import { startChangeFeedTrigger } from '../../local/functions-host/cosmos';
import { startHttpHost } from '../../local/functions-host/http';
import { startSessionTrigger } from '../../local/functions-host/service-bus';
import { startFunctionsHost } from '../../local/functions-host';
import { loadConfig } from '../../shared/platform/config';
import { createCosmosClient } from '../../shared/platform/cosmos';
import { createCredential } from '../../shared/platform/identity';
import type * as CatalogEventsModule from '../../functions/catalogEvents';
import type * as ProjectEdgesModule from '../../functions/projectEdges';
import type * as SyncEntityModule from '../../functions/syncEntity';
import type * as RuntimeModule from '../../shared/runtime';
import type * as TelemetryModule from '../../shared/platform/telemetry';

const ROOT = resolve(__dirname, '..', '..');
const REF = 'component:default/payments-service';
const EDGE_SOURCE = 'component:default:payments-service';

/** A running app: where its HTTP functions listen, whether the work the event caused is done, and how to stop. */
interface RunningApp {
  url: string;
  /** The edges projected from the entity, once its change has gone through. */
  edges(): Promise<unknown[]>;
  /** Whether the triggers have nothing in flight (the sources' runners tell; the dev host drains on stop instead). */
  idle(): boolean;
  /** Stops the triggers (letting invocations in flight finish), flushes telemetry, closes the clients. */
  stop(): Promise<void>;
}

async function fromSources(): Promise<RunningApp> {
  // Loaded only in this layout: the bundle brings its own copies.
  const { catalogEvents } = require('../../functions/catalogEvents') as typeof CatalogEventsModule;
  const { projectEdges } = require('../../functions/projectEdges') as typeof ProjectEdgesModule;
  const { syncEntity } = require('../../functions/syncEntity') as typeof SyncEntityModule;
  const { getRuntime, resetRuntime } = require('../../shared/runtime') as typeof RuntimeModule;
  const { stopTelemetry } = require('../../shared/platform/telemetry') as typeof TelemetryModule;
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
  return {
    url: host.url,
    edges: () => runtime.edgeStore.edgesOf(EDGE_SOURCE),
    idle: () => feed.idle && sessions.inFlight === 0,
    async stop() {
      await stopTelemetry();
      await feed.stop();
      await sessions.stop();
      await host.close();
      await resetRuntime();
    },
  };
}

async function fromBundle(bundle: string): Promise<RunningApp> {
  const config = loadConfig(process.env);
  (await provisionCosmos(config)).dispose();
  // The host's side: its own credential and clients for the triggers' connections.
  const credential = createCredential({ mode: config.mode, managedIdentityClientId: config.managedIdentityClientId });
  const cosmos = createCosmosClient(config.cosmos, credential, { mode: config.mode });
  const edges: Container = cosmos.database(config.cosmos.databaseName).container(config.cosmos.edgesContainer);
  const host = await startFunctionsHost({
    files: [bundle],
    hostJsonPath: join(ROOT, 'host.json'),
    port: 0,
    connections: { serviceBus: () => process.env.ServiceBusConnection!, cosmos: () => cosmos },
    log: (functionName, level, message) => {
      if (level === 'error') process.stderr.write(`${functionName}: ${message}\n`);
    },
    disable: ['timer'],
  });
  // The app is the bundle's alone: nothing of functions/ or dist/ was loaded.
  const appFiles = Object.keys(require.cache).filter((file) => [join(ROOT, 'functions'), join(ROOT, 'dist')].some((dir) => file.startsWith(dir + sep)));
  if (appFiles.length > 0) throw new Error(`the app's sources were loaded besides the bundle: ${appFiles.join(', ')}`);
  if (!require.cache[bundle]) throw new Error(`the dev host did not load ${bundle}`);
  return {
    url: host.url,
    edges: async () =>
      (await edges.items.query({ query: 'SELECT * FROM c WHERE c.source = @source', parameters: [{ name: '@source', value: EDGE_SOURCE }] }, { partitionKey: EDGE_SOURCE }).fetchAll())
        .resources,
    idle: () => true,
    async stop() {
      await host.stop({ drainTimeoutInMs: 30_000 });
      // What the app's flushAzureMonitor does, through the OpenTelemetry API the bundle shares with this process.
      const provider = trace.getTracerProvider() as { getDelegate?: () => { forceFlush?: () => Promise<void> } };
      await provider.getDelegate?.().forceFlush?.();
      await (metrics.getMeterProvider() as { forceFlush?: () => Promise<void> }).forceFlush?.();
      await (logs.getLoggerProvider() as { forceFlush?: () => Promise<void> }).forceFlush?.();
      cosmos.dispose();
    },
  };
}

async function main(): Promise<void> {
  const bundle = process.env.TEST_APP_BUNDLE;
  const app = bundle ? await fromBundle(bundle) : await fromSources();
  const response = await fetch(`${app.url}/api/catalog/events`, {
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
      subject: REF,
      time: new Date().toISOString(),
      data: { entityRef: REF },
    }),
  });
  if (response.status !== 202) throw new Error(`intake answered ${response.status}: ${await response.text()}`);

  const deadline = Date.now() + 60_000;
  for (;;) {
    if ((await app.edges()).length > 0 && app.idle()) break;
    if (Date.now() > deadline) throw new Error('the change was not mirrored and projected in time');
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 300));
  await app.stop();
  console.log(JSON.stringify({ ok: true }));
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
