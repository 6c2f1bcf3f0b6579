/**
 * The raw Cosmos containers of a runtime, for tests that inspect or tamper with what is stored (the app itself
 * reaches each container only through the store that owns it).
 */
import type { Container } from '@azure/cosmos';
import type { Runtime } from '../../shared/runtime';

export function rawContainers(runtime: Pick<Runtime, 'cosmosClient' | 'config'>): { entities: Container; edges: Container; leases: Container } {
  const { databaseName, entitiesContainer, edgesContainer, leasesContainer } = runtime.config.cosmos;
  const database = runtime.cosmosClient.database(databaseName);
  return { entities: database.container(entitiesContainer), edges: database.container(edgesContainer), leases: database.container(leasesContainer) };
}
