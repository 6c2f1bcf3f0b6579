/**
 * Change detection from the catalog's publication generations, against the real catalog backend
 * (`@backstage/plugin-catalog-backend` in a test backend, entities from an entity provider, processed and stitched
 * into its SQLite database). The engine reads that database as the module does in a deployment; its full diff sees
 * the catalog through a catalog service over the same stitched entities. The clock is the test's, so which run is a
 * full diff and which reads generations is decided by the test, not by the machine's speed.
 */
import { createBackendModule } from '@backstage/backend-plugin-api';
import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import type { Entity } from '@backstage/catalog-model';
import { catalogProcessingExtensionPoint, type EntityProviderConnection } from '@backstage/plugin-catalog-node';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import catalogPlugin from '@backstage/plugin-catalog-backend';
import knexFactory, { type Knex } from 'knex';
import { ChangeEventsEngine, EXCLUDE_ANNOTATION, type CatalogEvent, type DiffResult } from './ChangeEventsEngine';
import type { ChangeEventsSettings } from './config';
import type { EndpointClient } from './delivery';
import { createMetrics } from './metrics';
import { CatalogGenerations } from './generations';
import { applyMigrations } from './store';

jest.setTimeout(60_000);

const LOCATION = 'test-provider:generations';

function component(name: string, description: string, annotations: Record<string, string> = {}): Entity {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: {
      name,
      description,
      annotations: { 'backstage.io/managed-by-location': LOCATION, 'backstage.io/managed-by-origin-location': LOCATION, ...annotations },
    },
    spec: { type: 'service', lifecycle: 'production', owner: 'team-a' },
  };
}

let knex: Knex;
let backend: Awaited<ReturnType<typeof startTestBackend>>;
let connection: EntityProviderConnection;

beforeAll(async () => {
  knex = knexFactory({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true, pool: { min: 1, max: 1 } });
  const provider = createBackendModule({
    pluginId: 'catalog',
    moduleId: 'generations-test-provider',
    register(env) {
      env.registerInit({
        deps: { catalog: catalogProcessingExtensionPoint },
        async init({ catalog }) {
          catalog.addEntityProvider({ getProviderName: () => 'generations-test', connect: async (c) => void (connection = c) });
        },
      });
    },
  });
  backend = await startTestBackend({
    features: [
      catalogPlugin,
      provider,
      mockServices.database.factory({ knex }),
      mockServices.rootConfig.factory({ data: { catalog: { rules: [{ allow: ['Component'] }] } } }),
    ],
  });
  await applyMigrations(knex);
});

afterAll(async () => {
  await backend?.stop();
  await knex?.destroy();
});

/** The stitched entities, as the catalog API would answer them. */
async function stitched(): Promise<Array<{ ref: string; generation: number; entity: Entity }>> {
  const rows = await knex<{ entity_ref: string; generation: number; final_entity: string }>('final_entities').whereNotNull('final_entity').select('entity_ref', 'generation', 'final_entity');
  return rows.map((r) => ({ ref: r.entity_ref, generation: Number(r.generation), entity: JSON.parse(r.final_entity) as Entity }));
}

