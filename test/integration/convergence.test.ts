/**
 * Convergence under chaos, as a property (fast-check): for random catalogs and random schedules of catalog
 * mutations — create, update, relation changes, delete, re-create with a new uid — with the catalog events dropped,
 * duplicated, reordered and delayed on their way, and infrastructure faults injected all along (Cosmos 429/503/408,
 * connection resets and lost responses; Backstage 429/5xx/401/hangs; a failing, slow or short-lived token endpoint;
 * broker restarts and lost locks): once the faults stop and the reconcile timer's work runs once (a reconcile and a
 * replay of recorded projection failures), the mirror equals the catalog, the edges equal the relations, and nothing
 * was dead-lettered.
 *
 * Everything is real: a Backstage backend, the Cosmos emulator and the Service Bus broker behind fault proxies or
 * fault hooks, the app's functions run by the dev host's trigger runners. A "module" stand-in in this file watches
 * Backstage the way the change-events module does (uid/etag diff) and posts the events through the intake.
 *
 *   CONVERGENCE_RUNS=50 npx jest test/integration/convergence.test.ts      more cases (CI runs a few)
 *   CONVERGENCE_MAX_STEPS=12 …                                             longer schedules (default 5 steps)
 *   CONVERGENCE_SEED=<seed> CONVERGENCE_PATH=<path> …                      replay a failing case
 *
 * Failing cases found so far are kept in test/fixtures/convergence/ and run first, every time.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpRequest, InvocationContext } from '@azure/functions';
import type { CatalogClient } from '@backstage/catalog-client';
import type { Entity } from '@backstage/catalog-model';
import fc from 'fast-check';
import { catalogEvents } from '../../functions/catalogEvents';
import type { BackstageStandIn } from '../../local/backstage';
import type { CosmosEmulator } from '../../local/cosmos';
import { startFaultProxy, type Fault, type FaultMatch, type FaultProxy } from '../../local/faults/http-proxy';
import type { ChangeFeedTrigger } from '../../local/functions-host/cosmos';
import type { SessionTrigger } from '../../local/functions-host/service-bus';
import type { LocalServiceBus } from '../../local/servicebus/broker';
import { loadConfig } from '../../shared/platform/config';
import type { EntityDocument, LiveEntityDocument } from '../../shared/model/documents';
import type { EdgeDocument } from '../../shared/model/documents';
import { FAILURES_PARTITION } from '../../shared/edges/failure-store';
import { toDocumentId } from '../../shared/model/refs';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { seededRandom } from '../../local/catalog-generator';
import { catalogClient, startLocalStack, type LocalStack } from '../../local/stack';
import { eventually, identityAdmin, provisionCosmos, standins, testEnvironment, uniqueName, userToken } from '../support/stack';
import { startProjectionTrigger, startSyncTrigger } from '../support/triggers';

jest.setTimeout(900_000);

const RUNS = Number(process.env.CONVERGENCE_RUNS ?? 3);
/** Steps per schedule; a step that re-creates an entity waits for Backstage's orphan clean-up, so this bounds the run time. */
const MAX_STEPS = Number(process.env.CONVERGENCE_MAX_STEPS ?? 5);
const QUEUE = 'entity-sync';
const HARNESS = { token: 'convergence-harness-token' };
const REGRESSIONS_DIR = join(__dirname, '..', 'fixtures', 'convergence');

// ------------------------------------------------------------------------------------------------
// The model: what the schedule does to the catalog

const NAMES = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta'] as const;
const KINDS = ['Component', 'Resource', 'API'] as const;
type Kind = (typeof KINDS)[number];

interface EntitySpec {
  kind: Kind;
  name: string;
  description: string;
  /** `component:<name>` / `resource:<name>` refs; may point at entities that do not exist. */
  dependsOn: string[];
  /** Components only: API names. */
  consumesApis: string[];
}

type Mutation =
  | { op: 'create'; entity: EntitySpec }
  | { op: 'update'; pick: number; description: string }
  | { op: 'relations'; pick: number; dependsOn: string[]; consumesApis: string[] }
  | { op: 'delete'; pick: number }
  | { op: 'recreate'; pick: number };

