/**
 * The history's two recording paths and the change log (GET /api/changes), on a real Backstage (entities given in
 * full mutations of the stand-in's provider) synced by the app's sync engine, with this file's own emulator behind a
 * fault proxy:
 *
 * - the write path records every version the sync writes, also two written between two reads of the change feed
 *   (which the feed delivers as one); the feed then records nothing twice;
 * - an ambiguous history write (the emulator created the record, the answer was lost) is one record; a history
 *   that cannot be written does not fail the sync, and the change feed records the version instead, also when its
 *   own reads of the feed are lost;
 * - property: whatever the edit schedule (edits, removals, re-creations, versions faster than the feed is polled),
 *   a follower of the change log that reads with random page sizes and restarts — from the cursor it stored, or from
 *   an older one when it stopped before storing — sees every version of every entity, each entity's in order.
 */
import { HttpRequest, InvocationContext } from '@azure/functions';
import type { Entity } from '@backstage/catalog-model';
import type { CatalogClient } from '@backstage/catalog-client';
import fc from 'fast-check';
import { getChanges } from '../../functions/getChanges';
import type { BackstageStandIn } from '../../local/backstage';
import type { CosmosEmulator } from '../../local/cosmos';
import { startFaultProxy, type FaultProxy } from '../../local/faults/http-proxy';
import { seededRandom } from '../../local/catalog-generator';
import { catalogClient, startLocalStack, type LocalStack } from '../../local/stack';
import { historyRecordId, type HistoryOperation, type HistoryRecord } from '../../shared/history/record';
import type { EntityDocument } from '../../shared/model/documents';
import { loadConfig } from '../../shared/platform/config';
import type { InMemoryMetrics } from '../../shared/platform/metrics';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { rawContainers } from '../support/containers';
import { HISTORY_FEED_POLL_DELAY_IN_MS } from '../../shared/history/history-recorder';
import { bodyJson } from '../support/http';
import { eventually, provisionCosmos, standins, testEnvironment, uniqueName, userToken } from '../support/stack';
import { startHistoryTrigger } from '../support/triggers';

jest.setTimeout(600_000);

const HARNESS = { token: 'changelog-harness-token' };

let stack: LocalStack;
let emulator: CosmosEmulator;
let cosmosProxy: FaultProxy;
let backstage: BackstageStandIn;
let admin: CatalogClient;
let readerToken: string;
/** What the stand-in's provider holds: every entity of every test, by ref. */
const catalog = new Map<string, Entity>();

beforeAll(async () => {
  stack = await startLocalStack({
    cosmos: true,
    backstage: { trust: { jwksUri: standins.jwksUri, issuer: standins.issuer }, staticToken: HARNESS.token, processingIntervalSeconds: 3600 },
  });
  emulator = stack.cosmos!;
  backstage = stack.backstage!;
  admin = catalogClient(backstage.baseUrl);
  cosmosProxy = await startFaultProxy(emulator.endpoint, { tls: emulator.tls, targetCa: emulator.certificatePem });
  const env = testEnvironment({
    AZURE_CLIENT_ID: uniqueName('mi-changelog'),
    CosmosDBConnection__accountEndpoint: cosmosProxy.url,
    COSMOS_CA_CERT_PATH: emulator.certificatePath,
    BACKSTAGE_BASE_URL: backstage.baseUrl,
    LOG_LEVEL: 'error',
  });
  Object.assign(process.env, env);
  (await provisionCosmos(loadConfig(env))).dispose();
  readerToken = await userToken({ roles: ['Catalog.Read'] });
});

afterAll(async () => {
  await resetRuntime();
  await cosmosProxy?.close();
  await stack?.stop();
});

// ------------------------------------------------------------------------------------------------
// Helpers

function component(name: string, description: string): Entity {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: { name, namespace: 'default', description },
    spec: { type: 'service', lifecycle: 'production', owner: 'group:default/team-a' },
  };
}

const refOf = (name: string) => `component:default/${name}`;

/** Gives Backstage the catalog with `changes` applied (undefined removes), and waits until it shows them. */
async function applyToBackstage(changes: ReadonlyMap<string, Entity | undefined>): Promise<void> {
  for (const [name, entity] of changes) {
    if (entity) catalog.set(name, entity);
    else catalog.delete(name);
  }
  await backstage.loadCatalog([...catalog.values()]);
  for (const [name, entity] of changes) {
    await eventually(
      async () => {
        const current = await admin.getEntityByRef(refOf(name), HARNESS);
        return entity ? current?.metadata.description === entity.metadata.description : !current;
      },
      `Backstage to show ${name} ${entity ? `as ${entity.metadata.description}` : 'removed'}`,
      60_000,
    );
  }
}

