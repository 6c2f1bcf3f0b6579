/**
 * The local Cosmos emulator's change feed and single-partition queries (patched; see patches/), driven through the real `@azure/cosmos`
 * change-feed iterator with Entra auth over TLS, as the Cosmos DB trigger reads it.
 */
import { ChangeFeedStartFrom, StatusCodes, type Container, type CosmosClient } from '@azure/cosmos';
import { provisionerCredential } from '../../local/cosmos-setup';
import { createCosmosClient } from '../../shared/platform/cosmos';
import { identityAdmin, testConfig, uniqueName } from '../support/stack';

let client: CosmosClient;
let container: Container;

beforeAll(async () => {
  const config = testConfig();
  // The emulator's own behaviour, on scratch containers: as the deployer, whom the stand-in does not hold to the app's roles.
  client = createCosmosClient(config.cosmos, provisionerCredential((o) => identityAdmin().mint(o)), { mode: 'local' });
  const { database } = await client.databases.createIfNotExists({ id: config.cosmos.databaseName });
  ({ container } = await database.containers.createIfNotExists({ id: uniqueName('feed'), partitionKey: { paths: ['/id'] } }));
});
afterAll(() => client?.dispose());

const ids = (docs: Array<{ id: string }>) => docs.map((d) => d.id);

test('from the beginning: everything, in write order, paged by maxItemCount; then 304 until something changes', async () => {
  for (const id of ['a', 'b', 'c']) await container.items.create({ id, v: 1 });
  const feed = container.items.getChangeFeedIterator<{ id: string; v: number }>({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning(), maxItemCount: 2 });
  const first = await feed.readNext();
  expect(first.statusCode).toBe(StatusCodes.Ok);
  expect(ids(first.result)).toEqual(['a', 'b']);
  expect(ids((await feed.readNext()).result)).toEqual(['c']);
  const idle = await feed.readNext();
  expect(idle.statusCode).toBe(StatusCodes.NotModified);
  expect(idle.result).toEqual([]);

  // Updates and inserts after the continuation arrive in order; an updated document comes once, in its latest version.
  await container.item('b', 'b').replace({ id: 'b', v: 2 });
  await container.items.create({ id: 'd', v: 1 });
  await container.item('a', 'a').replace({ id: 'a', v: 2 });
  await container.item('a', 'a').replace({ id: 'a', v: 3 });
  const changed = await feed.readNext();
  expect(changed.result.map((d) => [d.id, d.v])).toEqual([['b', 2], ['d', 1]]);
  expect((await feed.readNext()).result.map((d) => [d.id, d.v])).toEqual([['a', 3]]);
  expect((await feed.readNext()).statusCode).toBe(StatusCodes.NotModified);
});

test('a saved continuation resumes exactly where it left off', async () => {
  const feed = container.items.getChangeFeedIterator({ changeFeedStartFrom: ChangeFeedStartFrom.Beginning(), maxItemCount: 100 });
  let token: string | undefined;
  for (;;) {
    const page = await feed.readNext();
    token = page.continuationToken;
    if (page.statusCode === StatusCodes.NotModified) break;
  }
  await container.items.create({ id: 'e', v: 1 });
  const resumed = container.items.getChangeFeedIterator<{ id: string }>({ changeFeedStartFrom: ChangeFeedStartFrom.Continuation(token) });
  expect(ids((await resumed.readNext()).result)).toEqual(['e']);
});

test('from now: only later changes', async () => {
  const feed = container.items.getChangeFeedIterator<{ id: string }>({ changeFeedStartFrom: ChangeFeedStartFrom.Now() });
  expect((await feed.readNext()).statusCode).toBe(StatusCodes.NotModified);
  await container.items.upsert({ id: 'f', v: 1 });
  await container.item('c', 'c').replace({ id: 'c', v: 9 });
  expect(ids((await feed.readNext()).result)).toEqual(['f', 'c']);
});

test('bulk writes appear in the feed too', async () => {
  const feed = container.items.getChangeFeedIterator<{ id: string }>({ changeFeedStartFrom: ChangeFeedStartFrom.Now() });
  await feed.readNext();
  await container.items.executeBulkOperations([
    { operationType: 'Create', partitionKey: 'g', resourceBody: { id: 'g' } },
    { operationType: 'Upsert', partitionKey: 'h', resourceBody: { id: 'h' } },
  ]);
  expect(ids((await feed.readNext()).result)).toEqual(['g', 'h']);
});

test('a single-partition query reads its partition only, through replaces and deletes (patched, as Cosmos DB routes it)', async () => {
  const { database } = await client.databases.createIfNotExists({ id: testConfig().cosmos.databaseName });
  const { container: bySource } = await database.containers.createIfNotExists({ id: uniqueName('partitioned'), partitionKey: { paths: ['/source'] } });
  for (const [id, source] of [['e1', 's1'], ['e2', 's1'], ['e3', 's2']] as const) await bySource.items.create({ id, source, v: 1 });
  const inPartition = async (source: string) =>
    (await bySource.items.query<{ id: string }>('SELECT * FROM c', { partitionKey: source }).fetchAll()).resources.map((d) => d.id).sort();
  expect(await inPartition('s1')).toEqual(['e1', 'e2']);
  expect(await inPartition('s2')).toEqual(['e3']);
  await bySource.item('e1', 's1').replace({ id: 'e1', source: 's1', v: 2 });
  await bySource.item('e2', 's1').delete();
  expect(await inPartition('s1')).toEqual(['e1']);
  expect(await inPartition('none')).toEqual([]);
  // Without a partition key, a cross-partition query still sees every partition.
  const all = await bySource.items.query<{ id: string }>('SELECT * FROM c').fetchAll();
  expect(all.resources.map((d) => d.id).sort()).toEqual(['e1', 'e3']);
  // A WHERE clause that pins the partition key reads only those partitions — and still finds everything it should.
  const ids = async (query: string, parameters: Array<{ name: string; value: string | number | string[] }>) =>
    (await bySource.items.query<{ id: string }>({ query, parameters }).fetchAll()).resources.map((d) => d.id).sort();
  expect(await ids('SELECT * FROM c WHERE c.source IN (@a, @b) AND c.v >= @v', [{ name: '@a', value: 's1' }, { name: '@b', value: 's2' }, { name: '@v', value: 1 }])).toEqual(['e1', 'e3']);
  expect(await ids('SELECT * FROM c WHERE c.source = @a AND c.v = @v', [{ name: '@a', value: 's1' }, { name: '@v', value: 2 }])).toEqual(['e1']);
  expect(await ids('SELECT * FROM c WHERE c.source = @a OR c.id = @b', [{ name: '@a', value: 's1' }, { name: '@b', value: 'e3' }])).toEqual(['e1', 'e3']);
  expect(await ids('SELECT * FROM c WHERE NOT (c.v = @v AND c.source = @a)', [{ name: '@a', value: 's1' }, { name: '@v', value: 2 }])).toEqual(['e3']);
});