type InfraFault =
  | { on: 'none' }
  | { on: 'cosmos'; fault: 'throttle' | 'unavailable' | 'timeout' | 'reset' | 'lost-response' | 'slow'; count: number; writesOnly: boolean }
  | { on: 'backstage'; fault: 'throttle' | 'error' | 'unauthorized' | 'hang'; status: number; count: number }
  | { on: 'identity'; fault: 'fail' | 'slow' | 'short-lived'; count: number }
  | { on: 'broker'; fault: 'restart' | 'lose-locks' };

interface Step {
  mutation: Mutation;
  fault: InfraFault;
  pauseInMs: number;
}

interface Case {
  initial: EntitySpec[];
  steps: Step[];
  delivery: { drop: number; duplicate: number; reorder: boolean; maxDelayInMs: number; seed: number };
}

const refArb = fc.oneof(
  fc.constantFrom(...NAMES).map((n) => `component:${n}`),
  fc.constantFrom(...NAMES).map((n) => `resource:${n}`),
  fc.constant('resource:never-created'),
);
const entityArb: fc.Arbitrary<EntitySpec> = fc.record({
  kind: fc.constantFrom(...KINDS),
  name: fc.constantFrom(...NAMES),
  description: fc.string({ maxLength: 12 }),
  dependsOn: fc.uniqueArray(refArb, { maxLength: 3 }),
  consumesApis: fc.uniqueArray(fc.constantFrom(...NAMES), { maxLength: 2 }),
});
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('create' as const), entity: entityArb }),
  fc.record({ op: fc.constant('update' as const), pick: fc.nat(), description: fc.string({ maxLength: 12 }) }),
  fc.record({ op: fc.constant('relations' as const), pick: fc.nat(), dependsOn: fc.uniqueArray(refArb, { maxLength: 3 }), consumesApis: fc.uniqueArray(fc.constantFrom(...NAMES), { maxLength: 2 }) }),
  fc.record({ op: fc.constant('delete' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('recreate' as const), pick: fc.nat() }),
);
const faultArb: fc.Arbitrary<InfraFault> = fc.oneof(
  fc.constant({ on: 'none' as const }),
  fc.record({
    on: fc.constant('cosmos' as const),
    fault: fc.constantFrom('throttle' as const, 'unavailable' as const, 'timeout' as const, 'reset' as const, 'lost-response' as const, 'slow' as const),
    count: fc.integer({ min: 1, max: 4 }),
    writesOnly: fc.boolean(),
  }),
  fc.record({
    on: fc.constant('backstage' as const),
    fault: fc.constantFrom('throttle' as const, 'error' as const, 'unauthorized' as const, 'hang' as const),
    status: fc.constantFrom(500, 502, 503, 504),
    count: fc.integer({ min: 1, max: 3 }),
  }),
  fc.record({ on: fc.constant('identity' as const), fault: fc.constantFrom('fail' as const, 'slow' as const, 'short-lived' as const), count: fc.integer({ min: 1, max: 2 }) }),
  fc.record({ on: fc.constant('broker' as const), fault: fc.constantFrom('restart' as const, 'lose-locks' as const) }),
);
const caseArb: fc.Arbitrary<Case> = fc.record({
  initial: fc.uniqueArray(entityArb, { minLength: 1, maxLength: 8, selector: (e) => `${e.kind}:${e.name}` }),
  steps: fc.array(fc.record({ mutation: mutationArb, fault: faultArb, pauseInMs: fc.integer({ min: 0, max: 600 }) }), { minLength: 1, maxLength: MAX_STEPS }),
  delivery: fc.record({
    drop: fc.double({ min: 0, max: 0.5, noNaN: true }),
    duplicate: fc.double({ min: 0, max: 0.5, noNaN: true }),
    reorder: fc.boolean(),
    maxDelayInMs: fc.integer({ min: 0, max: 1_500 }),
    seed: fc.integer(),
  }),
});