interface WrittenVersion {
  id: string;
  operation: 'created' | 'updated' | 'tombstoned';
}

/** Syncs `names` as the worker does (one at a time each, side by side); the versions the sync wrote, by name. */
async function sync(names: readonly string[]): Promise<Map<string, WrittenVersion>> {
  const written = new Map<string, WrittenVersion>();
  await Promise.all(
    names.map(async (name) => {
      const result = await getRuntime().engine.syncEntity(refOf(name));
      if (result.outcome !== 'created' && result.outcome !== 'updated' && result.outcome !== 'tombstoned') return;
      const doc = (await rawContainers(getRuntime()).entities.item(result.id, result.id).read<EntityDocument>()).resource!;
      written.set(name, { id: historyRecordId(doc), operation: result.outcome });
    }),
  );
  return written;
}

type ChangeItem = Pick<HistoryRecord, 'id' | 'entityRef' | 'name' | 'operation' | 'syncedAt' | 'uid'> & { entity?: Entity; previous?: string };

async function changesPage(query: string): Promise<{ items: ChangeItem[]; cursor: string }> {
  const response = await getChanges(
    new HttpRequest({ method: 'GET', url: `http://localhost:7071/api/changes?${query}`, headers: { authorization: `Bearer ${readerToken}` } }),
    new InvocationContext({ functionName: 'getChanges' }),
  );
  expect(response.status).toBe(200);
  return bodyJson(response);
}

const metrics = () => getRuntime().inMemoryMetrics as InMemoryMetrics;

async function recordsOf(name: string): Promise<HistoryRecord[]> {
  return getRuntime().historyStore.all(`component:default:${name}`);
}

// ------------------------------------------------------------------------------------------------
// The two paths

test('two versions written between two reads of the change feed are two records: the write path records each', async () => {
  const name = uniqueName('twice');
  await applyToBackstage(new Map([[name, component(name, 'first')]]));
  const first = (await sync([name])).get(name)!;
  await applyToBackstage(new Map([[name, component(name, 'second')]]));
  const second = (await sync([name])).get(name)!;

  const records = await recordsOf(name);
  expect(records.map((r) => [r.id, r.operation])).toEqual([
    [first.id, 'created'],
    [second.id, 'updated'],
  ]);
  expect(records[1]!.previous).toBe(first.id);
  expect(records[1]!.diff).toContainEqual({ op: 'replace', path: '/metadata/description', value: 'second' });

  // The feed, read only now, holds the entity once — as its latest version — and records nothing new.
  const delivered: string[] = [];
  const feed = startHistoryTrigger({ logHandler: () => undefined, observe: (documents) => delivered.push(...documents.map((d) => (d as EntityDocument).id)) });
  try {
    await eventually(async () => delivered.includes(records[0]!.entityId), 'the feed to deliver the entity');
    await eventually(async () => metrics().counter('history.duplicates', { path: 'feed' }) >= 1, 'the feed to find the version recorded');
  } finally {
    await feed.stop();
  }
  expect(delivered.filter((id) => id === records[0]!.entityId)).toHaveLength(1);
  expect((await recordsOf(name)).map((r) => r.id)).toEqual([first.id, second.id]);
});

