/**
 * The azd postprovision hook: catalog-info.yaml's entities with the deployment's facts as annotations — valid for the
 * catalog (its own entity policies), naming every data-plane role assignment Bicep makes with its actions and scope.
 */
import type { Entity } from '@backstage/catalog-model';
import { EntityPolicies, FieldFormatEntityPolicy, NoForeignRootFieldsEntityPolicy, SchemaValidEntityPolicy } from '@backstage/catalog-model';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { renderDeploymentCatalog, SOURCE } from '../../scripts/catalog-deployment';

const ACCOUNT = '/subscriptions/s/resourceGroups/rg-dev/providers/Microsoft.DocumentDB/databaseAccounts/cosmos-abc';
const NAMESPACE = '/subscriptions/s/resourceGroups/rg-dev/providers/Microsoft.ServiceBus/namespaces/sb-abc';
const env = {
  FUNCTION_APP_URL: 'https://func-sync-abc.azurewebsites.net',
  MANAGED_IDENTITY_CLIENT_ID: '11111111-1111-1111-1111-111111111111',
  MANAGED_IDENTITY_PRINCIPAL_ID: '22222222-2222-2222-2222-222222222222',
  COSMOS_ENDPOINT: 'https://cosmos-abc.documents.azure.com:443/',
  COSMOS_ACCOUNT_ID: ACCOUNT,
  COSMOS_DATABASE_NAME: 'catalog',
  SERVICEBUS_NAMESPACE: 'sb-abc.servicebus.windows.net',
  SERVICEBUS_NAMESPACE_ID: NAMESPACE,
  SERVICEBUS_QUEUE_NAME: 'entity-sync',
  PUBLIC_NETWORK_ACCESS: 'Disabled',
  BACKSTAGE_PRINCIPAL_ID: '33333333-3333-3333-3333-333333333333',
  MIRROR_READER_PRINCIPAL_IDS: '["44444444-4444-4444-4444-444444444444"]',
};

function render(values: Record<string, string | undefined>): Entity[] {
  const result = renderDeploymentCatalog(values);
  if (!('yaml' in result)) throw new Error(`missing ${result.missing.join(', ')}`);
  return parseAllDocuments(result.yaml).map((d) => d.toJS() as Entity);
}

const byName = (entities: Entity[], name: string, kind?: string) => entities.find((e) => e.metadata.name === name && (!kind || e.kind === kind))!;
const annotation = (entity: Entity, key: string) => entity.metadata.annotations?.[`backstage-cosmos-sync/${key}`];

test('every entity of catalog-info.yaml, valid for the catalog, with the deployment as annotations', async () => {
  const entities = render(env);
  expect(entities.map((e) => `${e.kind}:${e.metadata.name}`)).toEqual(
    parseAllDocuments(readFileSync(SOURCE, 'utf8')).map((d) => {
      const e = d.toJS() as Entity;
      return `${e.kind}:${e.metadata.name}`;
    }),
  );
  const policy = EntityPolicies.allOf([new SchemaValidEntityPolicy(), new FieldFormatEntityPolicy(), new NoForeignRootFieldsEntityPolicy()]);
  for (const entity of entities) await expect(policy.enforce(entity)).resolves.toBeDefined();

  const component = byName(entities, 'backstage-cosmos-sync', 'Component');
  expect(annotation(component, 'managed-identity-client-id')).toBe(env.MANAGED_IDENTITY_CLIENT_ID);
  expect(annotation(component, 'public-network-access')).toBe('Disabled');
  expect(annotation(byName(entities, 'backstage-cosmos-sync-api'), 'openapi-url')).toBe('https://func-sync-abc.azurewebsites.net/api/openapi.json');
  expect(byName(entities, 'backstage-cosmos-sync-cosmos').metadata.annotations).toMatchObject({
    'backstage-cosmos-sync/account-endpoint': env.COSMOS_ENDPOINT,
    'backstage-cosmos-sync/database': 'catalog',
    'backstage-cosmos-sync/public-network-access': 'Disabled',
  });
});

test('each container names who may do what on it, at its own scope; the queue likewise', () => {
  const entities = render(env);
  const assignments = (name: string) =>
    JSON.parse(annotation(byName(entities, name), 'role-assignments')!) as Array<{ principalId: string; role: string; dataActions: string[]; scope: string }>;
  const onEntities = assignments('backstage-cosmos-sync-entities');
  expect(onEntities.map((a) => [a.principalId, a.role])).toEqual([
    [env.MANAGED_IDENTITY_PRINCIPAL_ID, 'app-entities'],
    ['44444444-4444-4444-4444-444444444444', 'reader-entities'],
  ]);
  expect(onEntities[0]).toMatchObject({
    scope: `${ACCOUNT}/dbs/catalog/colls/entities`,
    dataActions: expect.arrayContaining(['Microsoft.DocumentDB/databaseAccounts/readMetadata', 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/replace']),
  });
  expect(onEntities[0]!.dataActions).not.toContain('Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/delete');
  expect(assignments('backstage-cosmos-sync-webhook-deliveries').map((a) => a.role)).toEqual(['app-webhook-deliveries']);
  expect(assignments('backstage-cosmos-sync-queue')).toEqual([
    { principalId: env.MANAGED_IDENTITY_PRINCIPAL_ID, role: 'Azure Service Bus Data Sender', dataActions: ['Microsoft.ServiceBus/*/send/action'], scope: `${NAMESPACE}/queues/entity-sync` },
    { principalId: env.MANAGED_IDENTITY_PRINCIPAL_ID, role: 'Azure Service Bus Data Receiver', dataActions: ['Microsoft.ServiceBus/*/receive/action'], scope: `${NAMESPACE}/queues/entity-sync` },
  ]);
});

test('without the values it needs, nothing is rendered and the missing names are given', () => {
  const { FUNCTION_APP_URL: _url, COSMOS_ACCOUNT_ID: _id, ...partial } = env;
  expect(renderDeploymentCatalog(partial)).toEqual({ missing: ['FUNCTION_APP_URL', 'COSMOS_ACCOUNT_ID'] });
});