// ------------------------------------------------------------------------------------------------
// The stack, shared by every case (each case gets its own database, identity client id and catalog files)

let stack: LocalStack;
let emulator: CosmosEmulator;
let cosmosProxy: FaultProxy;
let backstage: BackstageStandIn;
let backstageProxy: FaultProxy;
let broker: LocalServiceBus;
let admin: CatalogClient;
const totals = { cases: 0, steps: 0, faultsInjected: 0, eventsPosted: 0, eventsDropped: 0, eventsDuplicated: 0, projectionsReplayed: 0, divergent: 0 };

beforeAll(async () => {
  // This file's own emulator (its fault proxy restarts nothing shared), broker and Backstage; the shared identity.
  stack = await startLocalStack({
    cosmos: true,
    // Session locks of 10 s rather than a minute: a lock lost to a broker restart or a lost-locks fault holds its
    // messages until it expires, and a minute of that made a case take a minute longer than the faults themselves.
    serviceBus: { queues: { lockDurationInMs: 10_000 } },
    backstage: { trust: { jwksUri: standins.jwksUri, issuer: standins.issuer }, staticToken: HARNESS.token, processingIntervalSeconds: 1 },
  });
  emulator = stack.cosmos!;
  broker = stack.broker!;
  backstage = stack.backstage!;
  cosmosProxy = await startFaultProxy(emulator.endpoint, { tls: emulator.tls, targetCa: emulator.certificatePem });
  backstageProxy = await startFaultProxy(backstage.baseUrl);
  admin = catalogClient(backstage.baseUrl);
});

afterAll(async () => {
  await resetRuntime();
  await backstageProxy?.close();
  await cosmosProxy?.close();
  await stack?.stop();
  const proxied = (cosmosProxy?.faultsInjected ?? 0) + (backstageProxy?.faultsInjected ?? 0);
  process.stdout.write(`\nconvergence figures: ${JSON.stringify({ ...totals, faultsInjected: totals.faultsInjected + proxied })}\n`);
});

// ------------------------------------------------------------------------------------------------
// One case

