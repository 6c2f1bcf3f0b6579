/**
 * The change-events module's detection, on a real catalog: the Backstage stand-in (the real catalog backend, its
 * SQLite database on disk) holding a generated catalog loaded through the stand-in's entity provider (one full
 * mutation, processed and stitched once). The module's engine runs in this process against that database — as the
 * module runs inside Backstage against the catalog's database — so every query it makes and every row it reads is
 * counted here:
 *
 * - idle cost: a simulated minute at the shipped defaults — 60 runs with publication generations (one a second, the
 *   deletion check every 30 s) against the 2 full diffs a minute the module made without them (pages through the
 *   catalog API, entities read), both with nothing changing;
 * - latency: an entity edited through the provider (the engine's second shifted at random before each edit), from the
 *   moment its new version is stitched (a new generation in `final_entities`, polled every 10 ms) to the moment the
 *   engine — running every second, as the default schedule does — hands its event to the endpoint client. The
 *   catalog's own processing before that (the provider's full mutation applied → stitched) is reported next to it.
 *
 *   npm run bench:detection [-- --size 10000 --edits 20]
 */
import { readdirSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { AuthService, LoggerService } from '@backstage/backend-plugin-api';
import type { Entity } from '@backstage/catalog-model';
import type { CatalogService } from '@backstage/plugin-catalog-node';
import knexFactory, { type Knex } from 'knex';
import { ChangeEventsEngine, type CatalogEvent, type DiffResult } from '../backstage/src/ChangeEventsEngine';
import type { ChangeEventsSettings } from '../backstage/src/config';
import type { EndpointClient } from '../backstage/src/delivery';
import { createMetrics } from '../backstage/src/metrics';
import { applyMigrations } from '../backstage/src/store';
import { generateCatalog, seededRandom } from '../local/catalog-generator';
import { catalogClient, startLocalStack, waitForCatalog } from '../local/stack';
import { summarize, type Summary } from './harness';

export interface DetectionBenchOptions {
  size: number;
  edits: number;
  seed: number;
  log?: (line: string) => void;
}

export interface DetectionBenchResult {
  size: number;
  /** A minute of nothing changing, at the shipped defaults. */
  idlePerMinute: {
    generations: { runs: number; databaseQueries: number; rowsRead: number; catalogRequests: number; runMs: Summary };
    /** Without generations: a full diff every 30 s. */
    diff: { runs: number; databaseQueries: number; catalogRequests: number; entitiesRead: number; runMs: Summary };
  };
  /** Per edit: the catalog's processing (provider mutation applied → stitched), and stitched → event sent. */
  latencyMs: { processing: Summary; stitchedToSent: Summary };
  /** What the runs that found the edits read, per edit. */
  perEdit: { rowsRead: number };
}

const SETTINGS: ChangeEventsSettings = {
  schedule: { frequency: { seconds: 1 }, timeout: { minutes: 5 } },
  detection: 'generations',
  deletionCheckIntervalInMs: 30_000,
  batchSize: 100,
  pageSize: 500,
  maxAgeInMs: 24 * 3_600_000,
  retry: { initialDelayInMs: 5_000, maxDelayInMs: 600_000 },
  source: 'http://backstage.bench',
  endpoints: [{ name: 'bench', url: 'http://127.0.0.1:1/', timeoutInMs: 10_000, auth: { type: 'standardWebhooks', secret: 'whsec_YmVuY2g=' } }],
};

const silent: LoggerService = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined, child: () => silent };

