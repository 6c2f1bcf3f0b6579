/**
 * The raw Cosmos containers of a test's database, for tests that inspect or tamper with what is stored. They are
 * reached as the deployer (the local provisioner), not as the app: the app's identity may only do what its roles allow,
 * and reaches each container only through the store that owns it.
 */
import type { Container, CosmosClient } from '@azure/cosmos';
import { provisionerCredential } from '../../local/cosmos-setup';
import type { AppConfig } from '../../shared/platform/config';
import { createCosmosClient } from '../../shared/platform/cosmos';
import { identityAdmin } from './stack';

const clients = new Map<string, CosmosClient>();
// Imported by test files only: their clients go when the file's tests are done.
afterAll(() => {
  for (const client of clients.values()) client.dispose();
  clients.clear();
});

export function rawContainers(runtime: { config: Pick<AppConfig, 'cosmos' | 'mode'> }): { entities: Container; edges: Container; leases: Container; deliveries: Container } {
  const { cosmos, mode } = runtime.config;
  let client = clients.get(cosmos.endpoint);
  if (!client) {
    client = createCosmosClient(cosmos, provisionerCredential((o) => identityAdmin().mint(o)), { mode });
    clients.set(cosmos.endpoint, client);
  }
  const database = client.database(cosmos.databaseName);
  return {
    entities: database.container(cosmos.entitiesContainer),
    edges: database.container(cosmos.edgesContainer),
    leases: database.container(cosmos.leasesContainer),
    deliveries: database.container(cosmos.deliveriesContainer),
  };
}
