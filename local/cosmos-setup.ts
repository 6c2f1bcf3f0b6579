/**
 * Creates the database and containers the way infrastructure declares them in Azure. Production never
 * runs this (data-plane RBAC cannot create containers); local stacks and tests do.
 */
import type { CosmosClient } from '@azure/cosmos';
import type { CosmosConfig } from '../shared/platform/config';

export async function ensureCosmosResources(
  client: CosmosClient,
  config: Pick<CosmosConfig, 'databaseName' | 'entitiesContainer' | 'edgesContainer' | 'leasesContainer' | 'deliveriesContainer'>,
): Promise<void> {
  const { database } = await client.databases.createIfNotExists({ id: config.databaseName });
  await database.containers.createIfNotExists({
    id: config.entitiesContainer,
    partitionKey: { paths: ['/id'] },
    defaultTtl: -1, // TTL on, per document: tombstones carry their own `ttl`
    indexingPolicy: {
      indexingMode: 'consistent',
      includedPaths: [{ path: '/*' }],
      excludedPaths: [{ path: '/entity/*' }, { path: '/"_etag"/?' }],
    },
  });
  await database.containers.createIfNotExists({ id: config.edgesContainer, partitionKey: { paths: ['/source'] } });
  await database.containers.createIfNotExists({ id: config.leasesContainer, partitionKey: { paths: ['/id'] } });
  await database.containers.createIfNotExists({ id: config.deliveriesContainer, partitionKey: { paths: ['/id'] }, defaultTtl: -1 });
}