export async function measureDetection(options: DetectionBenchOptions): Promise<DetectionBenchResult> {
  const log = options.log ?? (() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'bench-detection-'));
  const staticToken = 'bench-detection-static-token';
  const backstageOptions = { staticToken, processingIntervalSeconds: 3600, catalogFile: join(dir, 'catalog.json'), databaseDirectory: join(dir, 'db') };
  const entities = generateCatalog(options.size, options.seed) as unknown as Entity[];
  // The catalog first, into a Backstage whose database stays on disk.
  log(`detection: loading ${entities.length} entities into Backstage`);
  const loader = await startLocalStack({ backstage: backstageOptions });
  try {
    await loader.backstage!.loadCatalog(entities);
    await waitForCatalog(loader.backstage!, { count: entities.length, settled: true }, { timeoutInMs: Math.max(300_000, entities.length * 100), pollIntervalInMs: 1_000 });
  } finally {
    await loader.stop();
  }
  // The catalog's database is shared by two processes here (the stand-in and this one), which SQLite serialises with
  // one lock unless the file is in WAL mode — the engine's reads would then hold up the catalog's stitching, which
  // PostgreSQL never does. WAL mode is a property of the file: set it while nothing else has the file open.
  const file = readdirSync(join(dir, 'db')).find((f) => f.includes('catalog'));
  if (!file) throw new Error(`no catalog database in ${join(dir, 'db')}`);
  const connection = { filename: join(dir, 'db', file), options: { timeout: 30_000 } };
  const setup = knexFactory({ client: 'better-sqlite3', connection: connection as never, useNullAsDefault: true, pool: { min: 1, max: 1 } });
  await setup.raw('PRAGMA journal_mode = WAL');
  await applyMigrations(setup);
  await setup.destroy();
  const stack = await startLocalStack({ backstage: backstageOptions });
  let knex: Knex | undefined;
  try {
    const backstage = stack.backstage!;
    await waitForCatalog(backstage, { count: entities.length }, { timeoutInMs: 120_000, pollIntervalInMs: 1_000 });
    knex = knexFactory({ client: 'better-sqlite3', connection: connection as never, useNullAsDefault: true, pool: { min: 1, max: 1 } });
    let queries = 0;
    knex.on('query', () => (queries += 1));

    // The catalog API as the module's catalog service calls it, counting requests.
    const client = catalogClient(backstage.baseUrl);
    let catalogRequests = 0;
    const catalog = {
      queryEntities: (request: Parameters<CatalogService['queryEntities']>[0]) => {
        catalogRequests += 1;
        return client.queryEntities(request, { token: staticToken });
      },
    } as unknown as CatalogService;
    const auth = { getOwnServiceCredentials: () => Promise.resolve({}) } as unknown as AuthService;
    const sent: Array<{ at: number; event: CatalogEvent }> = [];
    const endpoint = { send: (events: CatalogEvent[]) => (sent.push(...events.map((event) => ({ at: performance.now(), event }))), Promise.resolve({ ok: true as const, status: 202 })) };
    let clock = Date.now();
    const engine = (detection: 'generations' | 'diff', now?: () => number) =>
      new ChangeEventsEngine({
        db: knex!,
        catalog,
        auth,
        logger: silent,
        settings: { ...SETTINGS, detection },
        clients: new Map([['bench', endpoint as unknown as EndpointClient]]),
        metrics: createMetrics(),
        ...(now && { now }),
      });
    const measure = async (run: () => Promise<DiffResult>) => {
      const [q, r] = [queries, catalogRequests];
      const started = performance.now();
      const diff = await run();
      return { diff, ms: performance.now() - started, queries: queries - q, requests: catalogRequests - r };
    };

    // Idle, with generations: the engine's first run (a full diff: the baseline), then a simulated minute.
    const generations = engine('generations', () => clock);
    await generations.run();
    if (generations.detection !== 'generations') throw new Error('the stand-in catalog has no publication generations');
    const idleRuns: Array<Awaited<ReturnType<typeof measure>>> = [];
    for (let second = 0; second < 60; second++) {
      clock += 1_000;
      idleRuns.push(await measure(() => generations.run().then((r) => r.diff)));
    }
    // Idle, without: the full diff every 30 s, that is twice a minute.
    const differ = engine('diff', () => clock);
    await differ.run();
    const diffRuns: Array<Awaited<ReturnType<typeof measure>>> = [];
    for (let i = 0; i < 2; i++) {
      clock += 30_000;
      diffRuns.push(await measure(() => differ.run().then((r) => r.diff)));
    }
    const sum = (runs: typeof idleRuns, pick: (r: (typeof idleRuns)[number]) => number) => runs.reduce((total, r) => total + pick(r), 0);
    if (diffRuns.some((r) => r.diff.mode !== 'full') || idleRuns.some((r) => r.diff.mode !== 'generations')) throw new Error('a run did not detect the way it was meant to');

    // Latency: the engine every second in real time, while entities are edited one at a time.
    const live = engine('generations');
    await live.run();
    let stop = false;
    // The catalog stitches on its own processing loop's ticks (about a second apart) and the engine runs every
    // second: two clocks whose phase drifts slowly. Before each edit the engine's clock is shifted by a random part of
    // a second, so the edits sample every phase rather than a slow sweep of it.
    let shiftInMs = 0;
    const rowsOfEditRuns: number[] = [];
    const loop = (async () => {
      while (!stop) {
        const started = Date.now();
        const { diff } = await live.run();
        if (diff.mode === 'generations' && diff.updated > 0) rowsOfEditRuns.push(diff.rowsRead);
        const wait = Math.max(0, 1_000 - (Date.now() - started)) + shiftInMs;
        shiftInMs = 0;
        await new Promise((r) => setTimeout(r, wait));
      }
    })();
    const processing: number[] = [];
    const stitchedToSent: number[] = [];
    const targets = entities.filter((e) => e.kind === 'Component').slice(0, options.edits);
    const random = seededRandom(options.seed);
    try {
      for (const [i, target] of targets.entries()) {
        shiftInMs = Math.floor(random() * 1_000);
        await new Promise((r) => setTimeout(r, 2_100)); // the shifted interval (up to 2 s) is over
        const ref = `component:${target.metadata.namespace ?? 'default'}/${target.metadata.name}`.toLowerCase();
        const before = Number((await knex<{ entity_ref: string; generation: number }>('final_entities').where({ entity_ref: ref }).first('generation'))!.generation);
        target.metadata.description = `edited ${i}`;
        await backstage.loadCatalog(entities);
        const applied = performance.now();
        let stitchedAt: number | undefined;
        const deadline = Date.now() + 60_000;
        while (stitchedAt === undefined) {
          const row = await knex<{ entity_ref: string; generation: number }>('final_entities').where({ entity_ref: ref }).first('generation');
          if (row && Number(row.generation) > before) stitchedAt = performance.now();
          else if (Date.now() > deadline) throw new Error(`${ref} was not stitched within 60 s`);
          else await new Promise((r) => setTimeout(r, 10));
        }
        let sentAt: number | undefined;
        while (sentAt === undefined) {
          sentAt = sent.find((s) => s.event.subject.toLowerCase() === ref && s.event.type.endsWith('upserted'))?.at;
          if (sentAt === undefined) {
            if (Date.now() > deadline) throw new Error(`no event for ${ref} within 60 s`);
            await new Promise((r) => setTimeout(r, 10));
          }
        }
        processing.push(stitchedAt - applied);
        stitchedToSent.push(Math.max(0, sentAt - stitchedAt));
        sent.length = 0;
        log(`detection: edit ${i + 1}/${targets.length}: stitched after ${Math.round(stitchedAt - applied)} ms, sent ${Math.round(sentAt - stitchedAt)} ms later`);
      }
    } finally {
      stop = true;
      await loop;
    }

    return {
      size: entities.length,
      idlePerMinute: {
        generations: {
          runs: idleRuns.length,
          databaseQueries: sum(idleRuns, (r) => r.queries),
          rowsRead: sum(idleRuns, (r) => r.diff.rowsRead),
          catalogRequests: sum(idleRuns, (r) => r.requests),
          runMs: summarize(idleRuns.map((r) => r.ms)),
        },
        diff: {
          runs: diffRuns.length,
          databaseQueries: sum(diffRuns, (r) => r.queries),
          catalogRequests: sum(diffRuns, (r) => r.requests),
          entitiesRead: sum(diffRuns, (r) => r.diff.scanned),
          runMs: summarize(diffRuns.map((r) => r.ms)),
        },
      },
      latencyMs: { processing: summarize(processing), stitchedToSent: summarize(stitchedToSent) },
      perEdit: { rowsRead: rowsOfEditRuns.length ? rowsOfEditRuns.reduce((a, b) => a + b, 0) / rowsOfEditRuns.length : 0 },
    };
  } finally {
    await knex?.destroy();
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatDetection(r: DetectionBenchResult): string {
  const g = r.idlePerMinute.generations;
  const d = r.idlePerMinute.diff;
  const ms = (s: Summary) => `p50 ${Math.round(s.p50)} ms, p95 ${Math.round(s.p95)} ms`;
  return [
    `Change detection on a ${r.size}-entity catalog (the real catalog backend, SQLite):`,
    `  idle minute, generations: ${g.runs} runs, ${g.databaseQueries} database queries, ${g.rowsRead} rows read, ${g.catalogRequests} catalog API requests; a run ${ms(g.runMs)}`,
    `  idle minute, full diff:   ${d.runs} runs, ${d.catalogRequests} catalog API requests, ${d.entitiesRead} entities read, ${d.databaseQueries} database queries; a run ${ms(d.runMs)}`,
    `  per edit: the catalog's processing ${ms(r.latencyMs.processing)}; stitched → event sent ${ms(r.latencyMs.stitchedToSent)} (${r.latencyMs.stitchedToSent.count} edits); rows read by the run that found it: ${r.perEdit.rowsRead.toFixed(1)}`,
  ].join('\n');
}

if (require.main === module) {
  const { values } = parseArgs({ options: { size: { type: 'string', default: '10000' }, edits: { type: 'string', default: '20' }, seed: { type: 'string', default: '7' }, json: { type: 'boolean', default: false } } });
  measureDetection({ size: Number(values.size), edits: Number(values.edits), seed: Number(values.seed), log: (line) => process.stderr.write(`${line}\n`) })
    .then((result) => {
      process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatDetection(result)}\n`);
      process.exit(0);
    })
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}