test('an ambiguous history write is one record; a history that cannot be written leaves the version to the change feed', async () => {
  const name = uniqueName('faults');
  await applyToBackstage(new Map([[name, component(name, 'first')]]));
  const first = (await sync([name])).get(name)!;
  // A version written over one the sync read is recorded with a single create (no query), so these match it alone.
  const historyCreates = { path: /\/colls\/history\/docs$/, methods: ['POST'] };

  // The emulator creates the record and the answer is lost: the retry finds it there.
  await applyToBackstage(new Map([[name, component(name, 'second')]]));
  const duplicatesBefore = metrics().counter('history.duplicates', { path: 'write' });
  cosmosProxy.failNext(1, { dropResponse: true }, historyCreates);
  const second = (await sync([name])).get(name)!;
  expect(metrics().counter('history.duplicates', { path: 'write' })).toBe(duplicatesBefore + 1);
  expect((await recordsOf(name)).map((r) => r.id)).toEqual([first.id, second.id]);

  // No history write goes through: the sync still succeeds, and says so.
  await applyToBackstage(new Map([[name, component(name, 'third')]]));
  const failuresBefore = metrics().counter('history.write_failures');
  cosmosProxy.failAll({ status: 503 }, historyCreates);
  let third: WrittenVersion;
  try {
    third = (await sync([name])).get(name)!;
  } finally {
    cosmosProxy.heal();
  }
  expect(third.operation).toBe('updated');
  expect(metrics().counter('history.write_failures')).toBe(failuresBefore + 1);
  expect((await recordsOf(name)).map((r) => r.id)).toEqual([first.id, second.id]);

  // The feed records it, built against the version before it; the others it finds recorded. Its first reads of the
  // feed are lost on the way back (the emulator answered, the trigger never heard): it reads them again.
  const faultsBefore = cosmosProxy.faultsInjected;
  cosmosProxy.failNext(2, { dropResponse: true }, { path: /\/colls\/entities\/docs$/, methods: ['GET'] });
  const feed = startHistoryTrigger({ logHandler: () => undefined });
  try {
    await eventually(async () => (await recordsOf(name)).length === 3, 'the feed to record the third version');
  } finally {
    await feed.stop();
  }
  expect(cosmosProxy.faultsInjected - faultsBefore).toBe(2);
  const records = await recordsOf(name);
  expect(records.map((r) => [r.id, r.operation, r.previous])).toEqual([
    [first.id, 'created', undefined],
    [second.id, 'updated', first.id],
    [third.id, 'updated', second.id],
  ]);
  expect(records[2]!.diff).toContainEqual({ op: 'replace', path: '/metadata/description', value: 'third' });
});

test('the change log starts at a time; the cursor of an empty page picks up what is recorded after it', async () => {
  const name = uniqueName('since');
  await applyToBackstage(new Map([[name, component(name, 'before')]]));
  await sync([name]);
  // A whole second after every record so far (the change feed starts from a time to the second).
  const since = new Date(Math.ceil((Date.now() + 1) / 1000) * 1000);
  await eventually(async () => Date.now() > since.getTime() + 1, 'the clock to pass the start time', 5_000);

  const empty = await changesPage(`since=${encodeURIComponent(since.toISOString())}`);
  expect(empty.items).toEqual([]);
  expect(empty.cursor).toEqual(expect.any(String));
  await applyToBackstage(new Map([[name, component(name, 'after')]]));
  const written = (await sync([name])).get(name)!;
  const next = await changesPage(`after=${empty.cursor}`);
  expect(next.items.map((i) => [i.id, i.entityRef, i.operation, i.entity?.metadata.description])).toEqual([[written.id, `Component:default/${name}`, 'updated', 'after']]);
  // Nothing new: an empty page, whose cursor is as good as the one before.
  const caughtUp = await changesPage(`after=${next.cursor}`);
  expect(caughtUp.items).toEqual([]);
});

// ------------------------------------------------------------------------------------------------
// Property: a follower sees every version

/** One step of an edit schedule: which of the run's entities change (absent → created; present → removed or edited). */
type Step = Array<{ entity: number; remove: boolean }>;

const ENTITIES_PER_RUN = 5;
const stepArbitrary: fc.Arbitrary<Step> = fc.uniqueArray(fc.record({ entity: fc.nat({ max: ENTITIES_PER_RUN - 1 }), remove: fc.boolean() }), {
  minLength: 1,
  maxLength: 3,
  selector: (change) => change.entity,
});
const SEED = Number(process.env.CHANGELOG_SEED ?? 20261202);
const RUNS = Number(process.env.CHANGELOG_RUNS ?? 3);

/**
 * A downstream system following the change log: pages of a random size; after each page it stores the cursor, or
 * goes on without storing it, or restarts from the cursor it stored last (then it reads some records again).
 */
