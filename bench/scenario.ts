/**
 * The benchmark's scenarios, each run in its own child process by bench/index.ts (see ./harness.ts). The app is
 * built from the environment the parent passes — the same settings a deployment reads — so "ours" is exactly the
 * code the Functions run. Baselines use the same clients and the same emulator.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { CatalogClient } from '@backstage/catalog-client';
import type { Entity } from '@backstage/catalog-model';
import type { Container, OperationInput } from '@azure/cosmos';
import type { ServiceBusReceivedMessage } from '@azure/service-bus';
import pLimit from 'p-limit';
import { catalogEvents } from '../functions/catalogEvents';
import { getChanges } from '../functions/getChanges';
import { getEntityHistory } from '../functions/getEntityHistory';
import { projectEdges } from '../functions/projectEdges';
import { recordHistory } from '../functions/recordHistory';
import { syncEntity } from '../functions/syncEntity';
import { startChangeFeedTrigger } from '../local/functions-host/cosmos';
import { startSessionTrigger, timeSpanToMs } from '../local/functions-host/service-bus';
import type { CosmosRequestCounts } from '../local/cosmos';
import { ensureCosmosResources } from '../local/cosmos-setup';
import { isTombstone, toEntityDocument, type EntityDocument } from '../shared/model/documents';
import { seededRandom } from '../local/catalog-generator';
import type { HistoryRecorder } from '../shared/history/history-recorder';
import { buildHistoryRecord, type HistoryRecord } from '../shared/history/record';
import { HistoryStore } from '../shared/history/history-store';
import { EntityStore } from '../shared/sync/entity-store';
import { DEPENDENCY_DURATION } from '../shared/platform/dependencies';
import type { InMemoryMetrics } from '../shared/platform/metrics';
import { getRuntime, resetRuntime } from '../shared/runtime';
import { measured, serveScenarios, summarize, syncedIds, type CosmosCounts, type Measured, type Summary } from './harness';

export type { Summary };

/** Cosmos requests to one container; only `total` (0) when the container saw none. */
export type ContainerCounts = Partial<CosmosRequestCounts> & { total: number };

/** One row of the graph scenario: a direction and depth, summarized over the roots. */
export interface GraphRow {
  direction: 'downstream' | 'upstream';
  depth: number;
  ms: Summary;
  cosmosRequests: Summary;
  queries: Summary;
  nodes: Summary;
}

/**
 * What the run's dependency calls came to, per dependency and operation (the process's `dependency.duration`): calls,
 * mean and max time, failures, calls that needed retries — the figures docs/operations.md gives as the normal range.
 */
function dependencyFigures(): Record<string, { calls: number; meanMs: number; maxMs: number; failures: number; retried: number }> {
  const out: Record<string, { calls: number; sumMs: number; maxMs: number; failures: number; retried: number }> = {};
  for (const { dimensions, summary } of (getRuntime().inMemoryMetrics as InMemoryMetrics).series(DEPENDENCY_DURATION)) {
    const entry = (out[`${dimensions.dependency} ${dimensions.operation}`] ??= { calls: 0, sumMs: 0, maxMs: 0, failures: 0, retried: 0 });
    entry.calls += summary.count;
    entry.sumMs += summary.sum;
    entry.maxMs = Math.max(entry.maxMs, summary.max);
    if (dimensions.outcome === 'failure') entry.failures += summary.count;
    if (dimensions.retries !== '0') entry.retried += summary.count;
  }
  return Object.fromEntries(
    Object.entries(out)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, { sumMs, ...rest }]) => [key, { ...rest, meanMs: Math.round((sumMs / rest.calls) * 10) / 10, maxMs: Math.round(rest.maxMs) }]),
  );
}

/** The syncEntity trigger as host.json runs it; `handled` sees each message once its invocation returned. */
function startHostSyncTrigger(
  args: { brokerConnection: string; sessions: { maxConcurrentSessions: number; sessionIdleTimeout: string } },
  handled: (message: ServiceBusReceivedMessage) => void,
) {
  return startSessionTrigger({
    connection: args.brokerConnection,
    queueName: getRuntime().config.serviceBus.queueName,
    functionName: 'syncEntity',
    maxConcurrentSessions: args.sessions.maxConcurrentSessions,
    sessionIdleTimeoutInMs: timeSpanToMs(args.sessions.sessionIdleTimeout)!,
    logHandler: () => undefined,
    handler: async (input, context) => {
      await syncEntity(input, context);
      const messages: ServiceBusReceivedMessage[] = Array.isArray(input.messages) ? input.messages : [input.messages];
      messages.forEach(handled);
    },
  });
}

function database() {
  const runtime = getRuntime();
  return runtime.cosmosClient.database(runtime.config.cosmos.databaseName);
}

async function scratchContainer(id: string, partitionKeyPath = '/id'): Promise<Container> {
  const { container } = await database().containers.createIfNotExists({ id, partitionKey: { paths: [partitionKeyPath] } });
  return container;
}

function readEntities(file: string): Entity[] {
  return JSON.parse(readFileSync(file, 'utf8')) as Entity[];
}

/**
 * Paged full entities, as a naive sync would read them — its answers uncompressed, as the app asks for them
 * (`BACKSTAGE_COMPRESSION`), so that the comparison is of the two syncs, not of Backstage's compression. Counts the
 * HTTP requests.
 */
