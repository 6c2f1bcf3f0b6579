/**
 * The Cosmos DB roles of infra/app/cosmos-roles.json, enforced by the local stand-in the way Cosmos DB enforces
 * data-plane RBAC: each principal may do exactly what its roles grant, on their containers, and is refused anything
 * else with 403 (substatus 5301) naming the principal, the action and the resource. (Every other integration test runs
 * the app as the `app` principal under the same rules, so a data action the code needs and the roles lack fails there.)
 */
import * as https from 'node:https';
import { CosmosClient, type Container, type OperationInput } from '@azure/cosmos';
import { startCosmosEmulator, type CosmosEmulator } from '../../local/cosmos';
import { ensureCosmosResources, provisionerCredential } from '../../local/cosmos-setup';
import { loadCosmosRoles } from '../../local/cosmos-rbac';
import { identityAdmin, uniqueName } from '../support/stack';
import { EntityStore } from '../../shared/sync/entity-store';
import type { LiveEntityDocument } from '../../shared/model/documents';

const DATABASE = 'catalog';
const NAMES = { databaseName: DATABASE, entitiesContainer: 'entities', edgesContainer: 'edges', leasesContainer: 'leases', deliveriesContainer: 'webhook-deliveries', authoredContainer: 'authored', historyContainer: 'history', runsContainer: 'maintenance-runs' };
let emulator: CosmosEmulator;
const clients: CosmosClient[] = [];

function clientAs(mint: (o: { audience: string; subject: string }) => Promise<string>, subject?: string): CosmosClient {
  const client = new CosmosClient({
    endpoint: emulator.endpoint,
    aadCredentials: subject === undefined ? provisionerCredential(mint) : {
      getToken: async (scopes: string | string[]) => {
        const scope = Array.isArray(scopes) ? scopes[0]! : scopes;
        return { token: await mint({ audience: scope.replace(/\/\.default$/, ''), subject }), expiresOnTimestamp: Date.now() + 3600_000 };
      },
    },
    agent: new https.Agent({ ca: emulator.certificatePem }),
    connectionPolicy: { enableEndpointDiscovery: false },
  });
  clients.push(client);
  return client;
}

const mint = (o: { audience: string; subject: string }) => identityAdmin().mint(o);
const as = (kind: string) => {
  const principal = uniqueName(kind);
  emulator.rbac.assign(principal, kind);
  const database = clientAs(mint, principal).database(DATABASE);
  return { principal, container: (id: string) => database.container(id) };
};

/** The status and message of a refused call, or 'ok'. */
async function outcome(call: () => Promise<unknown>): Promise<'ok' | { status: number; message: string }> {
  try {
    await call();
    return 'ok';
  } catch (error) {
    const e = error as { code?: number; message?: string };
    return { status: e.code ?? 0, message: e.message ?? '' };
  }
}

const refused = (principal: string, action: string, container: string) => ({
  status: 403,
  message: expect.stringContaining(`principal [${principal}] does not have required RBAC permissions to perform action [${action}] on resource [dbs/${DATABASE}/colls/${container}]`),
});
const items = (verb: string) => `Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/${verb}`;
const query = (container: Container) => container.items.query('SELECT * FROM c').fetchAll();

beforeAll(async () => {
  emulator = await startCosmosEmulator();
  const admin = clientAs(mint);
  await ensureCosmosResources(admin, NAMES);
  await admin.database(DATABASE).containers.createIfNotExists({ id: 'authored', partitionKey: { paths: ['/id'] } });
  await admin.database(DATABASE).container('authored').items.create({ id: 'component:default:authored-one' });
  await admin.database(DATABASE).container('entities').items.create({ id: 'component:default:web' });
});

afterAll(async () => {
  for (const client of clients) client.dispose();
  await emulator?.close();
});

test('the roles file names only containers and kinds the stand-in can enforce', () => {
  expect(new Set(loadCosmosRoles().map((r) => r.principal))).toEqual(new Set(['app', 'backstage', 'readers', 'authors']));
});

test('app: creates and replaces mirror documents but never deletes one; cannot create a container', async () => {
  const app = as('app');
  const entities = app.container('entities');
  expect(await outcome(() => entities.items.create({ id: 'component:default:new' }))).toBe('ok');
  expect(await outcome(() => entities.item('component:default:new', 'component:default:new').replace({ id: 'component:default:new', v: 2 }))).toBe('ok');
  expect(await outcome(() => query(entities))).toBe('ok');
  expect(await outcome(() => entities.item('component:default:new', 'component:default:new').delete())).toEqual(refused(app.principal, items('delete'), 'entities'));
  expect(await outcome(() => entities.items.upsert({ id: 'component:default:new' }))).toEqual(refused(app.principal, items('upsert'), 'entities'));
  // Edges: upsert and delete; the replay guard: create and delete, no reads.
  expect(await outcome(() => app.container('edges').items.upsert({ id: 'e1', source: 'component:default:new' }))).toBe('ok');
  expect(await outcome(() => app.container('edges').item('e1', 'component:default:new').delete())).toBe('ok');
  expect(await outcome(() => app.container('webhook-deliveries').items.create({ id: 'msg_1', ttl: 60 }))).toBe('ok');
  expect(await outcome(() => app.container('webhook-deliveries').item('msg_1', 'msg_1').read())).toEqual(refused(app.principal, items('read'), 'webhook-deliveries'));
  // The authored container: read, create and replace (the authoring API); never a delete, no container management.
  const authored = app.container('authored');
  expect(await outcome(() => authored.item('component:default:authored-one', 'component:default:authored-one').read())).toBe('ok');
  expect(await outcome(() => authored.items.create({ id: 'component:default:authored-two' }))).toBe('ok');
  expect(await outcome(() => authored.item('component:default:authored-two', 'component:default:authored-two').replace({ id: 'component:default:authored-two', deleted: true }))).toBe('ok');
  expect(await outcome(() => authored.item('component:default:authored-two', 'component:default:authored-two').delete())).toEqual(refused(app.principal, items('delete'), 'authored'));
  expect(await outcome(() => clientAs(mint, app.principal).database(DATABASE).containers.create({ id: 'sneaky', partitionKey: { paths: ['/id'] } }))).toMatchObject({ status: 403 });
});