class Follower {
  private cursor: string | undefined;
  private stored: string | undefined;
  /** Every record seen, by id; and each entity's record ids in the order first seen. */
  readonly seen = new Map<string, ChangeItem>();
  readonly byEntity = new Map<string, string[]>();
  readonly counts = { pages: 0, restarts: 0, reread: 0 };
  private stopping = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly random: () => number) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopping) {
        const pageSize = 1 + Math.floor(this.random() * 7);
        const page = await changesPage(`pageSize=${pageSize}${this.cursor ? `&after=${this.cursor}` : ''}`);
        this.counts.pages += 1;
        expect(page.items.length).toBeLessThanOrEqual(pageSize);
        for (const item of page.items) {
          if (this.seen.has(item.id)) {
            this.counts.reread += 1;
            continue;
          }
          this.seen.set(item.id, item);
          this.byEntity.set(item.name, [...(this.byEntity.get(item.name) ?? []), item.id]);
        }
        const choice = this.random();
        if (choice < 0.15) {
          this.cursor = this.stored;
          this.counts.restarts += 1;
        } else if (choice < 0.35) {
          this.cursor = page.cursor;
        } else {
          this.cursor = this.stored = page.cursor;
        }
        // Caught up: a follower polls.
        if (page.items.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
  }
}

test('property: a change-log follower with random page sizes and restarts sees every version of every entity, in order', async () => {
  // The backstop runs as deployed: versions written faster than it polls reach it as one.
  const feedDelivered = new Map<string, number>();
  const feed = startHistoryTrigger({
    logHandler: () => undefined,
    // The recordHistory function's own delay: versions closer than this coalesce on the feed.
    feedPollDelayInMs: HISTORY_FEED_POLL_DELAY_IN_MS,
    observe: (documents) => documents.forEach((d) => feedDelivered.set((d as EntityDocument).id, (feedDelivered.get((d as EntityDocument).id) ?? 0) + 1)),
  });
  const totals = { runs: 0, steps: 0, versions: 0, deliveredByFeed: 0, pages: 0, restarts: 0, reread: 0 };
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArbitrary, { minLength: 3, maxLength: 7 }), fc.integer({ min: 1, max: 2 ** 31 - 1 }), async (schedule, followerSeed) => {
        const run = uniqueName('cl');
        const names = Array.from({ length: ENTITIES_PER_RUN }, (_, i) => `${run}-e${i}`);
        const expected = new Map<string, Array<{ id: string; operation: HistoryOperation }>>(names.map((n) => [n, []]));
        const lives = new Map<string, { present: boolean; lives: number }>(names.map((n) => [n, { present: false, lives: 0 }]));
        const follower = new Follower(seededRandom(followerSeed));
        follower.start();
        try {
          let version = 0;
          for (const step of schedule) {
            const changes = new Map<string, Entity | undefined>();
            for (const { entity, remove } of step) {
              const name = names[entity]!;
              const state = lives.get(name)!;
              version += 1;
              if (!state.present) changes.set(name, component(name, `v${version}`));
              else changes.set(name, remove ? undefined : component(name, `v${version}`));
            }
            await applyToBackstage(changes);
            const written = await sync([...changes.keys()]);
            for (const [name, entity] of changes) {
              const state = lives.get(name)!;
              const version = written.get(name);
              expect({ name, outcome: version?.operation }).toEqual({ name, outcome: entity ? (state.present ? 'updated' : 'created') : 'tombstoned' });
              const operation: HistoryOperation = !entity ? 'deleted' : state.present ? 'updated' : state.lives > 0 ? 'recreated' : 'created';
              expected.get(name)!.push({ id: version!.id, operation });
              if (entity && !state.present) state.lives += 1;
              state.present = entity !== undefined;
            }
            totals.steps += 1;
          }
          await eventually(
            async () => names.every((n) => expected.get(n)!.every((v) => follower.seen.has(v.id))),
            'the follower to see every version',
            60_000,
          );
        } finally {
          await follower.stop();
        }
        for (const name of names) {
          const seen = (follower.byEntity.get(name) ?? []).map((id) => ({ id, operation: follower.seen.get(id)!.operation }));
          expect({ name, versions: seen }).toEqual({ name, versions: expected.get(name) });
        }
        totals.runs += 1;
        totals.versions += [...expected.values()].reduce((n, v) => n + v.length, 0);
        totals.deliveredByFeed += names.reduce((n, name) => n + (feedDelivered.get(`component:default:${name}`) ?? 0), 0);
        totals.pages += follower.counts.pages;
        totals.restarts += follower.counts.restarts;
        totals.reread += follower.counts.reread;
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
  } finally {
    await feed.stop();
    process.stdout.write(`\nchange-log property (seed ${SEED}): ${JSON.stringify(totals)}\n`);
  }
  // The schedules did what they are for: restarts that read records again.
  expect(totals.restarts).toBeGreaterThan(0);
  expect(totals.reread).toBeGreaterThan(0);
});
