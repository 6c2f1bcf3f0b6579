/**
 * The composition root: configuration, the one credential, the SDK clients and the services built on
 * them — once per process. Functions call {@link getRuntime}; nothing else constructs clients.
 */
import type { TokenCredential } from '@azure/core-auth';
import type { CosmosClient } from '@azure/cosmos';
import type { ServiceBusClient } from '@azure/service-bus';
import { AdminApi } from './api/admin';
import { EntitiesApi } from './api/entities';
import { GraphApi } from './api/graph';
import { HealthApi } from './api/health';
import { EdgeStore } from './edges/edge-store';
import { ProjectionFailureStore } from './edges/failure-store';
import { EdgeProjector } from './edges/projector';
import { GraphService } from './graph/traverse';
import { TokenValidator } from './http/auth';
import { Endpoints } from './http/endpoint';
import { EventIntake } from './intake/intake';
import { WebhookDeliveryStore } from './intake/delivery-store';
import { Maintenance } from './maintenance';
import { loadConfig, type AppConfig, type Environment } from './platform/config';
import { createCosmosClient, type CosmosStoreOptions } from './platform/cosmos';
import { createCredential, EntraTokenProvider, StaticTokenProvider, type BackstageTokenProvider } from './platform/identity';
import { createJsonLogger, type Logger } from './platform/logger';
import { fanOutMetrics, InMemoryMetrics, type Metrics } from './platform/metrics';
import { currentTraceparent, OpenTelemetryMetrics, startTelemetry } from './platform/telemetry';
import { VERSION } from './platform/version';
import { DeadLetterAdmin } from './queue/deadletters';
import { SyncMessageProcessor } from './queue/processor';
import { createServiceBusClient, EventQueue } from './queue/queue';
import { CatalogReader } from './sync/catalog-reader';
import { SyncEngine } from './sync/engine';
import { EntityStore } from './sync/entity-store';
import { Reconciler } from './sync/reconcile';

export interface Runtime {
  config: AppConfig;
  credential: TokenCredential;
  logger: Logger;
  metrics: Metrics;
  /** The in-process counters (also exported to Application Insights when configured). */
  inMemoryMetrics: Metrics;
  cosmosClient: CosmosClient;
  serviceBusClient: ServiceBusClient;
  tokenProvider: BackstageTokenProvider;
  validator: TokenValidator;
  /** The owners of the Cosmos containers. */
  entityStore: EntityStore;
  edgeStore: EdgeStore;
  projectionFailures: ProjectionFailureStore;
  catalog: CatalogReader;
  queue: EventQueue;
  intake: EventIntake;
  engine: SyncEngine;
  reconciler: Reconciler;
  processor: SyncMessageProcessor;
  deadLetters: DeadLetterAdmin;
  projector: EdgeProjector;
  graph: GraphService;
  maintenance: Maintenance;
  api: { health: HealthApi; entities: EntitiesApi; graph: GraphApi; admin: AdminApi };
  dispose(): Promise<void>;
}

export interface RuntimeOverrides {
  credential?: TokenCredential;
  logger?: Logger;
  metrics?: Metrics;
}

