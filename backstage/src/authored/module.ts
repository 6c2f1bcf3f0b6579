import { CosmosClient } from '@azure/cosmos';
import { coreServices, createBackendModule } from '@backstage/backend-plugin-api';
import { catalogProcessingExtensionPoint } from '@backstage/plugin-catalog-node';
import { backendCredential } from '../delivery';
import { readCosmosAuthoredSettings } from './config';
import { CosmosAuthoredEntityProvider, PROVIDER_NAME } from './CosmosAuthoredEntityProvider';
import { applyAuthoredMigrations, ProviderStateStore } from './store';

export const AUTHORED_TASK_ID = 'catalog-cosmos-authored';

/**
 * Brings entities authored in Cosmos DB (the `authored` container) into the catalog, with the Backstage backend's
 * own identity — workload identity or managed identity, never a key — and a read-only data-plane role. Idle unless
 * `catalog.providers.cosmosAuthored` is configured.
 */
export const catalogModuleCosmosAuthored = createBackendModule({
  pluginId: 'catalog',
  moduleId: 'cosmos-authored-entities',
  register(env) {
    env.registerInit({
      deps: {
        config: coreServices.rootConfig,
        logger: coreServices.logger,
        scheduler: coreServices.scheduler,
        database: coreServices.database,
        lifecycle: coreServices.lifecycle,
        catalog: catalogProcessingExtensionPoint,
      },
      async init({ config, logger, scheduler, database, lifecycle, catalog }) {
        const settings = readCosmosAuthoredSettings(config);
        if (!settings) {
          logger.info('catalog.providers.cosmosAuthored is not configured; no entities are read from Cosmos DB');
          return;
        }
        const db = await database.getClient();
        if (!database.migrations?.skip) await applyAuthoredMigrations(db);
        const client = new CosmosClient({
          endpoint: settings.endpoint,
          aadCredentials: backendCredential(settings),
          userAgentSuffix: 'backstage-cosmos-sync-authored-provider',
        });
        lifecycle.addShutdownHook(() => client.dispose());
        const provider = new CosmosAuthoredEntityProvider({
          container: client.database(settings.database).container(settings.container),
          state: new ProviderStateStore(db, PROVIDER_NAME),
          logger,
          location: settings.location,
          fullMutationIntervalInMs: settings.fullMutationIntervalInMs,
          pageSize: settings.pageSize,
        });
        catalog.addEntityProvider(provider);
        await scheduler.scheduleTask({
          id: AUTHORED_TASK_ID,
          scope: 'global',
          ...settings.schedule,
          fn: async (signal) => {
            try {
              await provider.run(signal);
            } catch (error) {
              logger.error(`Reading authored entities from ${settings.location} failed; the next run resumes where this one stopped`, error as Error);
              throw error;
            }
          },
        });
        logger.info(`Reading authored entities from ${settings.location}`);
      },
    });
  },
});
