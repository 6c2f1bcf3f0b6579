/**
 * Entry point of the local Backstage stand-in: a real catalog backend from npm.
 * Started as a child process by `startBackstage()` (see ./index.ts) with `--config <app-config.yaml>`;
 * the config (port, database, trust of the local identity issuer) is written by the caller. Besides the catalog and
 * the change-events module it has two small modules of its own: runtime `file` locations (below) and a provider that
 * loads a whole catalog file in one mutation (./bulk-provider.ts).
 */
import { createBackend } from '@backstage/backend-defaults';
import { createBackendModule } from '@backstage/backend-plugin-api';
import { catalogLocationsExtensionPoint } from '@backstage/plugin-catalog-node';
import catalogPlugin from '@backstage/plugin-catalog-backend';
// The change-events module this repository ships (idle unless `catalog.changeEvents` is configured).
import changeEventsModule from '../../backstage/src';
import { catalogFileProviderModule } from './bulk-provider';

/** Lets tests and the dev stack register `file` locations at runtime (POST /locations). */
const fileLocations = createBackendModule({
  pluginId: 'catalog',
  moduleId: 'local-file-locations',
  register(env) {
    env.registerInit({
      deps: { locations: catalogLocationsExtensionPoint },
      init({ locations }) {
        locations.setAllowedLocationTypes(['url', 'file']);
        return Promise.resolve();
      },
    });
  },
});

const backend = createBackend();
backend.add(catalogPlugin);
backend.add(fileLocations);
backend.add(catalogFileProviderModule);
backend.add(changeEventsModule);
backend.start().catch((error: unknown) => {
  console.error('Backstage stand-in failed to start', error);
  process.exit(1);
});
