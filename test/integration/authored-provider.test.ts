/**
 * The authored-entities provider against the Cosmos emulator and a real SQLite database, with a catalog connection
 * that records each mutation and can be told to fail — the failure paths a real Backstage does not show on demand:
 * a mutation the catalog refused is read again (its page is not lost), a restarted provider resumes at the stored
 * continuation, pages are one delta each. The whole path through a real Backstage: authored.test.ts.
 */
import type { Container, CosmosClient } from '@azure/cosmos';
import type { LoggerService } from '@backstage/backend-plugin-api';
import type { EntityProviderConnection, EntityProviderMutation } from '@backstage/plugin-catalog-node';
import knexFactory, { type Knex } from 'knex';
import { CosmosAuthoredEntityProvider } from '../../backstage/src/authored/CosmosAuthoredEntityProvider';
import { applyAuthoredMigrations, ProviderStateStore } from '../../backstage/src/authored/store';
import { provisionCosmos, testConfig } from '../support/stack';

const LOCATION = 'cosmosdb:emulator/test/authored';

class RecordingConnection implements EntityProviderConnection {
  readonly mutations: EntityProviderMutation[] = [];
  failNext = 0;

  applyMutation(mutation: EntityProviderMutation): Promise<void> {
    if (this.failNext > 0) {
      this.failNext -= 1;
      return Promise.reject(new Error('the catalog database is unavailable'));
    }
    this.mutations.push(mutation);
    return Promise.resolve();
  }

  refresh(): Promise<void> {
    return Promise.resolve();
  }

  /** What the deltas since `from` did: `+ref` added, `-ref` removed, in order. */
  deltas(from = 0): string[] {
    return this.mutations.slice(from).flatMap((m) =>
      m.type === 'delta' ? [...m.added.map((d) => `+${d.entity.metadata.name}`), ...m.removed.map((r) => `-${'entityRef' in r ? r.entityRef : r.entity.metadata.name}`)] : [],
    );
  }

  fulls(from = 0): string[][] {
    return this.mutations.slice(from).flatMap((m) => (m.type === 'full' ? [m.entities.map((d) => d.entity.metadata.name).sort()] : []));
  }
}

const logs: string[] = [];
const logger: LoggerService = {
  info: (message) => void logs.push(`info ${message}`),
  warn: (message) => void logs.push(`warn ${message}`),
  error: (message) => void logs.push(`error ${message}`),
  debug: () => undefined,
  child: () => logger,
};

let client: CosmosClient;
let container: Container;
let db: Knex;

beforeAll(async () => {
  const config = testConfig();
  client = await provisionCosmos(config);
  container = client.database(config.cosmos.databaseName).container(config.cosmos.authoredContainer);
  db = knexFactory({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true });
  await applyAuthoredMigrations(db);
});

afterAll(async () => {
  client?.dispose();
  await db?.destroy();
});

function provider(): CosmosAuthoredEntityProvider {
  return new CosmosAuthoredEntityProvider({ container, state: new ProviderStateStore(db, 'cosmos-authored'), logger, location: LOCATION, fullMutationIntervalInMs: 3_600_000, pageSize: 2 });
}

async function write(name: string, options: { deleted?: boolean } = {}): Promise<void> {
  const id = `component:default:${name}`;
  const identity = { id, entityRef: `Component:default/${name}`, kind: 'Component', namespace: 'default', name, authoredBy: { subject: 'test' }, updatedAt: new Date().toISOString() };
  const entity = { apiVersion: 'backstage.io/v1alpha1', kind: 'Component', metadata: { name }, spec: { type: 'service', lifecycle: 'production', owner: 'group:default/platform' } };
  await container.items.upsert(options.deleted ? { ...identity, deleted: true, ttl: 60 } : { ...identity, entity });
}

test('first run: what is there comes in one full mutation; then each page of the feed is one delta, in order', async () => {
  await write('before-1');
  await write('before-2');
  const connection = new RecordingConnection();
  const first = provider();
  await first.connect(connection);
  expect(await first.run()).toMatchObject({ full: { entities: 2, skipped: 0 }, delta: { pages: 0 } });
  expect(connection.fulls()).toEqual([['before-1', 'before-2']]);

  for (const name of ['a', 'b', 'c']) await write(name);
  await write('before-1', { deleted: true });
  const result = await first.run();
  expect(result).toMatchObject({ delta: { pages: 2, added: 3, removed: 1, skipped: 0 } });
  expect(result.full).toBeUndefined();
  expect(connection.deltas(1)).toEqual(['+a', '+b', '+c', '-component:default/before-1']);
  // Nothing new: nothing applied.
  const mutations = connection.mutations.length;
  expect(await first.run()).toMatchObject({ delta: { pages: 0 } });
  expect(connection.mutations.length).toBe(mutations);
});

test('a mutation the catalog refused is read again on the next run: its page is not lost', async () => {
  const connection = new RecordingConnection();
  const instance = provider();
  await instance.connect(connection);
  await instance.run(); // the full mutation after a start
  const mark = connection.mutations.length;
  await write('refused-once');
  connection.failNext = 1;
  await expect(instance.run()).rejects.toThrow('the catalog database is unavailable');
  await instance.run();
  expect(connection.deltas(mark)).toEqual(['+refused-once']);
});

test('a restarted provider resumes at the stored continuation, then applies a full mutation; a hard delete leaves with it', async () => {
  const before = new RecordingConnection();
  const running = provider();
  await running.connect(before);
  await running.run();
  await running.run();

  // Down: a new document, an edit, and one removed outright (never on the feed).
  await write('while-down');
  await write('a');
  await container.item('component:default:b', 'component:default:b').delete();

  const after = new RecordingConnection();
  const restarted = provider();
  await restarted.connect(after);
  const result = await restarted.run();
  expect(after.deltas()).toEqual(['+while-down', '+a']);
  expect(result.full?.entities).toBe(after.fulls()[0]?.length);
  expect(after.fulls()).toEqual([['a', 'before-2', 'c', 'refused-once', 'while-down']]);
});

test('a document that is not a valid entity is skipped and reported; the others in its page still go in', async () => {
  const connection = new RecordingConnection();
  const instance = provider();
  await instance.connect(connection);
  await instance.run();
  const mark = connection.mutations.length;
  await container.items.upsert({ id: 'component:default:broken', entityRef: 'Component:default/broken', entity: { kind: 'Component', metadata: { name: 'broken' } } });
  await write('fine');
  const result = await instance.run();
  expect(result.delta).toMatchObject({ added: 1, skipped: 1 });
  expect(connection.deltas(mark)).toEqual(['+fine']);
  expect(logs.filter((l) => l.startsWith('warn'))).toEqual([expect.stringMatching(/^warn Skipped authored document component:default:broken: not a valid entity: /)]);
});