async function runCase(testCase: Case): Promise<void> {
  totals.cases += 1;
  const dir = mkdtempSync(join(tmpdir(), 'convergence-'));
  const clientId = uniqueName('mi-chaos');
  const env = testEnvironment({
    AZURE_CLIENT_ID: clientId,
    CosmosDBConnection__accountEndpoint: cosmosProxy.url,
    COSMOS_CA_CERT_PATH: emulator.certificatePath,
    BACKSTAGE_BASE_URL: backstageProxy.url,
    BACKSTAGE_REQUEST_TIMEOUT_MS: '1000',
    BACKSTAGE_RETRY_BASE_DELAY_MS: '50',
    BACKSTAGE_RETRY_MAX_DELAY_MS: '300',
    ServiceBusConnection: broker.connectionString,
    QUEUE_RETRY_BASE_DELAY_MS: '100',
    QUEUE_RETRY_MAX_DELAY_MS: '1000',
    // The retry budget is larger than the faults a schedule can inject, so nothing should exhaust it.
    QUEUE_MAX_ATTEMPTS: '20',
    // Tiny catalogs lose most of their entities in one schedule; the deletion guard is tested on its own.
    RECONCILE_MAX_DELETE_RATIO: '1',
    COSMOS_MAX_RETRY_WAIT_MS: '5000',
    LOG_LEVEL: 'error',
  });
  await resetRuntime();
  Object.assign(process.env, env);
  (await provisionCosmos(loadConfig(env))).dispose();
  const runtime = getRuntime();
  const database = runtime.cosmosClient.database(runtime.config.cosmos.databaseName);
  const deadLetteredBefore = broker.stats(QUEUE).deadLettered;

  // The catalog: one file and one location per entity, so any entity can be deleted at once.
  const model = new Map<string, { spec: EntitySpec; location: string }>();
  const file = (spec: EntitySpec) => join(dir, `${spec.kind}-${spec.name}.yaml`);
  const write = (spec: EntitySpec) => writeFileSync(file(spec), JSON.stringify(toEntity(spec)));
  const add = async (spec: EntitySpec) => {
    write(spec);
    const { location } = await admin.addLocation({ type: 'file', target: file(spec) }, HARNESS);
    model.set(keyOf(spec), { spec, location: location.id });
  };
  const remove = async (key: string) => {
    await admin.removeLocationById(model.get(key)!.location, HARNESS);
    model.delete(key);
  };
  const t0 = Date.now();
  let last = t0;
  // Every phase with CONVERGENCE_TRACE; a phase over 15 s always (what made a run slow, in the CI log).
  const mark = (what: string) => {
    const now = Date.now();
    if (process.env.CONVERGENCE_TRACE || now - last > 15_000) process.stdout.write(`${what} +${now - t0} ms (${now - last} ms)\n`);
    last = now;
  };
  for (const spec of testCase.initial) await add(spec);
  await settled(model);
  mark('initial catalog settled');

  // The app: the sync trigger and the change-feed trigger, as the dev host runs them; then the first reconcile.
  const sessions: SessionTrigger = startSyncTrigger(broker.connectionString, { maxConcurrentSessions: 8, logHandler: () => undefined });
  const feed: ChangeFeedTrigger = startProjectionTrigger({
    feedPollDelayInMs: 200,
    retry: { maxRetryCount: 5, minimumIntervalInMs: 100, maximumIntervalInMs: 1_000 },
    logHandler: () => undefined,
  });
  const watcher = startModuleStandIn(testCase.delivery);
  try {
    expect((await runtime.reconciler.reconcile()).failures).toEqual([]);
    mark('first reconcile');

    // The schedule: mutations, with faults injected along the way.
    for (const step of testCase.steps) {
      totals.steps += 1;
      await injectFault(step.fault, clientId);
      const keys = [...model.keys()].sort();
      const m = step.mutation;
      if (m.op === 'create') {
        if (model.has(keyOf(m.entity))) {
          write(m.entity);
          model.get(keyOf(m.entity))!.spec = m.entity;
        } else await add(m.entity);
      } else if (keys.length > 0) {
        const key = keys[m.pick % keys.length]!;
        const { spec } = model.get(key)!;
        if (m.op === 'update') write((model.get(key)!.spec = { ...spec, description: m.description }));
        if (m.op === 'relations') write((model.get(key)!.spec = { ...spec, dependsOn: m.dependsOn, consumesApis: m.consumesApis }));
        if (m.op === 'delete') await remove(key);
        if (m.op === 'recreate') {
          // Gone from the catalog, then back under the same name: Backstage gives it a new uid.
          await remove(key);
          await eventually(async () => !(await admin.getEntityByRef(refOfSpec(spec), HARNESS)), `${key} to be deleted`, 20_000);
          await add(spec);
        }
      }
      await new Promise((r) => setTimeout(r, step.pauseInMs));
    }

    mark('schedule applied');
    // The faults stop; the catalog settles; the last events are delivered.
    await settled(model);
    mark('settled');
    await watcher.stop();
    healAll(clientId);
    mark('events delivered');
    await quiet(sessions, feed);
    mark('quiet');

    // What the reconcile timer does: one reconcile and a replay of recorded projection failures; then the
    // projection of whatever they wrote.
    const result = await runtime.maintenance.run();
    expect(result.failures).toEqual([]);
    expect(result.projectionFailures.failed).toEqual([]);
    totals.projectionsReplayed += result.projectionFailures.replayed;
    await quiet(sessions, feed);
    mark('reconciled and quiet');

    // The mirror equals the catalog; the edges equal the relations; nothing was dead-lettered.
    const catalog = (await admin.getEntities({}, HARNESS)).items;
    const { resources: docs } = await database.container(runtime.config.cosmos.entitiesContainer).items.query<EntityDocument>('SELECT * FROM c').fetchAll();
    const { resources: edges } = await database
      .container(runtime.config.cosmos.edgesContainer)
      .items.query<EdgeDocument>({ query: 'SELECT * FROM c WHERE c.source != @f', parameters: [{ name: '@f', value: FAILURES_PARTITION }] })
      .fetchAll();
    const divergence = compare(catalog, docs, edges);
    totals.divergent += divergence.documents.length;
    expect(divergence).toEqual({ documents: [], edges: { missing: [], extra: [] } });
    // (What was dead-lettered, if anything, is in the message.)
    const deadLettered = broker.stats(QUEUE).deadLettered - deadLetteredBefore;
    expect({ deadLettered, deadLetters: deadLettered > 0 ? await runtime.deadLetters.list({ max: 5 }) : [] }).toEqual({ deadLettered: 0, deadLetters: [] });
  } finally {
    await watcher.stop();
    healAll(clientId);
    await sessions.stop();
    await feed.stop();
    for (const key of [...model.keys()]) await remove(key);
    rmSync(dir, { recursive: true, force: true });
  }
}