export function createRuntime(config: AppConfig, overrides: RuntimeOverrides = {}): Runtime {
  const logger = overrides.logger ?? createJsonLogger({ level: config.logLevel, base: { service: 'backstage-cosmos-sync' } });
  const component = (name: string) => logger.child({ component: name });
  const credential = overrides.credential ?? createCredential({ mode: config.mode, managedIdentityClientId: config.managedIdentityClientId });
  // Application Insights (when configured) before any client is built, so their calls are traced.
  const exporting = startTelemetry(config.telemetry, credential);
  const inMemory = overrides.metrics ?? new InMemoryMetrics();
  const metrics = exporting ? fanOutMetrics(inMemory, new OpenTelemetryMetrics()) : inMemory;
  const roles = { read: config.auth.readRole, admin: config.auth.adminRole };

  // Clients, one each.
  const cosmosClient = createCosmosClient(config.cosmos, credential, { mode: config.mode, userAgentSuffix: `backstage-cosmos-sync/${VERSION}` });
  const serviceBusClient = createServiceBusClient(config.serviceBus, credential);
  const tokenProvider: BackstageTokenProvider = config.backstage.staticToken
    ? new StaticTokenProvider(config.backstage.staticToken)
    : new EntraTokenProvider(credential, config.backstage.tokenScope!);
  const validator = new TokenValidator(config.auth);

  // The stores: one per container (projection failures own a reserved partition of `edges`).
  const database = cosmosClient.database(config.cosmos.databaseName);
  const storeOptions: CosmosStoreOptions = { metrics, throttleRetry: config.cosmos.throttleRetry };
  const entityStore = new EntityStore(database.container(config.cosmos.entitiesContainer), storeOptions);
  const edgeStore = new EdgeStore(database.container(config.cosmos.edgesContainer), storeOptions);
  const projectionFailures = new ProjectionFailureStore(database.container(config.cosmos.edgesContainer), storeOptions);
  const deliveries = new WebhookDeliveryStore(database.container(config.cosmos.deliveriesContainer), storeOptions);

  // The pipeline, in the order a change travels: intake → queue → sync → edges → graph.
  const catalog = new CatalogReader({ ...config.backstage, tokenProvider, logger: component('catalog'), metrics });
  const queue = new EventQueue(serviceBusClient.createSender(config.serviceBus.queueName), { sendTimeoutInMs: config.serviceBus.sendTimeoutInMs });
  const intake = new EventIntake({ config: config.intake, senderRole: config.auth.senderRole, validator, queue, deliveries, logger: component('intake'), metrics });
  const mirror = { catalog, store: entityStore, metrics, tombstoneTtlInSeconds: config.sync.tombstoneTtlInSeconds, traceparent: currentTraceparent };
  const engine = new SyncEngine({ ...mirror, logger: component('sync'), maxAttempts: config.sync.maxAttempts });
  const reconciler = new Reconciler({ ...mirror, ...config.reconcile, engine, logger: component('sync') });
  const processor = new SyncMessageProcessor({ engine, queue, logger: component('queue'), metrics, retry: config.queueRetry });
  const deadLetters = new DeadLetterAdmin(serviceBusClient, config.serviceBus.queueName, queue, component('deadletters'));
  const projector = new EdgeProjector({
    edges: edgeStore,
    failures: projectionFailures,
    resync: (entityRef, drifted, options) => queue.enqueueResync(entityRef, drifted, options),
    readDocument: (id, options) => entityStore.read(id, options),
    logger: component('projector'),
    metrics,
  });
  const graph = new GraphService(edgeStore, entityStore);
  const maintenance = new Maintenance({ reconciler, projector, logger: component('maintenance') });

  // The HTTP API, by resource.
  const endpoints = new Endpoints({ validator, logger });
  const api = {
    health: new HealthApi({ store: entityStore, logger, version: VERSION, mode: config.mode }),
    entities: new EntitiesApi({ endpoints, store: entityStore, roles }),
    graph: new GraphApi({ endpoints, graph, roles }),
    admin: new AdminApi({ endpoints, maintenance, deadLetters, projector, projectionFailures, roles }),
  };

  return {
    config,
    credential,
    logger,
    metrics,
    inMemoryMetrics: inMemory,
    cosmosClient,
    serviceBusClient,
    tokenProvider,
    validator,
    entityStore,
    edgeStore,
    projectionFailures,
    catalog,
    queue,
    intake,
    engine,
    reconciler,
    processor,
    deadLetters,
    projector,
    graph,
    maintenance,
    api,
    dispose: async () => {
      cosmosClient.dispose();
      await serviceBusClient.close();
    },
  };
}

let instance: Runtime | undefined;

/** The process's runtime, built (and the configuration validated) on first use. */
export function getRuntime(env: Environment = process.env): Runtime {
  instance ??= createRuntime(loadConfig(env));
  return instance;
}

/** Drops the process runtime (tests; a Functions worker never needs it). */
export async function resetRuntime(): Promise<void> {
  const current = instance;
  instance = undefined;
  await current?.dispose();
}
