/**
 * Backstage catalog modules of backstage-cosmos-sync:
 * - `catalogModuleChangeEvents` publishes catalog entity changes as authenticated CloudEvents (`catalog.changeEvents`);
 * - `catalogModuleCosmosAuthored` brings entities authored in Cosmos DB into the catalog (`catalog.providers.cosmosAuthored`).
 * The default export installs both; each stays idle unless its configuration is there.
 *
 * @packageDocumentation
 */
import { createBackendFeatureLoader } from '@backstage/backend-plugin-api';
import { catalogModuleCosmosAuthored } from './authored/module';
import { catalogModuleChangeEvents } from './module';

export default createBackendFeatureLoader({
  loader: () => [catalogModuleChangeEvents, catalogModuleCosmosAuthored],
});
export { catalogModuleChangeEvents, TASK_ID } from './module';
export { ChangeEventsEngine, EVENT_TYPES, type CatalogEvent, type DiffResult, type DeliveryResult } from './ChangeEventsEngine';
export { readChangeEventsSettings, ChangeEventsConfigError, type ChangeEventsSettings, type EndpointSettings } from './config';
export { EndpointClient, createEndpointClients, backendCredential, type CredentialChoice } from './delivery';
export { createMetrics, type ChangeEventsMetrics } from './metrics';
export { applyMigrations, TABLES } from './store';
export { catalogModuleCosmosAuthored, AUTHORED_TASK_ID } from './authored/module';
export { CosmosAuthoredEntityProvider, PROVIDER_NAME, type CosmosAuthoredEntityProviderOptions, type RunResult } from './authored/CosmosAuthoredEntityProvider';
export { readCosmosAuthoredSettings, authoredLocation, CosmosAuthoredConfigError, type CosmosAuthoredSettings } from './authored/config';
export { decide as decideAuthoredDocument, refOfDocumentId, type AuthoredDocument, type Decision } from './authored/documents';
export { applyAuthoredMigrations, ProviderStateStore, STATE_TABLE } from './authored/store';
