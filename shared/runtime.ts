/**
 * The composition root: configuration, the one credential, the SDK clients and the services built on
 * them — once per process. Functions call {@link getRuntime}; nothing else constructs clients.
 */
import type { TokenCredential } from '@azure/core-auth';
import type { CosmosClient } from '@azure/cosmos';
import type { ServiceBusClient } from '@azure/service-bus';
import { AdminApi } from './api/admin';
import { AuthoredApi, authoredLocation } from './api/authored';
import { HistoryApi } from './api/history';
import { AuthoredStore } from './authored/authored-store';
import { HistoryRecorder } from './history/history-recorder';
import { HistoryStore } from './history/history-store';
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
import { MaintenanceRunStore } from './maintenance-runs/run-store';
import { MaintenanceRuns } from './maintenance-runs/runs';
import { loadConfig, type AppConfig, type Environment } from './platform/config';
import type { OperationOptions } from './platform/options';
import { createCosmosClient, type CosmosStoreOptions } from './platform/cosmos';
import { createCredential, EntraTokenProvider, InstrumentedCredential, StaticTokenProvider, type BackstageTokenProvider } from './platform/identity';
import { SelfCheck, type DependencyProbe } from './self-check';
import { createJsonLogger, type Logger } from './platform/logger';
import { fanOutMetrics, InMemoryMetrics, type Metrics } from './platform/metrics';
import { currentTraceparent, OpenTelemetryMetrics, startTelemetry } from './platform/telemetry';
import { VERSION } from './platform/version';
import { DeadLetterAdmin } from './queue/deadletters';
import { SyncMessageProcessor } from './queue/processor';
import { createServiceBusClient, EventQueue } from './queue/queue';
import { CatalogReader } from './sync/catalog-reader';
import { CoalescedEntityReads } from './sync/entity-reads';
import { SyncEngine } from './sync/engine';
import { BacklogMonitor } from './monitoring/backlogs';
import { LeaseStore } from './monitoring/lease-store';
import { QueueMonitor } from './queue/monitor';
import { EntityStore } from './sync/entity-store';
import { Reconciler } from './sync/reconcile';
import { SyncScope } from './sync/scope';

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
  maintenanceRuns: MaintenanceRuns;
  selfCheck: SelfCheck;
  backlogs: BacklogMonitor;
  api: { health: HealthApi; entities: EntitiesApi; graph: GraphApi; admin: AdminApi; authored: AuthoredApi; history: HistoryApi };
  authoredStore: AuthoredStore;
  historyStore: HistoryStore;
  history: HistoryRecorder;
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
  const processCredential = overrides.credential ?? createCredential({ mode: config.mode, managedIdentityClientId: config.managedIdentityClientId });
  // Application Insights (when configured) before any client is built, so their calls are traced.
  const exporting = startTelemetry(config.telemetry, processCredential);
  const inMemory = overrides.metrics ?? new InMemoryMetrics();
  const metrics = exporting ? fanOutMetrics(inMemory, new OpenTelemetryMetrics()) : inMemory;
  // The one credential every client gets, with token telemetry (acquisitions, refreshes, failures, time left, and
  // each call that went to the token endpoint as a dependency).
  const credential = new InstrumentedCredential(processCredential, { metrics, logger: component('identity') });
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
  const storeOptions: CosmosStoreOptions = { metrics, throttleRetry: config.cosmos.throttleRetry, logger: component('cosmos'), slowCallThresholds: config.cosmos.slowCallThresholds };
  const entityStore = new EntityStore(database.container(config.cosmos.entitiesContainer), storeOptions);
  const edgeStore = new EdgeStore(database.container(config.cosmos.edgesContainer), storeOptions);
  const projectionFailures = new ProjectionFailureStore(database.container(config.cosmos.edgesContainer), storeOptions);
  const deliveries = new WebhookDeliveryStore(database.container(config.cosmos.deliveriesContainer), storeOptions);
  const authoredStore = new AuthoredStore(database.container(config.cosmos.authoredContainer), storeOptions);
  const historyStore = new HistoryStore(database.container(config.cosmos.historyContainer), storeOptions);
  const runStore = new MaintenanceRunStore(database.container(config.cosmos.runsContainer), storeOptions);

  // The pipeline, in the order a change travels: intake → queue → sync → edges → graph.
  const catalog = new CatalogReader({ ...config.backstage, tokenProvider, logger: component('catalog'), metrics });
  const queue = new EventQueue(serviceBusClient.createSender(config.serviceBus.queueName), { sendTimeoutInMs: config.serviceBus.sendTimeoutInMs, metrics });
  const scope = new SyncScope(config.sync.scope);
  const intake = new EventIntake({ config: config.intake, scope, senderRole: config.auth.senderRole, validator, queue, deliveries, logger: component('intake'), metrics });
  const history = new HistoryRecorder({ store: historyStore, logger: component('history'), metrics, retentionInSeconds: config.history.retentionInSeconds });
  const mirror = { catalog, store: entityStore, metrics, scope, history, tombstoneTtlInSeconds: config.sync.tombstoneTtlInSeconds, traceparent: currentTraceparent };
  // The sync's single-entity reads share by-refs requests while others are in flight (a storm costs batches).
  const engine = new SyncEngine({ ...mirror, reads: new CoalescedEntityReads(catalog, { metrics }), logger: component('sync'), maxAttempts: config.sync.maxAttempts });
  const reconciler = new Reconciler({ ...mirror, ...config.reconcile, engine, logger: component('sync') });
  const deadLetters = new DeadLetterAdmin(serviceBusClient, config.serviceBus.queueName, queue, component('deadletters'), metrics);
  const projector = new EdgeProjector({
    edges: edgeStore,
    failures: projectionFailures,
    resync: (entityRef, drifted, options) => queue.enqueueResync(entityRef, drifted, options),
    readDocument: (id, options) => entityStore.read(id, options),
    logger: component('projector'),
    metrics,
  });
  const graph = new GraphService(edgeStore, entityStore);
  const selfCheck = new SelfCheck({ credential, probes: dependencyProbes(), logger: component('self-check'), metrics });
  const maintenance = new Maintenance({ reconciler, projector, selfCheck, logger: component('maintenance') });
  const maintenanceRuns = new MaintenanceRuns({ store: runStore, maintenance, queue, logger: component('maintenance'), metrics });
  const processor = new SyncMessageProcessor({ engine, queue, maintenanceRuns, batches: reconciler, logger: component('queue'), metrics, retry: config.queueRetry });
  const backlogs = new BacklogMonitor({
    leases: new LeaseStore(database.container(config.cosmos.leasesContainer), storeOptions),
    entities: entityStore,
    queue: new QueueMonitor(serviceBusClient, config.serviceBus.queueName, metrics),
    metrics,
    logger: component('backlogs'),
  });

  // The HTTP API, by resource.
  const endpoints = new Endpoints({ validator, logger });
  const api = {
    health: new HealthApi({ store: entityStore, logger, version: VERSION, mode: config.mode }),
    entities: new EntitiesApi({ endpoints, store: entityStore, roles }),
    history: new HistoryApi({ endpoints, store: historyStore, roles }),
    graph: new GraphApi({ endpoints, graph, roles }),
    admin: new AdminApi({ endpoints, runs: maintenanceRuns, deadLetters, projector, projectionFailures, selfCheck, roles }),
    authored: new AuthoredApi({
      endpoints,
      store: authoredStore,
      catalog,
      policy: config.authoring,
      roles: { write: config.auth.writeRole },
      location: authoredLocation(config.cosmos.endpoint, config.cosmos.databaseName, config.cosmos.authoredContainer),
      tombstoneTtlInSeconds: config.sync.tombstoneTtlInSeconds,
    }),
  };

  /** Every dependency, through the part of the app that owns it, with the scope of the token its client uses. */
  function dependencyProbes(): DependencyProbe[] {
    const cosmosScope = config.cosmos.key ? {} : { scope: `${new URL(config.cosmos.endpoint).origin}/.default` };
    const serviceBusScope = config.serviceBus.connectionString ? {} : { scope: 'https://servicebus.azure.net/.default' };
    const backstageScope = config.backstage.staticToken ? {} : { scope: config.backstage.tokenScope! };
    const cosmos = (container: string, call: string, store: { probe(o: OperationOptions): Promise<void> }): DependencyProbe => ({
      dependency: `cosmos:${container}`,
      call,
      ...cosmosScope,
      run: (o) => store.probe(o),
    });
    return [
      cosmos(config.cosmos.entitiesContainer, 'read an item no document has', entityStore),
      cosmos(config.cosmos.edgesContainer, 'read an item no document has', edgeStore),
      cosmos(config.cosmos.deliveriesContainer, 'delete an item no document has', deliveries),
      cosmos(config.cosmos.authoredContainer, 'read an item no document has', authoredStore),
      cosmos(config.cosmos.historyContainer, 'read an item no document has', historyStore),
      cosmos(config.cosmos.runsContainer, 'read an item no document has', runStore),
      { dependency: 'servicebus:send', call: `open a sender on ${config.serviceBus.queueName} (an empty batch)`, ...serviceBusScope, run: (o) => queue.probe(o) },
      { dependency: 'servicebus:receive', call: `peek one dead letter of ${config.serviceBus.queueName}`, ...serviceBusScope, run: (o) => deadLetters.probe(o) },
      { dependency: 'backstage', call: 'read the name of one catalog entity', ...backstageScope, run: (o) => catalog.probe(o) },
      ...validator.trusts.map((trust): DependencyProbe => ({ dependency: `issuer:${trust.name}`, call: 'fetch the signing keys', run: () => validator.probe(trust) })),
    ];
  }

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
    backlogs,
    projector,
    graph,
    maintenance,
    maintenanceRuns,
    selfCheck,
    api,
    authoredStore,
    historyStore,
    history,
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
