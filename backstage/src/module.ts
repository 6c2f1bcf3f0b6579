import { coreServices, createBackendModule } from '@backstage/backend-plugin-api';
import { catalogServiceRef } from '@backstage/plugin-catalog-node';
import { ChangeEventsEngine } from './ChangeEventsEngine';
import { readChangeEventsSettings } from './config';
import { createEndpointClients } from './delivery';
import { createMetrics } from './metrics';
import { applyMigrations } from './store';

export const TASK_ID = 'catalog-change-events';

/**
 * Publishes catalog entity changes — created, updated and deleted — as CloudEvents to the endpoints in
 * `catalog.changeEvents`. One scheduled task (global scope: one instance of a scaled-out Backstage runs it) diffs
 * the catalog's uid/etag projection against the snapshot kept in the database, and delivers each endpoint's
 * outbox with retries.
 */
export const catalogModuleChangeEvents = createBackendModule({
  pluginId: 'catalog',
  moduleId: 'change-events',
  register(env) {
    env.registerInit({
      deps: {
        config: coreServices.rootConfig,
        logger: coreServices.logger,
        scheduler: coreServices.scheduler,
        database: coreServices.database,
        auth: coreServices.auth,
        catalog: catalogServiceRef,
      },
      async init({ config, logger, scheduler, database, auth, catalog }) {
        const settings = readChangeEventsSettings(config);
        if (!settings) {
          logger.info('catalog.changeEvents is not configured; no catalog change events are published');
          return;
        }
        const db = await database.getClient();
        if (!database.migrations?.skip) await applyMigrations(db);
        let depth = new Map<string, number>();
        const engine = new ChangeEventsEngine({
          db,
          catalog,
          auth,
          logger,
          settings,
          clients: createEndpointClients(settings.endpoints),
          metrics: createMetrics(undefined, () => depth),
        });
        await scheduler.scheduleTask({
          id: TASK_ID,
          scope: 'global',
          ...settings.schedule,
          fn: async (signal) => {
            try {
              const { diff, delivery } = await engine.run(signal);
              depth = await engine.outboxDepth();
              logger.debug('Change events run finished', { ...diff, ...delivery, failedEndpoints: delivery.failedEndpoints.join(',') });
            } catch (error) {
              logger.error('Change events run failed; the next run tries again', error as Error);
              throw error;
            }
          },
        });
        logger.info(`Publishing catalog change events to ${settings.endpoints.map((e) => e.name).join(', ')}`);
      },
    });
  },
});