function keyOf(spec: EntitySpec): string {
  return `${spec.kind}:${spec.name}`;
}

function refOfSpec(spec: EntitySpec): string {
  return `${spec.kind.toLowerCase()}:default/${spec.name}`;
}

function toEntity(spec: EntitySpec): Record<string, unknown> {
  const base = { apiVersion: 'backstage.io/v1alpha1', kind: spec.kind, metadata: { name: spec.name, description: spec.description } };
  if (spec.kind === 'API') return { ...base, spec: { type: 'openapi', lifecycle: 'production', owner: 'group:chaos', definition: 'openapi: 3.0.0' } };
  if (spec.kind === 'Resource') return { ...base, spec: { type: 'database', owner: 'group:chaos', dependsOn: spec.dependsOn } };
  return { ...base, spec: { type: 'service', lifecycle: 'production', owner: 'group:chaos', dependsOn: spec.dependsOn, consumesApis: spec.consumesApis } };
}

/** Waits until Backstage shows exactly the model — every entity with its content — and has stopped changing. */
async function settled(model: Map<string, { spec: EntitySpec }>): Promise<void> {
  const expected = [...model.values()].map(({ spec }) => `${refOfSpec(spec)} ${spec.description}`).sort();
  let previous = '';
  await eventually(
    async () => {
      const items = (await admin.getEntities({ filter: { kind: ['Component', 'Resource', 'API'] } }, HARNESS)).items;
      const seen = items.map((e) => `${e.kind.toLowerCase()}:default/${e.metadata.name} ${e.metadata.description ?? ''}`).sort();
      const snapshot = items.map((e) => `${e.metadata.uid} ${e.metadata.etag}`).sort().join(',');
      const ok = JSON.stringify(seen) === JSON.stringify(expected) && snapshot === previous;
      previous = snapshot;
      if (!ok) await new Promise((r) => setTimeout(r, 1_200));
      return ok;
    },
    'Backstage to show the model and settle',
    60_000,
  );
}

/** The queue is empty, no invocation runs, and the change feed has been read to its end — three polls in a row. */
async function quiet(sessions: SessionTrigger, feed: ChangeFeedTrigger): Promise<void> {
  let streak = 0;
  await eventually(
    async () => {
      const s = broker.stats(QUEUE);
      const calm = feed.idle && s.active + s.scheduled + s.locked === 0 && sessions.inFlight === 0;
      streak = calm ? streak + 1 : 0;
      if (streak < 3) await new Promise((r) => setTimeout(r, 250));
      return streak >= 3;
    },
    'the queue and the change feed to go quiet',
    120_000,
  );
}

