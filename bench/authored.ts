/**
 * The authored path, measured end to end on the local stack: `PUT /api/authored/…` → the `authored` container → the
 * Backstage entity provider (its default settings: the change feed read every 2 s) → Backstage's catalog → the
 * change-events module (its default schedule, every second, reading publication generations) → the intake → the
 * queue → the sync → the mirror → the edge projection (the function's own feedPollDelay). On a generated catalog
 * (10k entities by default), so that Backstage and the mirror carry a realistic load.
 *
 * Per write: when the PUT was sent, when the catalog API first served the entity (polled every 50 ms — so that moment
 * is at most 50 ms and a request late), when the sync wrote its mirror document, when the projection wrote its edges.
 * "Catalog API → mirror" is the stitched change's way through the module, the intake, the queue and the sync.
 *
 *   npm run bench:authored                          10k catalog, 100 writes
 *   npm run bench:authored -- --size 300 --writes 20
 *
 * `npm run bench` runs it too, after the sizes. Latencies are wall-clock on a shared machine; the requests per change
 * do not drift.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { catalogEvents } from '../functions/catalogEvents';
import { projectEdges } from '../functions/projectEdges';
import { putAuthored } from '../functions/putAuthored';
import { syncEntity } from '../functions/syncEntity';
import { generateCatalog } from '../local/catalog-generator';
import type { CosmosRequestCounts } from '../local/cosmos';
import { startChangeFeedTrigger } from '../local/functions-host/cosmos';
import { startHttpHost } from '../local/functions-host/http';
import { startSessionTrigger } from '../local/functions-host/service-bus';
import { catalogClient, LOCAL_API_AUDIENCE, startLocalStack, waitForCatalog } from '../local/stack';
import { PROJECTION_FEED_POLL_DELAY_IN_MS } from '../shared/edges/projector';
import { getRuntime, resetRuntime } from '../shared/runtime';
import { summarize, syncedIds, type Summary } from './harness';

export interface AuthoredBenchOptions {
  size: number;
  writes: number;
  /** Between two PUTs: the writes are spread out, so this measures latency, not a burst's throughput. */
  spacingInMs: number;
  seed: number;
  /** The change-events module's schedule in seconds (its default, and npm start's: 1). */
  moduleIntervalInSeconds: number;
  log?: (line: string) => void;
}

export interface AuthoredBenchResult {
  size: number;
  writes: number;
  spacingInMs: number;
  moduleIntervalInSeconds: number;
  /**
   * From sending the PUT to the entity in Backstage's catalog API, and to its document in the mirror; from the
   * catalog API serving it to the mirror document; from the mirror write to its edges.
   */
  latencyMs: { backstage: Summary; mirror: Summary; backstageToMirror: Summary; mirrorToEdges: Summary };
  /** Cosmos DB requests per authored change, by container (the provider's idle polling included: see `idle`). */
  perChange: Record<string, Partial<CosmosRequestCounts>>;
  /** The provider's cost while nothing changes: change-feed reads per minute. */
  idle: { changeFeedReadsPerMinute: number };
}

const SESSION_SETTINGS = { maxConcurrentSessions: 8, sessionIdleTimeoutInMs: 1_000 };