/** Waits until the catalog has stitched what `done` describes. */
async function until(done: (rows: Awaited<ReturnType<typeof stitched>>) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 45_000;
  while (!done(await stitched())) {
    if (Date.now() > deadline) throw new Error(`the catalog did not stitch ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const descriptionOf = (rows: Awaited<ReturnType<typeof stitched>>, name: string) => rows.find((r) => r.ref === `component:default/${name}`)?.entity.metadata.description;

test('reads only what was published since the last run; deletions come with the full diff; a changed schema falls back to the diff', async () => {
  let clock = Date.parse('2026-12-02T10:00:00Z');
  const sent: CatalogEvent[] = [];
  const client = { send: async (events: CatalogEvent[]) => (sent.push(...events), { ok: true as const, status: 202 }) } as unknown as EndpointClient;
  const settings: ChangeEventsSettings = {
    schedule: { frequency: { seconds: 2 }, timeout: { minutes: 1 } },
    detection: 'generations',
    deletionCheckIntervalInMs: 30_000,
    batchSize: 100,
    pageSize: 2, // several pages when several entities changed
    maxAgeInMs: 3_600_000,
    retry: { initialDelayInMs: 1, maxDelayInMs: 5 },
    source: 'http://backstage.test',
    endpoints: [{ name: 'receiver', url: 'http://127.0.0.1:1/api/catalog/events', timeoutInMs: 1000, auth: { type: 'standardWebhooks', secret: 'whsec_x' } }],
  };
  const engineFor = () => new ChangeEventsEngine({
    db: knex,
    // The catalog API's answer for the full diff: what the catalog has stitched right now.
    catalog: new Proxy({} as ReturnType<typeof catalogServiceMock>, {
      get: (_t, key) => async (...args: unknown[]) => {
        const mock = catalogServiceMock({ entities: (await stitched()).map((r) => r.entity) }) as unknown as Record<PropertyKey, (...a: unknown[]) => unknown>;
        return mock[key]!(...args);
      },
    }),
    auth: mockServices.auth(),
    logger: mockServices.logger.mock(),
    settings,
    clients: new Map([['receiver', client]]),
    metrics: createMetrics(),
    now: () => clock,
  });
  let engine = engineFor();
  const run = async (): Promise<DiffResult> => (await engine.run()).diff;
  const summary = () => sent.splice(0).map((e) => `${e.type.split('.').pop()} ${e.subject}`).sort();

  await connection.applyMutation({ type: 'full', entities: ['a', 'b', 'c', 'd'].map((n) => ({ entity: component(n, 'v1'), locationKey: LOCATION })) });
  await until((rows) => rows.length === 4 && rows.every((r) => r.generation > 0), 'the four entities');

  // The first run: a full diff records the baseline (and the generation it started from).
  expect(await run()).toMatchObject({ mode: 'full', baseline: true, scanned: 4 });
  expect(engine.detection).toBe('generations');
  // Nothing published since: one query, no rows, nothing sent.
  clock += 2_000;
  expect(await run()).toMatchObject({ mode: 'generations', rowsRead: 0, created: 0, updated: 0, deleted: 0 });
  expect(sent).toEqual([]);

  // Two edits and a new entity: exactly those rows are read (over pages of two), one event each.
  const before = await stitched();
  await connection.applyMutation({
    type: 'delta',
    added: [component('a', 'v2'), component('b', 'v2'), component('e', 'v1')].map((entity) => ({ entity, locationKey: LOCATION })),
    removed: [],
  });
  await until((rows) => descriptionOf(rows, 'a') === 'v2' && descriptionOf(rows, 'b') === 'v2' && rows.some((r) => r.ref === 'component:default/e'), 'the edits');
  const after = await stitched();
  const republished = after.filter((r) => r.generation > Math.max(...before.map((b) => b.generation))).length;
  clock += 2_000;
  expect(await run()).toMatchObject({ mode: 'generations', rowsRead: republished, created: 1, updated: 2, deleted: 0 });
  expect(republished).toBeLessThan(after.length);
  expect(summary()).toEqual(['upserted Component:default/a', 'upserted Component:default/b', 'upserted Component:default/e']);

  // An entity its owner excludes leaves the mirror: published as deleted from its new generation.
  await connection.applyMutation({ type: 'delta', added: [{ entity: component('b', 'v3', { [EXCLUDE_ANNOTATION]: 'true' }), locationKey: LOCATION }], removed: [] });
  await until((rows) => descriptionOf(rows, 'b') === 'v3', 'the exclusion');
  clock += 2_000;
  expect(await run()).toMatchObject({ mode: 'generations', deleted: 1 });
  expect(summary()).toEqual(['deleted Component:default/b']);

  // A removed entity has no row left to carry a generation: the deletion check (every 30 s) finds it in the database.
  await connection.applyMutation({ type: 'delta', added: [], removed: [{ entity: component('c', 'v1'), locationKey: LOCATION }] });
  await until((rows) => !rows.some((r) => r.ref === 'component:default/c'), 'the removal');
  clock += 2_000;
  expect(await run()).toMatchObject({ mode: 'generations', deleted: 0 });
  expect(summary()).toEqual([]);
  clock += 30_000;
  expect(await run()).toMatchObject({ mode: 'generations', deleted: 1, rowsRead: 1 });
  expect(summary()).toEqual(['deleted Component:default/c']);
  // The full diff, every 10 minutes, agrees: nothing left to publish.
  clock += 10 * 60_000;
  expect(await run()).toMatchObject({ mode: 'full', created: 0, updated: 0, deleted: 0 });
  // A restarted backend diffs once (what changed while it was down), then reads generations again.
  engine = engineFor();
  clock += 2_000;
  expect(await run()).toMatchObject({ mode: 'full', baseline: false, created: 0, updated: 0, deleted: 0 });
  clock += 2_000;
  expect(await run()).toMatchObject({ mode: 'generations', rowsRead: 0 });
  expect(summary()).toEqual([]);

  // The coupling breaks (a catalog upgrade changed the schema, and the query fails as it then would): the engine
  // says so and diffs from then on.
  const failing = jest.spyOn(CatalogGenerations.prototype, 'publishedAfter').mockRejectedValueOnce(new Error('SqliteError: no such column: generation'));
  await connection.applyMutation({ type: 'delta', added: [{ entity: component('d', 'v2'), locationKey: LOCATION }], removed: [] });
  await until((rows) => descriptionOf(rows, 'd') === 'v2', 'the last edit');
  clock += 2_000;
  expect(await run()).toMatchObject({ mode: 'full', updated: 1 });
  expect(engine.detection).toBe('diff');
  expect(summary()).toEqual(['upserted Component:default/d']);
  expect(failing).toHaveBeenCalledTimes(1);
  failing.mockRestore();
});

test('generations are used only where the table, its columns and the counter are all there', async () => {
  const bare = knexFactory({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true, pool: { min: 1, max: 1 } });
  try {
    await bare.schema.createTable('final_entities', (t) => {
      t.string('entity_id').primary();
      t.string('entity_ref');
      t.text('final_entity');
    });
    expect(await new CatalogGenerations(bare).available()).toBe(false);
    await bare.schema.alterTable('final_entities', (t) => t.bigInteger('generation'));
    expect(await new CatalogGenerations(bare).available()).toBe(false); // no counter yet
    await bare.schema.createTable('catalog_generation_counter', (t) => {
      t.integer('id').primary();
      t.bigInteger('generation');
    });
    expect(await new CatalogGenerations(bare).available()).toBe(true);
  } finally {
    await bare.destroy();
  }
});