function compare(catalog: Entity[], docs: EntityDocument[], edges: EdgeDocument[]) {
  const byId = new Map(docs.map((d) => [d.id, d]));
  const documents: string[] = [];
  const live = new Set<string>();
  const relations: string[] = [];
  for (const entity of catalog) {
    const id = toDocumentId({ kind: entity.kind, namespace: entity.metadata.namespace ?? 'default', name: entity.metadata.name });
    live.add(id);
    const doc = byId.get(id) as LiveEntityDocument | undefined;
    if (!doc || doc.deleted) documents.push(`${id}: missing`);
    else if (JSON.stringify(doc.entity) !== JSON.stringify(entity)) documents.push(`${id}: differs`);
    for (const r of entity.relations ?? []) relations.push(`${id} ${r.type} ${toDocumentId(r.targetRef)}`);
  }
  for (const doc of docs) if (!live.has(doc.id) && !doc.deleted) documents.push(`${doc.id}: live but not in the catalog`);
  const stored = edges.map((e) => `${e.source} ${e.type} ${e.target}`);
  const want = new Set(relations);
  const have = new Set(stored);
  return {
    documents: documents.sort(),
    edges: { missing: relations.filter((r) => !have.has(r)).sort(), extra: stored.filter((e) => !want.has(e)).sort() },
  };
}

// ------------------------------------------------------------------------------------------------
// Faults

