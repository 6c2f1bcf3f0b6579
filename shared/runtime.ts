/**
 * The composition root: configuration, the one credential, the SDK clients and the services built on
 * them — once per process. Functions call {@link getRuntime}; nothing else constructs clients.
 */
import type { TokenCredential } from '@azure/core-auth';
import type { CosmosClient } from '@azure/cosmos';
import { Api } from './api';
import { TokenValidator } from './auth';
import { CatalogReader } from './catalog';
import { loadConfig, type AppConfig, type Environment } from './config';
import { createCosmosClient, EntityStore } from './cosmos';
import { createCredential, EntraTokenProvider, StaticTokenProvider, type BackstageTokenProvider } from './identity';
import { createJsonLogger, type Logger } from './logger';
import { InMemoryMetrics, type Metrics } from './metrics';
import { SyncEngine } from './sync';
import { VERSION } from './version';

export interface Runtime {
  config: AppConfig;
  credential: TokenCredential;
  logger: Logger;
  metrics: Metrics;
  cosmosClient: CosmosClient;
  entityStore: EntityStore;
  tokenProvider: BackstageTokenProvider;
  catalog: CatalogReader;
  engine: SyncEngine;
  validator: TokenValidator;
  api: Api;
  dispose(): void;
}

export interface RuntimeOverrides {
  credential?: TokenCredential;
  logger?: Logger;
  metrics?: Metrics;
}

export function createRuntime(config: AppConfig, overrides: RuntimeOverrides = {}): Runtime {
  const logger = overrides.logger ?? createJsonLogger({ level: config.logLevel, base: { service: 'backstage-cosmos-sync' } });
  const metrics = overrides.metrics ?? new InMemoryMetrics();
  const credential = overrides.credential ?? createCredential({ managedIdentityClientId: config.managedIdentityClientId });

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
    reconcile: {
      ...config.reconcile,
      retryBaseDelayInMs: config.backstage.retryBaseDelayInMs,
      retryMaxDelayInMs: config.backstage.retryMaxDelayInMs,
    },
  });
  const validator = new TokenValidator(config.auth);
  const api = new Api({
    engine,
    store: entityStore,
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
    cosmosClient,
    entityStore,
    tokenProvider,
    catalog,
    engine,
    validator,
    api,
    dispose: () => cosmosClient.dispose(),
  };
}

let instance: Runtime | undefined;

/** The process's runtime, built (and the configuration validated) on first use. */
export function getRuntime(env: Environment = process.env): Runtime {
  instance ??= createRuntime(loadConfig(env));
  return instance;
}

/** Drops the process runtime (tests; a Functions worker never needs it). */
export function resetRuntime(): void {
  instance?.dispose();
  instance = undefined;
}