export async function measureAuthored(options: AuthoredBenchOptions): Promise<AuthoredBenchResult> {
  const log = options.log ?? (() => undefined);
  const database = `bench-authored-${Date.now()}`;
  const staticToken = 'bench-authored-static-token';
  const dir = mkdtempSync(join(tmpdir(), 'bench-authored-'));
  // The catalog first, into a Backstage of its own whose databases stay on disk: the stack's Backstage then starts on
  // them, so the change-events module's first run takes the whole catalog as its baseline (instead of publishing
  // 10k entities as they are ingested, which would still be syncing while the writes are measured).
  const catalog = { staticToken, processingIntervalSeconds: 3600, catalogFile: join(dir, 'catalog.json'), databaseDirectory: join(dir, 'db') };
  const generated = generateCatalog(options.size, options.seed);
  log(`authored: loading ${generated.length} entities into Backstage`);
  const loader = await startLocalStack({ backstage: catalog });
  try {
    await loader.backstage!.loadCatalog(generated);
    await waitForCatalog(loader.backstage!, { count: generated.length, settled: true }, { timeoutInMs: Math.max(300_000, generated.length * 100), pollIntervalInMs: 1_000 });
  } finally {
    await loader.stop();
  }
  const stack = await startLocalStack({
    identity: true,
    cosmos: { provision: database },
    serviceBus: true,
    functions: true,
    backstage: {
      // New and changed entities are processed at once; nothing else is reprocessed during the run.
      ...catalog,
      changeEvents: { intervalInSeconds: options.moduleIntervalInSeconds },
      authoredEntities: {},
    },
  });
  const stopApp: Array<() => Promise<void>> = [];
  try {
    const backstage = stack.backstage!;
    const emulator = stack.cosmos!;
    Object.assign(process.env, stack.settings({ COSMOS_DATABASE_NAME: database, LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'error' }));

    // The app as the host runs it: the intake and the authoring API over HTTP where the module posts, the sync on
    // the queue, the projection on the change feed. The sync records when each expected entity reaches the mirror.
    let lastEventAt = performance.now();
    const expected = new Set<string>();
    const mirroredAt = new Map<string, number>();
    const projectedAt = new Map<string, number>();
    const http = await startHttpHost({
      port: Number(new URL(stack.functionsUrl!).port),
      routes: [
        {
          functionName: 'catalogEvents',
          route: 'catalog/events',
          methods: ['POST'],
          handler: (request, context) => {
            lastEventAt = performance.now();
            return catalogEvents(request, context);
          },
        },
        { functionName: 'putAuthored', route: 'authored/{kind}/{namespace}/{name}', methods: ['PUT'], handler: putAuthored },
      ],
      logHandler: () => undefined,
    });
    stopApp.push(() => http.close());
    const sessions = startSessionTrigger({
      connection: stack.broker!.connectionString,
      queueName: getRuntime().config.serviceBus.queueName,
      functionName: 'syncEntity',
      ...SESSION_SETTINGS,
      logHandler: () => undefined,
      handler: async (input, context) => {
        await syncEntity(input, context);
        const now = performance.now();
        for (const id of syncedIds(input.messages)) if (expected.has(id) && !mirroredAt.has(id)) mirroredAt.set(id, now);
      },
    });
    stopApp.push(() => sessions.stop());
    const { cosmosClient, config } = getRuntime();
    const db = cosmosClient.database(config.cosmos.databaseName);
    const feed = startChangeFeedTrigger({
      functionName: 'projectEdges',
      monitored: db.container(config.cosmos.entitiesContainer),
      leases: db.container(config.cosmos.leasesContainer),
      leaseContainerPrefix: 'projectEdges-',
      maxItemsPerInvocation: 100,
      feedPollDelayInMs: PROJECTION_FEED_POLL_DELAY_IN_MS,
      logHandler: () => undefined,
      handler: async (documents, context) => {
        await projectEdges(documents, context);
        const now = performance.now();
        // Also when the sync's handler has not returned yet (it returns after the write's history record and the
        // rest of its batch): the projection can be done with a document before that.
        for (const doc of documents as Array<{ id: string }>) if (expected.has(doc.id) && !projectedAt.has(doc.id)) projectedAt.set(doc.id, now);
      },
    });
    stopApp.push(() => feed.stop());

    // The mirror: a reconcile, its edges projected, and nothing left in flight before the measurement starts.
    await waitForCatalog(backstage, { count: generated.length }, { timeoutInMs: 120_000, pollIntervalInMs: 1_000 });
    log('authored: mirroring the catalog');
    await getRuntime().reconciler.reconcile();
    const quietForInMs = options.moduleIntervalInSeconds * 2_000 + 1_000;
    for (;;) {
      const queue = stack.broker!.stats('entity-sync');
      if (queue.active + queue.scheduled + queue.locked === 0 && sessions.inFlight === 0 && feed.idle && performance.now() - lastEventAt > quietForInMs) break;
      await new Promise((r) => setTimeout(r, 500));
    }

    // What the provider costs while nothing changes.
    emulator.resetRequests();
    const idleStarted = performance.now();
    await new Promise((r) => setTimeout(r, 15_000));
    const idleMinutes = (performance.now() - idleStarted) / 60_000;
    const idleFeedReads = emulator.requestsByContainer().authored?.changefeed ?? 0;

    // The writes.
    log(`authored: ${options.writes} writes, ${options.spacingInMs} ms apart`);
    const components = generated.filter((e) => e.kind === 'Component').map((e) => e.metadata.name);
    const token = await stack.identity!.mint({ audience: LOCAL_API_AUDIENCE, subject: 'bench-producer', roles: ['Catalog.Write'], lifetimeInSeconds: 3600 });
    const names = Array.from({ length: options.writes }, (_, i) => `authored-bench-${i}`);
    for (const name of names) expected.add(`component:default:${name}`);
    const sentAt = new Map<string, number>();
    const seenAt = new Map<string, number>();
    const client = catalogClient(backstage.baseUrl);
    emulator.resetRequests();
    let writing = true;
    const poller = (async () => {
      while (writing || seenAt.size < names.length) {
        const outstanding = names.filter((n) => sentAt.has(n) && !seenAt.has(n));
        if (outstanding.length > 0) {
          const { items } = await client.getEntitiesByRefs({ entityRefs: outstanding.map((n) => `component:default/${n}`), fields: ['kind'] }, { token: staticToken });
          const now = performance.now();
          outstanding.forEach((n, i) => items[i] && seenAt.set(n, now));
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const puts = names.map(async (name, i) => {
      await new Promise((r) => setTimeout(r, i * options.spacingInMs));
      const body = {
        apiVersion: 'backstage.io/v1alpha1',
        kind: 'Component',
        metadata: { name, description: 'written by the authored-path benchmark' },
        spec: { type: 'service', lifecycle: 'experimental', owner: 'group:default/platform', dependsOn: [`component:default/${components[(i * 7) % components.length]}`] },
      };
      sentAt.set(name, performance.now());
      const response = await fetch(`${stack.functionsUrl}/api/authored/component/default/${name}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (response.status !== 201) throw new Error(`PUT ${name} answered ${response.status}: ${await response.text()}`);
    });
    await Promise.all(puts);
    const deadline = performance.now() + 180_000;
    const done = () => seenAt.size === names.length && mirroredAt.size === names.length && projectedAt.size === names.length;
    while (!done() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    writing = false;
    if (!done()) {
      throw new Error(`after 3 minutes ${seenAt.size} of ${names.length} authored entities were in Backstage, ${mirroredAt.size} in the mirror, ${projectedAt.size} with their edges`);
    }
    await poller;
    const byContainer = emulator.requestsByContainer();
    const perChange = Object.fromEntries(
      Object.entries(byContainer).map(([container, counts]) => [
        container,
        Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0).map(([kind, n]) => [kind, Math.round((n / names.length) * 100) / 100])),
      ]),
    );
    const id = (n: string) => `component:default:${n}`;
    const latency = (at: Map<string, number>) => summarize(names.map((n) => at.get(n)! - sentAt.get(n)!));
    return {
      size: generated.length,
      writes: names.length,
      spacingInMs: options.spacingInMs,
      moduleIntervalInSeconds: options.moduleIntervalInSeconds,
      latencyMs: {
        backstage: latency(seenAt),
        mirror: latency(new Map(names.map((n) => [n, mirroredAt.get(id(n))!]))),
        backstageToMirror: summarize(names.map((n) => mirroredAt.get(id(n))! - seenAt.get(n)!)),
        // From the sync's handler returning: an entity whose edges were written before that counts 0.
        mirrorToEdges: summarize(names.map((n) => Math.max(0, projectedAt.get(id(n))! - mirroredAt.get(id(n))!))),
      },
      perChange,
      idle: { changeFeedReadsPerMinute: Math.round((idleFeedReads / idleMinutes) * 10) / 10 },
    };
  } finally {
    for (const stop of stopApp.reverse()) await stop().catch(() => undefined);
    await resetRuntime();
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '10000' },
      writes: { type: 'string', default: '100' },
      spacing: { type: 'string', default: '250' },
      seed: { type: 'string', default: '42' },
      'module-interval': { type: 'string', default: '1' },
    },
  });
  measureAuthored({
    size: Number(values.size),
    writes: Number(values.writes),
    spacingInMs: Number(values.spacing),
    seed: Number(values.seed),
    moduleIntervalInSeconds: Number(values['module-interval']),
    log: (line) => process.stderr.write(`[bench] ${line}\n`),
  })
    .then((result) => process.stdout.write(`${JSON.stringify(result, null, 2)}\n`))
    .catch((error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    });
}