test("app: a bulk call needs the action of every operation in it", async () => {
  const app = as('app');
  const bulk = async (container: string, operations: OperationInput[]) => {
    try {
      const results = await app.container(container).items.executeBulkOperations(operations);
      return results.map((r) => r.response?.statusCode ?? r.error?.code);
    } catch (error) {
      return { status: (error as { code?: number }).code ?? 0, message: (error as Error).message };
    }
  };
  // The mirror: creates and conditional replaces go through; a delete among them refuses the call.
  expect(await bulk('entities', [
    { operationType: 'Create', partitionKey: 'component:default:bulk-1', resourceBody: { id: 'component:default:bulk-1' } },
    { operationType: 'Replace', id: 'component:default:web', partitionKey: 'component:default:web', resourceBody: { id: 'component:default:web', v: 2 } },
  ])).toEqual([201, 200]);
  const withDelete = await bulk('entities', [
    { operationType: 'Create', partitionKey: 'component:default:bulk-2', resourceBody: { id: 'component:default:bulk-2' } },
    { operationType: 'Delete', id: 'component:default:bulk-1', partitionKey: 'component:default:bulk-1' },
  ]);
  expect(JSON.stringify(withDelete)).toContain('403');
  expect(emulator.rbac.denials().filter((d) => d.principal === app.principal).map((d) => d.action)).toEqual([items('delete')]);
  // Nothing of the refused call was applied.
  expect(await outcome(() => app.container('entities').item('component:default:bulk-2', 'component:default:bulk-2').read().then((r) => r.statusCode === 404 || Promise.reject(new Error('applied'))))).toBe('ok');
  // History records are created, never replaced.
  expect(await bulk('history', [{ operationType: 'Create', partitionKey: 'component:default:web', resourceBody: { id: 'r1', entityId: 'component:default:web' } }])).toEqual([201]);
  expect(JSON.stringify(await bulk('history', [{ operationType: 'Replace', id: 'r1', partitionKey: 'component:default:web', resourceBody: { id: 'r1', entityId: 'component:default:web' } }]))).toContain('403');
});

test('backstage: reads the authored container, writes nothing, sees nothing of the mirror', async () => {
  const backstage = as('backstage');
  const authored = backstage.container('authored');
  expect(await outcome(() => authored.item('component:default:authored-one', 'component:default:authored-one').read())).toBe('ok');
  expect(await outcome(() => query(authored))).toBe('ok');
  expect(await outcome(() => authored.items.create({ id: 'component:default:forged' }))).toEqual(refused(backstage.principal, items('create'), 'authored'));
  expect(await outcome(() => query(backstage.container('entities')))).toEqual(
    refused(backstage.principal, 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/executeQuery', 'entities'),
  );
});

test('readers: read and query the mirror, write nothing, see nothing else', async () => {
  const reader = as('readers');
  expect(await outcome(() => reader.container('entities').item('component:default:web', 'component:default:web').read())).toBe('ok');
  expect(await outcome(() => query(reader.container('edges')))).toBe('ok');
  expect(await outcome(() => reader.container('entities').items.create({ id: 'component:default:forged' }))).toEqual(refused(reader.principal, items('create'), 'entities'));
  expect(await outcome(() => query(reader.container('leases')))).toEqual(
    refused(reader.principal, 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/executeQuery', 'leases'),
  );
  expect(new Set(emulator.rbac.denials().filter((d) => d.principal === reader.principal).map((d) => `${d.action} ${d.resource}`)).size).toBe(2);
});

test('a store\'s batch write the identity may not make comes back 403 at once, naming the action, and is not sent again', async () => {
  // The SDK's items.bulk rethrows a refused batch request without its status; the store finds it out with one point write.
  const reader = as('readers');
  const store = new EntityStore(reader.container('entities'), { throttleRetry: { maxRetries: 3, baseDelayInMs: 1, maxDelayInMs: 5 } });
  const doc = (name: string) => ({ id: `component:default:${name}` }) as LiveEntityDocument;
  const outcomes = await store.writeMany([{ kind: 'create', doc: doc('refused-1') }, { kind: 'create', doc: doc('refused-2') }], { bulk: true });
  expect(outcomes.map((o) => o.statusCode)).toEqual([403, 403]);
  expect(outcomes.every((o) => o.error?.transient === false)).toBe(true);
  const cause = (outcomes[0]!.error as Error & { cause?: Error }).cause;
  expect(cause?.message).toContain(`principal [${reader.principal}] does not have required RBAC permissions to perform action [${items('create')}]`);
  // One batch request and the one point write that told its status: no rounds of retries.
  expect(emulator.rbac.denials().filter((d) => d.principal === reader.principal)).toHaveLength(2);

  // An identity that may write: the same path writes the batch.
  const app = as('app');
  const written = await new EntityStore(app.container('entities'), { throttleRetry: { maxRetries: 3, baseDelayInMs: 1, maxDelayInMs: 5 } }).writeMany(
    [{ kind: 'create', doc: doc('allowed-1') }, { kind: 'create', doc: doc('allowed-2') }],
    { bulk: true },
  );
  expect(written.map((o) => o.statusCode)).toEqual([201, 201]);
});
