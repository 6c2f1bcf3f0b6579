/**
 * The composition root: configuration, the one credential, the SDK clients and the services built on
 * them — once per process. Functions call {@link getRuntime}; nothing else constructs clients.
 */
import type { TokenCredential } from '@azure/core-auth';
import type { CosmosClient } from '@azure/cosmos';
import type { ServiceBusClient } from '@azure/service-bus';
import { Api } from './api/api';
import { TokenValidator } from './http/auth';
import { CatalogReader } from './sync/catalog-reader';
import { loadConfig, type AppConfig, type Environment } from './platform/config';
import { createCosmosClient, EntityStore } from './platform/cosmos';
import { DeadLetterAdmin } from './queue/deadletters';
import { EdgeStore } from './edges/edge-store';
import { GraphService } from './graph/traverse';
import { ProjectionFailureStore } from './edges/failure-store';
import { EdgeProjector } from './edges/projector';
import { createCredential, EntraTokenProvider, StaticTokenProvider, type BackstageTokenProvider } from './platform/identity';
import { createJsonLogger, type Logger } from './platform/logger';
import { EventIntake } from './intake/intake';
import { fanOutMetrics, InMemoryMetrics, type Metrics } from './platform/metrics';
import { currentTraceparent, OpenTelemetryMetrics, startTelemetry } from './platform/telemetry';
import { SyncMessageProcessor } from './queue/processor';
import { createServiceBusClient, EventQueue } from './queue/queue';
import { SyncEngine } from './sync/engine';
import { VERSION } from './platform/version';

export interface Runtime {
  config: AppConfig;
  credential: TokenCredential;
  logger: Logger;
  metrics: Metrics;
  /** The in-process counters (also exported to Application Insights when configured). */
  inMemoryMetrics: Metrics;
  cosmosClient: CosmosClient;
  entityStore: EntityStore;
  tokenProvider: BackstageTokenProvider;
  catalog: CatalogReader;
  engine: SyncEngine;
  validator: TokenValidator;
  serviceBusClient: ServiceBusClient;
  queue: EventQueue;
  processor: SyncMessageProcessor;
  intake: EventIntake;
  deadLetters: DeadLetterAdmin;
  edgeStore: EdgeStore;
  projector: EdgeProjector;
  projectionFailures: ProjectionFailureStore;
  graph: GraphService;
  api: Api;
  dispose(): Promise<void>;
}

export interface RuntimeOverrides {
  credential?: TokenCredential;
  logger?: Logger;
  metrics?: Metrics;
}

export function createRuntime(config: AppConfig, overrides: RuntimeOverrides = {}): Runtime {
  const logger = overrides.logger ?? createJsonLogger({ level: config.logLevel, base: { service: 'backstage-cosmos-sync' } });
  const credential = overrides.credential ?? createCredential({ managedIdentityClientId: config.managedIdentityClientId });
  // Application Insights (when configured) before any client is built, so their calls are traced.
  const exporting = startTelemetry(config.telemetry, credential);
  const inMemory = overrides.metrics ?? new InMemoryMetrics();
  const metrics = exporting ? fanOutMetrics(inMemory, new OpenTelemetryMetrics()) : inMemory;

  const cosmosClient = createCosmosClient(config.cosmos, credential, { mode: config.mode, userAgentSuffix: `backstage-cosmos-sync/${VERSION}` });
  const entitiesContainer = cosmosClient.database(config.cosmos.databaseName).container(config.cosmos.entitiesContainer);
  const entityStore = new EntityStore(entitiesContainer, metrics);

  const tokenProvider: BackstageTokenProvider = config.backstage.staticToken
    ? new StaticTokenProvider(config.backstage.staticToken)
    : new EntraTokenProvider(credential, config.backstage.tokenScope!);
  const catalog = new CatalogReader({ ...config.backstage, tokenProvider, logger: logger.child({ component: 'catalog' }), metrics });

  const engine = new SyncEngine({
    catalog,
    store: entityStore,
    logger: logger.child({ component: 'sync' }),
    metrics,
    tombstoneTtlInSeconds: config.sync.tombstoneTtlInSeconds,
    maxAttempts: config.sync.maxAttempts,
    traceparent: currentTraceparent,
    reconcile: {
      ...config.reconcile,
      retryBaseDelayInMs: config.backstage.retryBaseDelayInMs,
      retryMaxDelayInMs: config.backstage.retryMaxDelayInMs,
    },
  });
  const validator = new TokenValidator(config.auth);

  const serviceBusClient = createServiceBusClient(config.serviceBus, credential);
  const queue = new EventQueue(serviceBusClient.createSender(config.serviceBus.queueName), {
    sendTimeoutInMs: config.serviceBus.sendTimeoutInMs,
  });
  const processor = new SyncMessageProcessor({ engine, queue, logger: logger.child({ component: 'queue' }), metrics, retry: config.queueRetry });
  const intake = new EventIntake({
    config: config.intake,
    senderRole: config.auth.senderRole,
    validator,
    queue,
    logger: logger.child({ component: 'intake' }),
    metrics,
  });
  const deadLetters = new DeadLetterAdmin(serviceBusClient, config.serviceBus.queueName, queue, logger.child({ component: 'deadletters' }));

  const edgesContainer = cosmosClient.database(config.cosmos.databaseName).container(config.cosmos.edgesContainer);
  const retry = { maxRetries: config.reconcile.writeMaxRetries, baseDelayInMs: config.backstage.retryBaseDelayInMs, maxDelayInMs: config.backstage.retryMaxDelayInMs };
  const edgeStore = new EdgeStore(edgesContainer, { metrics, retry });
  const projectionFailures = new ProjectionFailureStore(edgesContainer);
  const projector = new EdgeProjector({
    edges: edgeStore,
    failures: projectionFailures,
    resync: (entityRef, drifted) => queue.enqueueResync(entityRef, drifted),
    logger: logger.child({ component: 'projector' }),
    metrics,
  });
  const graph = new GraphService(edgesContainer, entityStore);
  const api = new Api({
    engine,
    store: entityStore,
    deadLetters,
    graph,
    projector,
    projectionFailures,
    validator,
    roles: { read: config.auth.readRole, admin: config.auth.adminRole },
    logger,
    version: VERSION,
    mode: config.mode,
  });
  return {
    config,
    credential,
    logger,
    metrics,
    inMemoryMetrics: inMemory,
    cosmosClient,
    entityStore,
    tokenProvider,
    catalog,
    engine,
    validator,
    serviceBusClient,
    queue,
    processor,
    intake,
    deadLetters,
    edgeStore,
    projector,
    projectionFailures,
    graph,
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