function fullEntityPager() {
  const runtime = getRuntime();
  const tokens = runtime.tokenProvider;
  let requests = 0;
  const client = new CatalogClient({
    discoveryApi: { getBaseUrl: (pluginId) => Promise.resolve(`${runtime.config.backstage.baseUrl}/api/${pluginId}`) },
    fetchApi: {
      fetch: async (input, init) => {
        requests += 1;
        const headers = new Headers(init?.headers);
        headers.set('authorization', `Bearer ${await tokens.getToken()}`);
        headers.set('accept-encoding', 'identity');
        return fetch(input, { ...init, headers });
      },
    },
  });
  return {
    get requests() {
      return requests;
    },
    async *pages(pageSize: number): AsyncGenerator<Entity[]> {
      let cursor: string | undefined;
      do {
        const page = cursor ? await client.queryEntities({ cursor, limit: pageSize }) : await client.queryEntities({ limit: pageSize });
        if (page.items.length > 0) yield page.items;
        cursor = page.pageInfo.nextCursor;
      } while (cursor);
    },
  };
}

const stats = (counts: CosmosCounts, container: string): ContainerCounts => counts.byContainer[container] ?? { total: 0 };

/**
 * Records in the history container, or those matching `where` (a cross-partition count, sent outside any measured
 * section). The difference before and after a run is what the run recorded: records are created, never replaced.
 */
async function historyRecords(where = ''): Promise<number> {
  const { resources } = await database().container(getRuntime().config.cosmos.historyContainer).items.query<number>(`SELECT VALUE COUNT(1) FROM c${where}`).fetchAll();
  return resources.reduce((sum, n) => sum + n, 0);
}

/** `updated` records whose diff is empty: a version whose entity is the same as the one before it (a rewrite). */
const EMPTY_DIFF = " WHERE c.operation = 'updated' AND ARRAY_LENGTH(c.diff) = 0";

/**
 * The request charge the history recorder reports, summed by path since the recorder was first asked for here: what
 * the reconcile and the sync add to their charge under 'history' (neither breaks it out in its result), and what the
 * recordHistory backstop spends. Wraps the methods of the runtime's recorder, the instance they all hold.
 */
const historyCharges = new WeakMap<HistoryRecorder, { write: number; feed: number }>();
function historyChargeOf(recorder: HistoryRecorder): { write: number; feed: number } {
  let totals = historyCharges.get(recorder);
  if (!totals) {
    const sums = (totals = { write: 0, feed: 0 });
    historyCharges.set(recorder, sums);
    const recordWritten = recorder.recordWritten.bind(recorder);
    const recordBatch = recorder.recordBatch.bind(recorder);
    recorder.recordWritten = async (...args) => {
      const result = await recordWritten(...args);
      sums.write += result.requestCharge;
      return result;
    };
    recorder.recordBatch = async (...args) => {
      const result = await recordBatch(...args);
      sums.feed += result.requestCharge;
      return result;
    };
  }
  return totals;
}

/**
 * What a run did to the history: the records it added, how many of them changed nothing in the entity, its requests
 * to the history container (as the emulator counts them: the SDK's query-plan request beside each query counts as a
 * query), and the request charge the recorder reported for them (the emulator charges 1 RU per response, and the SDK
 * adds no charge for a query plan, so this is the recorder's requests without the query plans).
 */
async function historyOf<T>(work: () => Promise<Measured<T>>): Promise<{
  run: Measured<T>;
  history: { records: number; emptyDiffs: number; requests: ContainerCounts; requestCharge: number; requestChargeByPath: { write: number; feed: number } };
}> {
  const runtime = getRuntime();
  const [records, emptyDiffs] = [await historyRecords(), await historyRecords(EMPTY_DIFF)];
  const charge = historyChargeOf(runtime.history);
  const before = { ...charge };
  const run = await work();
  const byPath = { write: round(charge.write - before.write), feed: round(charge.feed - before.feed) };
  return {
    run,
    history: {
      records: (await historyRecords()) - records,
      emptyDiffs: (await historyRecords(EMPTY_DIFF)) - emptyDiffs,
      requests: stats(run.cosmos, runtime.config.cosmos.historyContainer),
      requestCharge: round(byPath.write + byPath.feed),
      requestChargeByPath: byPath,
    },
  };
}

const round = (n: number) => Math.round(n * 100) / 100;

