/**
 * Creates the database and containers the way infrastructure declares them in Azure. Production never
 * runs this (data-plane RBAC cannot create containers); local stacks and tests do.
 */
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import type { CosmosClient } from '@azure/cosmos';
import type { CosmosConfig } from '../shared/platform/config';

/**
 * The principal that creates databases and containers locally, standing in for the deployer and ARM: the Cosmos
 * stand-in restricts the app's identity to its data-plane roles, and gives principals it was not told about full access.
 */
export const PROVISIONER_OBJECT_ID = 'local-provisioner';

/** A credential whose tokens name the provisioner, minted by the local issuer. */
export function provisionerCredential(mint: (options: { audience: string; subject: string }) => Promise<string>): TokenCredential {
  return principalCredential(mint, PROVISIONER_OBJECT_ID);
}

/** A credential whose tokens name `objectId` (e.g. a producer held to its roles by the Cosmos stand-in). */
export function principalCredential(mint: (options: { audience: string; subject: string }) => Promise<string>, objectId: string): TokenCredential {
  return {
    async getToken(scopes: string | string[]): Promise<AccessToken> {
      const scope = Array.isArray(scopes) ? scopes[0]! : scopes;
      const token = await mint({ audience: scope.replace(/\/\.default$/, ''), subject: objectId });
      return { token, expiresOnTimestamp: Date.now() + 3600_000 };
    },
  };
}

export async function ensureCosmosResources(
  client: CosmosClient,
  config: Pick<CosmosConfig, 'databaseName' | 'entitiesContainer' | 'edgesContainer' | 'leasesContainer' | 'deliveriesContainer' | 'authoredContainer' | 'historyContainer' | 'runsContainer'>,
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
  await database.containers.createIfNotExists({ id: config.authoredContainer, partitionKey: { paths: ['/id'] }, defaultTtl: -1 });
  await database.containers.createIfNotExists({ id: config.historyContainer, partitionKey: { paths: ['/entityId'] }, defaultTtl: -1 });
  await database.containers.createIfNotExists({ id: config.runsContainer, partitionKey: { paths: ['/id'] }, defaultTtl: -1 });
}
