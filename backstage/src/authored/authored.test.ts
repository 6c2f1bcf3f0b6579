/**
 * The authored-entities provider's pure parts: its configuration (every problem named at start-up) and what one
 * document of the container means for the catalog.
 */
import { ConfigReader } from '@backstage/config';
import type { JsonObject } from '@backstage/types';
import { CosmosAuthoredConfigError, readCosmosAuthoredSettings } from './config';
import { decide, refOfDocumentId, type AuthoredDocument } from './documents';

const LOCATION = 'cosmosdb:acct.documents.azure.com/catalog/authored';

function read(section: JsonObject) {
  return readCosmosAuthoredSettings(new ConfigReader({ catalog: { providers: { cosmosAuthored: section } } }));
}

function problems(section: JsonObject): string[] {
  try {
    read(section);
  } catch (error) {
    if (error instanceof CosmosAuthoredConfigError) return error.problems;
    throw error;
  }
  return [];
}

test('without the section there is no provider', () => {
  expect(readCosmosAuthoredSettings(new ConfigReader({ catalog: {} }))).toBeUndefined();
});

test('defaults: the authored container, workload-or-managed identity, the feed every 2 s, a full mutation every 30 min', () => {
  expect(read({ endpoint: 'https://acct.documents.azure.com:443/', database: 'catalog' })).toEqual({
    endpoint: 'https://acct.documents.azure.com:443/',
    database: 'catalog',
    container: 'authored',
    credential: 'workload-or-managed',
    schedule: { frequency: { seconds: 2 }, timeout: { minutes: 5 }, initialDelay: { seconds: 1 } },
    fullMutationIntervalInMs: 1_800_000,
    pageSize: 100,
    // The default https port is not part of the location: the authoring API computes the same from its endpoint.
    location: LOCATION,
  });
});

test('settings are read, and every bad one is named', () => {
  const settings = read({
    endpoint: 'https://acct.documents.azure.com/',
    database: 'catalog',
    container: 'entities-authored',
    clientId: 'backstage-mi',
    credential: 'default',
    schedule: { frequency: { seconds: 5 }, timeout: { minutes: 1 } },
    fullMutationInterval: '10m',
    pageSize: 500,
  });
  expect(settings).toMatchObject({ container: 'entities-authored', clientId: 'backstage-mi', credential: 'default', fullMutationIntervalInMs: 600_000, pageSize: 500 });
  expect(settings?.schedule.frequency).toEqual({ seconds: 5 });

  expect(problems({ endpoint: 'http://acct.documents.azure.com/', database: 'my db', credential: 'secret', fullMutationInterval: '10s', pageSize: 0 })).toEqual([
    'catalog.providers.cosmosAuthored.endpoint: must be https (Entra tokens are sent over TLS only)',
    'catalog.providers.cosmosAuthored.database: letters, digits, "_" and "-" only, at most 255',
    "catalog.providers.cosmosAuthored.credential: must be 'workload-or-managed' (the default) or 'default' (DefaultAzureCredential, e.g. a developer's sign-in)",
    'catalog.providers.cosmosAuthored.fullMutationInterval: must be a duration of at least one minute',
    'catalog.providers.cosmosAuthored.pageSize: must be a whole number from 1 to 1000',
  ]);
  expect(problems({ database: 'catalog' })).toEqual([expect.stringMatching(/^catalog\.providers\.cosmosAuthored\.endpoint: /)]);
  expect(problems({ endpoint: 'not a url', database: 'catalog' })).toEqual([expect.stringMatching(/endpoint: must be an absolute https URL/)]);
});

const component = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: { name, annotations: { 'example.com/team': 'platform' } as Record<string, string> },
  spec: { type: 'service', lifecycle: 'production', owner: 'group:default/platform' },
  ...extra,
});

function doc(id: string, entity: unknown, extra: Partial<AuthoredDocument> = {}): AuthoredDocument {
  return { id, entity, ...extra };
}

test('a live document is an entity with the provider location, without what Backstage computes', async () => {
  const decision = await decide(doc('component:default:svc', { ...component('svc'), relations: [{ type: 'ownedBy', targetRef: 'group:default/x' }], status: {} }), LOCATION);
  expect(decision).toEqual({
    type: 'add',
    id: 'component:default:svc',
    entityRef: 'component:default/svc',
    entity: {
      apiVersion: 'backstage.io/v1alpha1',
      kind: 'Component',
      metadata: {
        name: 'svc',
        annotations: { 'example.com/team': 'platform', 'backstage.io/managed-by-location': LOCATION, 'backstage.io/managed-by-origin-location': LOCATION },
      },
      spec: { type: 'service', lifecycle: 'production', owner: 'group:default/platform' },
    },
  });
  // The author's own location annotations never win over the provider's.
  const claimed = component('claimed');
  claimed.metadata.annotations['backstage.io/managed-by-location'] = 'url:https://elsewhere.example.com/catalog-info.yaml';
  const taken = await decide(doc('component:default:claimed', claimed), LOCATION);
  expect(taken.type === 'add' && taken.entity.metadata.annotations?.['backstage.io/managed-by-location']).toBe(LOCATION);
});

test('a soft-deleted document removes its entity, named by its id', async () => {
  expect(await decide(doc('component:team-a:old-svc', undefined, { deleted: true }), LOCATION)).toEqual({ type: 'remove', id: 'component:team-a:old-svc', entityRef: 'component:team-a/old-svc' });
});

test('documents that are not valid entities are skipped, each with its reason', async () => {
  const skipped = async (document: AuthoredDocument) => {
    const decision = await decide(document, LOCATION);
    return decision.type === 'skip' ? decision.reason : `not skipped: ${decision.type}`;
  };
  expect(await skipped(doc('Component:default:svc', component('svc')))).toBe('the id is not a lower-case kind:namespace:name');
  expect(await skipped(doc('component:default', component('svc')))).toBe('the id is not a lower-case kind:namespace:name');
  expect(await skipped(doc('component:default:svc', undefined))).toBe('the document has no entity object');
  expect(await skipped(doc('component:default:svc', [component('svc')]))).toBe('the document has no entity object');
  expect(await skipped(doc('component:default:svc', component('other')))).toBe('the entity is component:default/other, the id names component:default/svc');
  expect(await skipped(doc('component:default:svc', { ...component('svc'), spec: { type: 'service' } }))).toMatch(/^not a valid entity: /);
  expect(await skipped(doc('component:default:bad_name!', component('bad_name!')))).toMatch(/^not a valid entity: .*metadata\.name/);
  expect(await skipped(doc('component:default:svc', { ...component('svc'), extra: true }))).toMatch(/^not a valid entity: /);
  expect(await skipped(doc('component:default:svc', { kind: 'Component', metadata: { name: 'svc' } }))).toMatch(/^not a valid entity: /);
});

test('document ids map to catalog refs', () => {
  expect(refOfDocumentId('api:default:orders')).toBe('api:default/orders');
  expect(refOfDocumentId('api:default/orders')).toBeUndefined();
  expect(refOfDocumentId('API:default:orders')).toBeUndefined();
  expect(refOfDocumentId('api::orders')).toBeUndefined();
});