/** A GET to one of the app's HTTP functions, as the Functions host would hand it over; the parsed JSON body. */
async function getJson<T>(
  handler: (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>,
  functionName: string,
  url: string,
  bearer: string,
  params: Record<string, string> = {},
): Promise<T> {
  const response = await handler(
    new HttpRequest({ method: 'GET', url: `http://localhost:7071${url}`, headers: { authorization: `Bearer ${bearer}` }, params }),
    new InvocationContext({ functionName, logHandler: () => undefined }),
  );
  if (response.status !== 200) throw new Error(`${functionName} answered ${response.status}: ${describeBody(response.body)}`);
  return JSON.parse(response.body as string) as T;
}

/**
 * The runtime as a started worker has it: the Functions host's start-up hook (functions/lib/http.ts) has run the
 * self-check — a token for every dependency and one harmless call to each — and a timer's maintenance run checks again
 * before it reconciles, so the reconcile of a running app finds its tokens cached. A timed run then measures its own
 * work, not the first token (which here would wait behind the emulator: the local identity endpoint shares its
 * process). The check's own calls are left out of the run's dependency figures.
 */
async function startedRuntime(): Promise<ReturnType<typeof getRuntime>> {
  const runtime = getRuntime();
  await runtime.selfCheck.run('start-up');
  (runtime.inMemoryMetrics as InMemoryMetrics).clear();
  return runtime;
}

const scenarios = {
  /** Creates the database and containers, as infrastructure does. */
  async provision() {
    const runtime = getRuntime();
    await ensureCosmosResources(runtime.cosmosClient, runtime.config.cosmos);
    await resetRuntime();
    return {};
  },

  /** The app's reconcile, as the timer runs it. */
  async reconcile(args: { staleCount?: number }) {
    const runtime = await startedRuntime();
    let stale = 0;
    if (args.staleCount) {
      // "n entities changed in Backstage", as the reconcile sees it: their mirror documents carry an older etag.
      // Only the ids are listed (whole documents would put the catalog in this process's memory, which is measured),
      // through the mirror index the reconcile reads: a filtered query makes the emulator scan the whole container for
      // every page, which at 100k entities outlasts the client's timeout.
      const container = database().container(runtime.config.cosmos.entitiesContainer);
      const ids: string[] = [];
      for await (const page of runtime.entityStore.streamIndex()) for (const item of page) if (!item.deleted) ids.push(item.id);
      ids.sort((a, b) => a.localeCompare(b));
      const step = Math.max(1, Math.floor(ids.length / args.staleCount));
      for (let i = 0; i < ids.length && stale < args.staleCount; i += step) {
        const { resource: doc } = await container.item(ids[i]!, ids[i]).read<EntityDocument>();
        await container.item(doc!.id, doc!.id).replace({ ...doc!, sourceEtag: `bench-stale-${randomUUID()}` });
        stale += 1;
      }
    }
    const { run, history } = await historyOf(() => measured(() => runtime.reconciler.reconcile()));
    const { failures, deletionGuard, ...result } = run.value;
    const dependencies = dependencyFigures();
    await resetRuntime();
    return { ms: run.ms, cosmos: run.cosmos, stale, result, failures: failures.slice(0, 5), guard: deletionGuard, history, dependencies };
  },

  /** The lower bound of a zero-change reconcile: streaming the catalog's uid/etag projection, nothing else. */
  async bareStream() {
    const runtime = await startedRuntime();
    const before = runtime.catalog.requestCount;
    const run = await measured(async () => {
      let items = 0;
      for await (const page of runtime.catalog.streamProjection()) items += page.length;
      return items;
    });
    const backstageRequests = runtime.catalog.requestCount - before;
    await resetRuntime();
    return { ms: run.ms, items: run.value, backstageRequests };
  },

  /** The other half of a zero-change reconcile's reading: streaming the mirror's index, nothing else. */
  async bareIndex() {
    const runtime = await startedRuntime();
    const run = await measured(async () => {
      let items = 0;
      for await (const page of runtime.entityStore.streamIndex()) items += page.length;
      return items;
    });
    await resetRuntime();
    return { ms: run.ms, items: run.value, cosmosRequests: run.cosmos.all.total };
  },

  /**
   * The lower bound of an initial load: the same documents written into the same emulator with nothing else to
   * do — the SDK's bulk executor in one call, and point creates with 64 in flight — and, since an initial load also
   * writes each entity's first history record, the documents and those records side by side: as the app's stores
   * write them (batch requests; the initial load's baseline) and through the SDK's bulk executor in one call each.
   */
  async bareWrite(args: { entitiesFile: string }) {
    const docs = readEntities(args.entitiesFile).map((entity) => toEntityDocument(entity));
    // Operations that got no answer or a transient one (a socket the stand-in closed, 408, 429, 5xx) are sent again,
    // as the sync's own writes are; a create that went in without its answer comes back 409, which is written.
    const bulkCreate = async (container: Container, items: ReadonlyArray<{ id: string }>, partitionKey: (item: never) => string) => {
      let operations: OperationInput[] = items.map((item) => ({ operationType: 'Create', partitionKey: partitionKey(item as never), resourceBody: item as never }));
      for (let round = 1; operations.length > 0; round += 1) {
        const results = await container.items.executeBulkOperations(operations);
        const status = (r: (typeof results)[number]) => r.response?.statusCode ?? (typeof r.error?.code === 'number' ? r.error.code : 0);
        const failed = results.filter((r) => status(r) >= 300 && (round === 1 || status(r) !== 409));
        const transient = failed.filter((r) => [0, 408, 429].includes(status(r)) || status(r) >= 500);
        if (failed.length > transient.length || (transient.length > 0 && round === 3)) {
          throw new Error(`${failed.length} bulk creates failed, e.g. ${JSON.stringify(failed[0]!.error ?? failed[0]!.response)}`);
        }
        retried += transient.length;
        operations = transient.map((r) => r.operationInput);
      }
    };
    let retried = 0;
    const bulkContainer = await scratchContainer(`bare-bulk-${randomUUID().slice(0, 8)}`);
    const bulk = await measured(async () => {
      await bulkCreate(bulkContainer, docs, (doc: EntityDocument) => doc.id);
      return 0;
    });
    // What an initial load has to write: each document and its first history record (built beforehand, not timed),
    // the two containers side by side.
    const now = new Date();
    const records = docs.map((doc) => buildHistoryRecord(doc, undefined, { now, ttlInSeconds: 86_400 })!);
    const withHistoryContainers = {
      docs: await scratchContainer(`bare-docs-${randomUUID().slice(0, 8)}`),
      history: await scratchContainer(`bare-history-${randomUUID().slice(0, 8)}`, '/entityId'),
    };
    const withHistory = await measured(async () => {
      await Promise.all([
        bulkCreate(withHistoryContainers.docs, docs, (doc: EntityDocument) => doc.id),
        bulkCreate(withHistoryContainers.history, records, (record: HistoryRecord) => record.entityId),
      ]);
      return 0;
    });
    // The same, as the app writes them: its stores' batch requests (the entity store's creates, the history store's
    // records), the two containers side by side.
    const batchContainers = {
      docs: await scratchContainer(`bare-batch-docs-${randomUUID().slice(0, 8)}`),
      history: await scratchContainer(`bare-batch-history-${randomUUID().slice(0, 8)}`, '/entityId'),
    };
    const storeOptions = { throttleRetry: getRuntime().config.cosmos.throttleRetry };
    const batch = await measured(async () => {
      const [written, recorded] = await Promise.all([
        new EntityStore(batchContainers.docs, storeOptions).writeMany(
          docs.map((doc) => ({ kind: 'create', doc })),
          { bulk: true },
        ),
        new HistoryStore(batchContainers.history, storeOptions).addMany(records),
      ]);
      const failed = written.filter((w) => w.statusCode !== 201).length + recorded.filter((r) => r !== true).length;
      if (failed > 0) throw new Error(`${failed} batch writes failed`);
      return 0;
    });
    const pointContainer = await scratchContainer(`bare-point-${randomUUID().slice(0, 8)}`);
    const point = await measured(async () => {
      const limit = pLimit(64);
      await Promise.all(docs.map((doc) => limit(() => pointContainer.items.create(doc))));
      return 0;
    });
    await resetRuntime();
    return {
      documents: docs.length,
      bulk: { ms: bulk.ms, failed: bulk.value, requests: stats(bulk.cosmos, bulkContainer.id).total },
      point: { ms: point.ms, requests: stats(point.cosmos, pointContainer.id).total },
      /** Bulk operations sent again after a transient failure, over the three bulk writes. */
      retried,
      /** The documents and their history records as the app writes them (batch requests): the initial load's baseline. */
      batchWithHistory: {
        ms: batch.ms,
        requests: stats(batch.cosmos, batchContainers.docs.id).total + stats(batch.cosmos, batchContainers.history.id).total,
      },
      bulkWithHistory: {
        ms: withHistory.ms,
        records: records.length,
        requests: stats(withHistory.cosmos, withHistoryContainers.docs.id).total + stats(withHistory.cosmos, withHistoryContainers.history.id).total,
      },
    };
  },

  /** The naive sync: read every full entity, upsert every document, one at a time. */
  async naive() {
    const container = await scratchContainer(`naive-${randomUUID().slice(0, 8)}`);
    const pager = fullEntityPager();
    const run = await measured(async () => {
      let writes = 0;
      for await (const page of pager.pages(500)) {
        for (const entity of page) {
          await container.items.upsert(toEntityDocument(entity));
          writes += 1;
        }
      }
      return writes;
    });
    await resetRuntime();
    return { ms: run.ms, writes: run.value, backstageRequests: pager.requests, cosmos: stats(run.cosmos, container.id) };
  },

  /** Projects every mirror document's edges, as the change-feed trigger does on a first deployment (100 per invocation). */
  async projectAll() {
    const runtime = getRuntime();
    const { resources } = await runtime.cosmosClient.database(runtime.config.cosmos.databaseName).container(runtime.config.cosmos.entitiesContainer).items.query('SELECT * FROM c').fetchAll();
    const run = await measured(async () => {
      const totals = { edgesAdded: 0, failed: 0, drifted: 0 };
      for (let i = 0; i < resources.length; i += 100) {
        const result = await runtime.projector.projectBatch(resources.slice(i, i + 100));
        totals.edgesAdded += result.edgesAdded;
        totals.failed += result.failed;
        totals.drifted += result.drifted;
      }
      return totals;
    });
    await resetRuntime();
    return { ms: run.ms, documents: resources.length, ...run.value, cosmos: run.cosmos.all };
  },

  /** Graph traversals from `roots`, downstream and upstream, at each depth: time and Cosmos requests per query. */
  async graph(args: { roots: string[]; depths: number[] }) {
    const runtime = getRuntime();
    const out: GraphRow[] = [];
    for (const direction of ['downstream', 'upstream'] as const) {
      for (const depth of args.depths) {
        const times: number[] = [];
        const requests: number[] = [];
        const nodes: number[] = [];
        const queries: number[] = [];
        for (const root of args.roots) {
          const run = await measured(() => runtime.graph.traverse({ root, direction, depth, maxNodes: 10_000 }));
          if (!run.value) throw new Error(`graph root ${root} is not in the mirror`);
          times.push(run.ms);
          requests.push(run.cosmos.all.total);
          nodes.push(run.value.nodes.length);
          queries.push(run.value.stats.queries);
        }
        out.push({ direction, depth, ms: summarize(times), cosmosRequests: summarize(requests), queries: summarize(queries), nodes: summarize(nodes) });
      }
    }
    await resetRuntime();
    return out;
  },

  /**
   * The incremental path as deployed: real catalog edits in Backstage, then one event per changed entity through
   * the HTTP intake → the broker → the session trigger (host.json settings) → Cosmos → the change-feed triggers
   * (the functions' own feedPollDelay): the edge projection, and the history's backstop (recordHistory), whose
   * lease is caught up as on a running deployment, so each version costs it one point read. Latency from the POST to
   * the mirror write (its history record included: the sync writes it before it settles the message) and to the
   * edges.
   */
  async incremental(args: {
    file: string;
    entities: Array<{ name: string; dependsOn: string[] }>;
    rounds: number;
    perRound: number;
    locationRef: string;
    staticToken: string;
    brokerConnection: string;
    sessions: { maxConcurrentSessions: number; sessionIdleTimeout: string };
    feedPollDelayInMs: number;
    historyFeedPollDelayInMs: number;
    spacingInMs: number;
    senderToken: string;
  }) {
    const runtime = getRuntime();
    const admin = new CatalogClient({ discoveryApi: { getBaseUrl: (pluginId) => Promise.resolve(`${runtime.config.backstage.baseUrl}/api/${pluginId}`) } });
    const harness = { token: args.staticToken };
    const database = runtime.cosmosClient.database(runtime.config.cosmos.databaseName);
    const synced = new Map<string, number>();
    const projected = new Map<string, number>();
    const backstopped = new Set<string>(); // doc ids whose expected version the history's feed has seen
    const expected = new Map<string, string>(); // doc id → the etag the change produced
    const sessions = startHostSyncTrigger(args, (message) => {
      for (const id of syncedIds(message)) if (expected.has(id) && !synced.has(id)) synced.set(id, performance.now());
    });
    const feed = startChangeFeedTrigger({
      functionName: 'projectEdges',
      monitored: database.container(runtime.config.cosmos.entitiesContainer),
      leases: database.container(runtime.config.cosmos.leasesContainer),
      leaseContainerPrefix: 'projectEdges-',
      startFromBeginning: false,
      maxItemsPerInvocation: 100,
      feedPollDelayInMs: args.feedPollDelayInMs,
      logHandler: () => undefined,
      handler: async (documents, context) => {
        await projectEdges(documents, context);
        const now = performance.now();
        for (const doc of documents as EntityDocument[]) {
          if (expected.get(doc.id) === doc.sourceEtag && !projected.has(doc.id)) projected.set(doc.id, now);
        }
      },
    });
    const historyFeed = startChangeFeedTrigger({
      functionName: 'recordHistory',
      monitored: database.container(runtime.config.cosmos.entitiesContainer),
      leases: database.container(runtime.config.cosmos.leasesContainer),
      leaseContainerPrefix: 'recordHistory-',
      // The deployed function starts from the beginning once, on a new deployment; the mirror here is recorded already.
      startFromBeginning: false,
      maxItemsPerInvocation: 100,
      feedPollDelayInMs: args.historyFeedPollDelayInMs,
      logHandler: () => undefined,
      handler: async (documents, context) => {
        await recordHistory(documents, context);
        for (const doc of documents as EntityDocument[]) if (expected.get(doc.id) === doc.sourceEtag) backstopped.add(doc.id);
      },
    });
    // Let the change feed catch up with what is already there before measuring.
    await new Promise((r) => setTimeout(r, Math.max(args.feedPollDelayInMs, args.historyFeedPollDelayInMs) * 2 + 500));

    const entities = args.entities.map((e) => ({ ...e, description: 'initial', extra: false }));
    const toYaml = () =>
      entities
        .map((e) =>
          JSON.stringify({
            apiVersion: 'backstage.io/v1alpha1',
            kind: 'Component',
            metadata: { name: e.name, description: e.description },
            spec: { type: 'service', lifecycle: 'production', owner: 'group:bench', dependsOn: e.extra ? [...e.dependsOn, `component:gone-${e.name}`] : e.dependsOn },
          }),
        )
        .join('\n---\n');
    const posted = new Map<string, number>();
    const latencies = { mirror: [] as number[], edges: [] as number[], mirrorToEdges: [] as number[] };
    const sendToken = args.senderToken;
    const backstageBefore = runtime.catalog.requestCount;
    const { run, history } = await historyOf(() => measured(async () => {
      for (let round = 0; round < args.rounds; round += 1) {
        const chosen = entities.slice((round * args.perRound) % entities.length).slice(0, args.perRound);
        for (const e of chosen) {
          e.description = `round ${round}`;
          e.extra = !e.extra; // one dependsOn added or removed: one edge to write or delete
        }
        writeFileSync(args.file, toYaml());
        const refs = chosen.map((e) => `component:default/${e.name}`);
        const before = new Map((await admin.getEntitiesByRefs({ entityRefs: refs }, harness)).items.map((x, i) => [refs[i]!, x?.metadata.etag]));
        await admin.refreshEntity(args.locationRef, harness);
        // Wait until Backstage serves every changed entity (its processing is not what is measured).
        for (const deadline = Date.now() + 120_000; ; ) {
          const now = (await admin.getEntitiesByRefs({ entityRefs: refs }, harness)).items;
          if (now.every((x, i) => x && x.metadata.etag !== before.get(refs[i]!) && x.metadata.description === `round ${round}`)) {
            now.forEach((x) => expected.set(`component:default:${x!.metadata.name}`, x!.metadata.etag!));
            break;
          }
          if (Date.now() > deadline) throw new Error(`Backstage did not process round ${round}`);
          await new Promise((r) => setTimeout(r, 200));
        }
        for (const [i, ref] of refs.entries()) {
          const id = `component:default:${chosen[i]!.name}`;
          synced.delete(id);
          projected.delete(id);
          backstopped.delete(id);
          posted.set(id, performance.now());
          await postEvent(ref, expected.get(id)!, sendToken);
          await new Promise((r) => setTimeout(r, args.spacingInMs));
        }
        // Also until the history's backstop has seen every version, so its reads fall inside the counted section.
        for (const deadline = Date.now() + 60_000; ; ) {
          if (refs.every((_, i) => projected.has(`component:default:${chosen[i]!.name}`) && backstopped.has(`component:default:${chosen[i]!.name}`))) break;
          if (Date.now() > deadline) throw new Error(`round ${round}: not every change reached the edges and the history's feed`);
          await new Promise((r) => setTimeout(r, 20));
        }
        for (const e of chosen) {
          const id = `component:default:${e.name}`;
          latencies.mirror.push(synced.get(id)! - posted.get(id)!);
          latencies.edges.push(projected.get(id)! - posted.get(id)!);
          latencies.mirrorToEdges.push(projected.get(id)! - synced.get(id)!);
        }
      }
    }));
    // Caught up: what the backlog monitor reports when nothing is behind (its own reads are not counted above).
    const backlogs = await runtime.backlogs.measure();
    await sessions.stop();
    await feed.stop();
    await historyFeed.stop();
    const changes = latencies.mirror.length;
    const entitiesCounts = stats(run.cosmos, runtime.config.cosmos.entitiesContainer);
    const edgeCounts = stats(run.cosmos, runtime.config.cosmos.edgesContainer);
    const leaseCounts = stats(run.cosmos, runtime.config.cosmos.leasesContainer);
    const historyCounts = stats(run.cosmos, runtime.config.cosmos.historyContainer);
    const backstageRequests = runtime.catalog.requestCount - backstageBefore;
    const dependencies = dependencyFigures();
    await resetRuntime();
    return {
      changes,
      feedPollDelayInMs: args.feedPollDelayInMs,
      historyFeedPollDelayInMs: args.historyFeedPollDelayInMs,
      latencyMs: { mirror: summarize(latencies.mirror), edges: summarize(latencies.edges), mirrorToEdges: summarize(latencies.mirrorToEdges) },
      perChange: {
        backstageRequests: backstageRequests / changes,
        entities: entitiesCounts,
        edges: edgeCounts,
        leases: leaseCounts,
        history: historyCounts,
      },
      history,
      wallMs: run.ms,
      dependencies,
      backlogs: { changeFeed: backlogs.changeFeedTotals, queue: backlogs.queue, failures: backlogs.failures },
    };

    async function postEvent(ref: string, etag: string, bearer: string): Promise<void> {
      const response = await catalogEvents(
        new HttpRequest({
          method: 'POST',
          url: 'http://localhost:7071/api/catalog/events',
          headers: { 'content-type': 'application/cloudevents+json', authorization: `Bearer ${bearer}` },
          body: {
            string: JSON.stringify({
              specversion: '1.0',
              id: randomUUID(),
              source: runtime.config.backstage.baseUrl,
              type: 'io.backstage.catalog.entity.upserted',
              subject: ref,
              time: new Date().toISOString(),
              data: { entityRef: ref, etag },
            }),
          },
        }),
        new InvocationContext({ functionName: 'catalogEvents', logHandler: () => undefined }),
      );
      if (response.status !== 202) throw new Error(`intake answered ${response.status}: ${describeBody(response.body)}`);
    }
  },

  /**
   * The history, read through the HTTP functions as a client would: (a) the first page of each of `entities`'
   * history, one call at a time (time and Cosmos requests per call); (b) the change log followed from the beginning
   * at `changesPageSize` until a page comes back empty (caught up), as a new consumer would: every record, once.
   */
  /**
   * A storm: `count` entities changed at once (their mirror documents made stale, as the 1 % reconcile does), one
   * event each posted to the HTTP intake 100 to a request (as the module sends them), synced by the session trigger
   * with host.json's settings until every one is fresh — Backstage requests and wall time. Then the same entities
   * made stale again and the reconcile run: what the same change costs on the other path. Run with
   * INTAKE_BATCH_SYNC_MIN_EVENTS=0, it measures the one-message-per-entity path instead.
   */
  async storm(args: { count: number; brokerConnection: string; sessions: { maxConcurrentSessions: number; sessionIdleTimeout: string }; senderToken: string }) {
    const runtime = getRuntime();
    const metrics = runtime.inMemoryMetrics as InMemoryMetrics;
    const entities = database().container(runtime.config.cosmos.entitiesContainer);
    const { resources } = await entities.items.query<EntityDocument>('SELECT * FROM c WHERE NOT IS_DEFINED(c.deleted) OR c.deleted = false').fetchAll();
    resources.sort((a, b) => a.id.localeCompare(b.id));
    const step = Math.max(1, Math.floor(resources.length / args.count));
    const chosen = resources.filter((_, i) => i % step === 0).slice(0, args.count);
    const limit = pLimit(32);
    const makeStale = () => Promise.all(chosen.map((doc) => limit(() => entities.item(doc.id, doc.id).replace({ ...doc, sourceEtag: `bench-stale-${randomUUID()}` }))));
    const counters = () => ({
      requests: runtime.catalog.requestCount,
      retries: metrics.counter('backstage.retries'),
      reads: metrics.summary('sync.read_batch_size') ?? { count: 0, sum: 0 },
      batchMessages: metrics.summary('sync.batch_size')?.count ?? 0,
    });

    await makeStale();
    const waiting = new Set(chosen.map((doc) => doc.id));
    const sessions = startHostSyncTrigger(args, (message) => syncedIds(message).forEach((id) => waiting.delete(id)));
    const stormBefore = counters();
    const storm = await measured(async () => {
      for (let i = 0; i < chosen.length; i += 100) {
        const batch = chosen.slice(i, i + 100).map((doc) => ({
          specversion: '1.0',
          id: randomUUID(),
          source: runtime.config.backstage.baseUrl,
          type: 'io.backstage.catalog.entity.upserted',
          subject: doc.entityRef,
          time: new Date().toISOString(),
          data: { entityRef: doc.entityRef, ...(doc.sourceEtag && { etag: doc.sourceEtag }) },
        }));
        const response = await catalogEvents(
          new HttpRequest({
            method: 'POST',
            url: 'http://localhost:7071/api/catalog/events',
            headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${args.senderToken}` },
            body: { string: JSON.stringify(batch) },
          }),
          new InvocationContext({ functionName: 'catalogEvents', logHandler: () => undefined }),
        );
        if (response.status !== 202) throw new Error(`intake answered ${response.status}: ${describeBody(response.body)}`);
      }
      for (const deadline = Date.now() + 30 * 60_000; waiting.size > 0; ) {
        if (Date.now() > deadline) throw new Error(`the storm: ${waiting.size} of ${chosen.length} entities never synced`);
        await new Promise((r) => setTimeout(r, 50));
      }
    });
    await sessions.stop();
    const stormAfter = counters();
    const stormDependencies = dependencyFigures();
    const stillStale = (await Promise.all(chosen.map((doc) => limit(() => entities.item(doc.id, doc.id).read<EntityDocument>())))).filter((r) => r.resource?.sourceEtag?.startsWith('bench-stale-')).length;
    if (stillStale > 0) throw new Error(`the storm left ${stillStale} entities stale`);

    await makeStale();
    const reconcileBefore = counters();
    const reconcile = await measured(() => runtime.reconciler.reconcile());
    const reconcileAfter = counters();
    await resetRuntime();
    const backstage = (a: ReturnType<typeof counters>, b: ReturnType<typeof counters>) => ({ requests: b.requests - a.requests, retries: b.retries - a.retries });
    return {
      count: chosen.length,
      storm: {
        ms: storm.ms,
        backstage: backstage(stormBefore, stormAfter),
        /** Batch messages synced (the intake queues a request of INTAKE_BATCH_SYNC_MIN_EVENTS entities or more as batches). */
        batchMessages: stormAfter.batchMessages - stormBefore.batchMessages,
        /** The single-entity sync's reads: how many requests they took, and how many refs each carried on average. */
        singleReads: { requests: stormAfter.reads.count - stormBefore.reads.count, meanRefs: (stormAfter.reads.sum - stormBefore.reads.sum) / Math.max(1, stormAfter.reads.count - stormBefore.reads.count) },
        cosmos: storm.cosmos.all,
        /** The storm's dependency calls (`dependency.duration`), by dependency and operation. */
        dependencies: stormDependencies,
      },
      reconcile: { ms: reconcile.ms, backstage: backstage(reconcileBefore, reconcileAfter), writes: reconcile.value.writes, cosmos: reconcile.cosmos.all },
    };
  },

  /**
   * The edge projection's poll delay, traded off: for each candidate `feedPollDelay`, the projection's change-feed
   * trigger (the stand-in of the host's, with the function's real handler) on the mirror, then
   *
   * - idle: the change-feed requests it sends in `idleWindowInMs` with nothing changing (counted by the emulator),
   *   scaled to an hour — what the delay costs when nothing happens;
   * - latency: `writes` mirror documents rewritten one at a time (a `dependsOn` relation toggled, so every write has
   *   an edge to add or remove), each at a random moment in the poll cycle, from the write's answer to the
   *   projection's handler returning (the edges written).
   *
   * Its own documents (`feedpoll-*`) and lease prefixes, so it runs on any mirror without touching what is there.
   */
  async feedPoll(args: { delaysInMs: number[]; writes: number; idleWindowInMs: number; seed: number }) {
    const runtime = getRuntime();
    const entities = database().container(runtime.config.cosmos.entitiesContainer);
    const leases = database().container(runtime.config.cosmos.leasesContainer);
    const random = seededRandom(args.seed);
    const entityOf = (i: number, marker: string, extra: boolean): Entity => {
      const name = `feedpoll-${i}`;
      const targets = [`component:default/feedpoll-target-${i}`, ...(extra ? [`component:default/feedpoll-extra-${i}`] : [])];
      return {
        apiVersion: 'backstage.io/v1alpha1',
        kind: 'Component',
        metadata: { name, namespace: 'default', description: marker, uid: `feedpoll-uid-${i}`, etag: marker },
        spec: { type: 'service', lifecycle: 'production', owner: 'group:default/bench', dependsOn: targets },
        relations: targets.map((targetRef) => ({ type: 'dependsOn', targetRef })),
      };
    };
    const extra = new Map<number, boolean>();
    for (let i = 0; i < args.writes; i += 1) {
      extra.set(i, false);
      await entities.items.upsert(toEntityDocument(entityOf(i, 'initial', false)));
    }
    const rows = [];
    for (const delay of args.delaysInMs) {
      const done = new Map<string, number>(); // marker → when the projection's handler returned with it
      const trigger = startChangeFeedTrigger({
        functionName: 'projectEdges',
        monitored: entities,
        leases,
        leaseContainerPrefix: `bench-feedpoll-${delay}-${randomUUID()}-`,
        startFromBeginning: false,
        maxItemsPerInvocation: 100,
        feedPollDelayInMs: delay,
        logHandler: () => undefined,
        handler: async (documents, context) => {
          await projectEdges(documents, context);
          const now = performance.now();
          for (const doc of documents as EntityDocument[]) {
            const marker = isTombstone(doc) ? undefined : doc.entity.metadata.description;
            if (marker?.startsWith('feedpoll ')) done.set(marker, now);
          }
        },
      });
      try {
        for (const deadline = Date.now() + 30_000; !trigger.idle; ) {
          if (Date.now() > deadline) throw new Error(`the change-feed trigger (delay ${delay} ms) never caught up`);
          await new Promise((r) => setTimeout(r, 20));
        }
        // Nothing changes in the window: every change-feed request is a poll that finds nothing.
        const idle = await measured(() => new Promise((r) => setTimeout(r, args.idleWindowInMs)));
        const idlePolls = stats(idle.cosmos, runtime.config.cosmos.entitiesContainer).changefeed ?? 0;
        const latencies: number[] = [];
        for (let i = 0; i < args.writes; i += 1) {
          // A random moment in the poll cycle, so the samples cover the whole delay.
          await new Promise((r) => setTimeout(r, random() * delay));
          const marker = `feedpoll ${delay} ${i}`;
          extra.set(i, !extra.get(i));
          await entities.items.upsert(toEntityDocument(entityOf(i, marker, extra.get(i)!)));
          const written = performance.now();
          for (const deadline = Date.now() + 60_000; !done.has(marker); ) {
            if (Date.now() > deadline) throw new Error(`delay ${delay} ms: write ${i} never reached the edges`);
            await new Promise((r) => setTimeout(r, 5));
          }
          latencies.push(done.get(marker)! - written);
        }
        rows.push({
          feedPollDelayInMs: delay,
          idle: { windowMs: args.idleWindowInMs, polls: idlePolls, pollsPerHour: Math.round((idlePolls * 3_600_000) / args.idleWindowInMs) },
          mirrorToEdgesMs: summarize(latencies),
        });
      } finally {
        await trigger.stop();
      }
    }
    await resetRuntime();
    return { writes: args.writes, rows };
  },

  async historyReads(args: {
    entities: Array<{ kind: string; namespace: string; name: string }>;
    pageSize: number;
    changesPageSize: number;
    include: 'entity' | 'diff' | 'none';
    readerToken: string;
  }) {
    // Counted first, which also connects the runtime to Cosmos before the first measured call.
    const inContainer = await historyRecords();
    const times: number[] = [];
    const requests: number[] = [];
    const items: number[] = [];
    for (const { kind, namespace, name } of args.entities) {
      const path = `/api/entities/${encodeURIComponent(kind)}/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/history?pageSize=${args.pageSize}`;
      const call = await measured(() => getJson<{ items: unknown[] }>(getEntityHistory, 'getEntityHistory', path, args.readerToken, { kind, namespace, name }));
      if (call.value.items.length === 0) throw new Error(`${kind}:${namespace}/${name} has no history`);
      times.push(call.ms);
      requests.push(call.cosmos.all.total);
      items.push(call.value.items.length);
    }

    const pageMs: number[] = [];
    const seen = new Set<string>();
    const follow = await measured(async () => {
      let records = 0;
      let cursor: string | undefined;
      for (;;) {
        const query = `pageSize=${args.changesPageSize}&include=${args.include}${cursor ? `&after=${encodeURIComponent(cursor)}` : ''}`;
        const started = performance.now();
        const page = await getJson<{ items: Array<{ id: string; entityRef: string }>; cursor: string }>(getChanges, 'getChanges', `/api/changes?${query}`, args.readerToken);
        pageMs.push(performance.now() - started);
        cursor = page.cursor;
        if (page.items.length === 0) return records;
        records += page.items.length;
        for (const item of page.items) seen.add(`${item.entityRef}|${item.id}`);
        // Every page but the last has a record, so more pages than records means the cursor goes round in circles.
        if (pageMs.length > inContainer + 1) throw new Error(`the change log did not catch up after ${pageMs.length} pages (${records} records)`);
      }
    });
    await resetRuntime();
    return {
      entityHistory: { calls: times.length, pageSize: args.pageSize, ms: summarize(times), cosmosRequests: summarize(requests), items: summarize(items) },
      changes: {
        pageSize: args.changesPageSize,
        include: args.include,
        /** Records in the history container when the follow started (nothing writes during it). */
        inContainer,
        records: follow.value,
        distinct: seen.size,
        /** Requests, the last (empty) one included. */
        pages: pageMs.length,
        ms: follow.ms,
        recordsPerSecond: follow.value / (follow.ms / 1000),
        pageMs: summarize(pageMs),
        cosmos: follow.cosmos.all,
      },
    };
  },
};

serveScenarios(scenarios);

/** The scenarios by name: what each takes from bench/index.ts and what it answers (through the harness, as JSON). */
export type Scenarios = typeof scenarios;
export type ScenarioName = keyof Scenarios;
export type ScenarioArgs<K extends ScenarioName> = Parameters<Scenarios[K]> extends [infer A] ? A : Record<string, never>;
export type ScenarioResult<K extends ScenarioName> = Awaited<ReturnType<Scenarios[K]>>;

/** A function's response body in an error message: the intake answers strings (functions/lib/http.ts). */
function describeBody(body: HttpResponseInit['body']): string {
  if (body === undefined || body === null) return '(no body)';
  return typeof body === 'string' ? body : `(a ${body.constructor.name} body)`;
}