async function injectFault(fault: InfraFault, clientId: string): Promise<void> {
  if (fault.on === 'none') return;
  if (fault.on === 'cosmos') {
    const match: FaultMatch = fault.writesOnly ? { methods: ['POST', 'PUT', 'DELETE', 'PATCH'], path: /\/docs/ } : { path: /\/docs/ };
    const byKind: Record<typeof fault.fault, Fault> = {
      throttle: { status: 429, headers: { 'x-ms-retry-after-ms': '50', 'x-ms-substatus': '3200' }, body: JSON.stringify({ code: 'TooManyRequests', message: 'injected' }) },
      unavailable: { status: 503, body: JSON.stringify({ code: 'ServiceUnavailable', message: 'injected' }) },
      timeout: { status: 408, body: JSON.stringify({ code: 'RequestTimeout', message: 'injected' }) },
      reset: { reset: true },
      'lost-response': { dropResponse: true },
      slow: { delayInMs: 300 },
    };
    cosmosProxy.failNext(fault.count, byKind[fault.fault], match);
  } else if (fault.on === 'backstage') {
    const byKind: Record<typeof fault.fault, Fault> = {
      throttle: { status: 429, headers: { 'retry-after': '0' } },
      error: { status: fault.status },
      unauthorized: { status: 401 },
      hang: { hang: true },
    };
    backstageProxy.failNext(fault.count, byKind[fault.fault], /\/api\/catalog\//);
  } else if (fault.on === 'identity') {
    totals.faultsInjected += fault.count;
    const byKind = {
      fail: { failWithStatus: 500, failCount: fault.count },
      slow: { delayInMs: 400 },
      'short-lived': { tokenLifetimeInSeconds: 2 },
    };
    await identityAdmin().setClientBehaviour(clientId, byKind[fault.fault]);
  } else if (fault.on === 'broker') {
    totals.faultsInjected += 1;
    if (fault.fault === 'restart') broker.dropConnections();
    else broker.expireLocks(QUEUE);
  }
}

function healAll(clientId: string): void {
  cosmosProxy.heal();
  backstageProxy.heal();
  void identityAdmin().setClientBehaviour(clientId, {});
}

// ------------------------------------------------------------------------------------------------
// The module stand-in: watch Backstage's uid/etag projection, post what changed — through a faulty delivery

function startModuleStandIn(delivery: Case['delivery']): { stop(): Promise<void> } {
  const random = seededRandom(delivery.seed);
  let known = new Map<string, { uid?: string; etag?: string }>();
  let stopped = false;
  const pending = new Set<Promise<void>>();

  const post = async (events: unknown[]) => {
    const token = await userToken({ roles: ['Events.Send'] });
    for (let attempt = 0; attempt < 20; attempt += 1) {
      const response = await catalogEvents(
        new HttpRequest({
          method: 'POST',
          url: 'http://localhost:7071/api/catalog/events',
          headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${token}` },
          body: { string: JSON.stringify(events) },
        }),
        new InvocationContext({ functionName: 'catalogEvents', logHandler: () => undefined }),
      );
      if (response.status === 202) return;
      // 503 while the broker is "restarting": the module retries, as the real one does.
      expect(response.status).toBe(503);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const deliver = (events: unknown[]) => {
    let out: unknown[] = [];
    for (const event of events) {
      if (random() < delivery.drop) {
        totals.eventsDropped += 1;
        continue;
      }
      out.push(event);
      if (random() < delivery.duplicate) {
        totals.eventsDuplicated += 1;
        out.push(event);
      }
    }
    if (delivery.reorder) out = out.map((e) => [random(), e] as const).sort((a, b) => a[0] - b[0]).map(([, e]) => e);
    totals.eventsPosted += out.length;
    for (const event of out) {
      const sent = new Promise<void>((resolve) => setTimeout(resolve, Math.floor(random() * delivery.maxDelayInMs))).then(() => post([event]));
      pending.add(sent);
      void sent.finally(() => pending.delete(sent));
    }
  };
  const tick = async () => {
    const items = (await admin.getEntities({ fields: ['kind', 'metadata.namespace', 'metadata.name', 'metadata.uid', 'metadata.etag'] }, HARNESS)).items;
    const now = new Map(items.map((e) => [`${e.kind}:${e.metadata.namespace ?? 'default'}/${e.metadata.name}`, { uid: e.metadata.uid, etag: e.metadata.etag }]));
    const events: unknown[] = [];
    const event = (ref: string, type: string, data: Record<string, unknown>) =>
      events.push({ specversion: '1.0', id: randomUUID(), source: backstage.baseUrl, type, subject: ref, time: new Date().toISOString(), data: { entityRef: ref, ...data } });
    for (const [ref, v] of now) {
      const before = known.get(ref);
      if (!before || before.uid !== v.uid || before.etag !== v.etag) event(ref, 'io.backstage.catalog.entity.upserted', v);
    }
    for (const [ref, v] of known) if (!now.has(ref)) event(ref, 'io.backstage.catalog.entity.deleted', { ...(v.uid && { uid: v.uid }) });
    known = now;
    if (events.length > 0) deliver(events);
  };
  const loop = (async () => {
    while (!stopped) {
      await tick();
      await new Promise((r) => setTimeout(r, 300));
    }
    await tick();
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      while (pending.size > 0) await Promise.all([...pending]);
    },
  };
}

// ------------------------------------------------------------------------------------------------

function regressions(): Case[] {
  let files: string[];
  try {
    files = readdirSync(REGRESSIONS_DIR).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  return files.sort().map((f) => JSON.parse(readFileSync(join(REGRESSIONS_DIR, f), 'utf8')) as Case);
}

const kept = regressions();
if (kept.length > 0) {
  test.each(kept.map((c, i) => [i, c] as const))('kept failing case %i converges', async (_i, testCase) => {
    await runCase(testCase);
  });
}

test(`the mirror converges to the catalog under chaos (${RUNS} random schedules)`, async () => {
  await fc.assert(
    fc.asyncProperty(caseArb, async (testCase) => {
      await runCase(testCase);
    }),
    {
      numRuns: RUNS,
      // A case takes seconds; print the seed and path of a failure instead of shrinking it for minutes.
      endOnFailure: true,
      ...(process.env.CONVERGENCE_SEED && { seed: Number(process.env.CONVERGENCE_SEED) }),
      ...(process.env.CONVERGENCE_PATH && { path: process.env.CONVERGENCE_PATH }),
      reporter: (details) => {
        if (details.failed) {
          process.stdout.write(
            `\nconvergence: FAILED — replay with CONVERGENCE_SEED=${details.seed} CONVERGENCE_PATH=${details.counterexamplePath ?? ''}\n` +
              `counterexample (save as test/fixtures/convergence/<name>.json to keep it): ${JSON.stringify(details.counterexample?.[0])}\n`,
          );
          throw new Error(`${"errorInstance" in details && details.errorInstance instanceof Error ? details.errorInstance.message : "see above"}\nseed ${details.seed}, path ${details.counterexamplePath ?? ''}`);
        }
      },
    },
  );
});
