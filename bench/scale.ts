/**
 * The scale run: `npm run bench -- --sizes 10000,50000,100000` (any size above {@link SCALE_THRESHOLD} makes the
 * whole run a scale run). For each size, only what grows with the catalog: the initial load, a zero-change reconcile,
 * 1 % changed, and their baselines (the bare catalog stream, the bare mirror index stream, the bare write) — wall
 * time, peak RSS, Backstage and Cosmos requests, writes. The event path, the projection, the graph, the history reads
 * and the separate benches do not change with the catalog's size and are left to the ordinary run: the emulator
 * evaluates every document of a partition for every query, so the projection's two queries per document alone would
 * take hours at 100k.
 *
 * Loading: the generated catalog goes into the Backstage stand-in as one full mutation of its entity provider (the
 * fastest faithful way: the catalog processes and stitches every entity as it would any provider's), its database in
 * memory — on disk, SQLite's journal syncs made ingestion several times slower.
 *
 * Memory: the budget is the smallest Flex Consumption instance, 512 MB. Node sizes its heap from the memory limit of
 * the container it runs in — about half of it (Node 20 in a 512 MB memory cgroup: a 259 MB heap limit) — and lets the
 * heap grow lazily up to that limit. This machine's processes have no such limit (a heap limit of gigabytes), so
 * every process of the app is given the heap limit it would have on the instance (`--instance-memory-mb`, default 512;
 * 0 = this machine's): what it then needs beyond it is measured, not V8's leniency with memory nobody asked back. The
 * bare write is not the app: it holds the whole catalog's documents to write them as fast as possible, and runs
 * without the limit (at 100k it does not fit in 256 MB).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCatalog } from '../local/catalog-generator';
import { allEntities, provisionerClient, startLocalStack, waitForCatalog, type LocalStack } from '../local/stack';
import type { CpuUse } from './cpu';
import { runScenario } from './harness';
import type { ScenarioArgs, ScenarioName, ScenarioResult } from './scenario';

/** Sizes above this turn `npm run bench` into a scale run. */
export const SCALE_THRESHOLD = 20_000;
/** The memory budget of every measured process: the smallest Flex Consumption instance. */
export const SCALE_MEMORY_BUDGET_IN_MB = 512;
/** The instance the measured processes emulate by default (see the module comment). */
export const SCALE_INSTANCE_MEMORY_IN_MB = SCALE_MEMORY_BUDGET_IN_MB;

/**
 * The young generation's semi-space the deployment gives the worker (`languageWorkers__node__arguments` in
 * infra/app/function.bicep). Under the heap limit of a 512 MB instance V8 would keep it at 1 MiB and collect the
 * young generation far more often; 16 MiB is V8's own choice for the larger instances.
 */
export const WORKER_SEMI_SPACE_IN_MB = 16;

/**
 * The node flags the deployment gives the worker on an instance of `instanceMemoryMb`: the heap limit Node would give
 * itself there (half of it) and the semi-space above.
 */
export const heapArgsFor = (instanceMemoryMb: number): string[] =>
  instanceMemoryMb > 0 ? [`--max-heap-size=${Math.round(instanceMemoryMb / 2)}`, `--max-semi-space-size=${WORKER_SEMI_SPACE_IN_MB}`] : [];

const STATIC_TOKEN = 'bench-scale-static-token';
/** The Cosmos request timeout of the scale run's processes (see the comment where it is set). */
const SCALE_COSMOS_REQUEST_TIMEOUT_IN_MS = 120_000;

export interface ScaleRun {
  ms: number;
  peakRssMb: number;
  backstageRequests: number;
  cosmosRequests: number;
  writes: number;
  /** CPU time of the run (Linux): the app's process, this one (the emulator) and Backstage's. */
  cpu?: CpuUse;
}

export interface ScaleSizeReport {
  size: number;
  entities: number;
  /** Ingestion into Backstage (the provider's mutation → every entity stitched and the catalog settled). */
  backstageIngestInS: number;
  initial: ScaleRun;
  zeroChange: ScaleRun;
  onePercent: ScaleRun & { stale: number };
  bareStream: { ms: number; peakRssMb: number; backstageRequests: number; cpu?: CpuUse };
  /** The same stream with Backstage's answers compressed (`BACKSTAGE_COMPRESSION=br`): what the default saves. */
  bareStreamCompressed?: { ms: number; peakRssMb: number; backstageRequests: number; cpu?: CpuUse };
  bareIndex: { ms: number; peakRssMb: number; cosmosRequests: number; cpu?: CpuUse };
  /** The bare writes: the documents in bulk and as point writes, and — what an initial load writes — the documents with their history records in bulk. */
  bareWrite: { bulkMs: number; pointMs: number; bulkWithHistoryMs?: number; batchWithHistoryMs?: number };
  /** Per 1 000 entities, for reading the growth. */
  perThousand: { initialMs: number; zeroChangeMs: number; onePercentMs: number };
}

type Reconcile = ScenarioResult<'reconcile'>;

const run = (r: { result: Reconcile; peakRssMb: number; cpu?: CpuUse[] }): ScaleRun => ({
  ms: Math.round(r.result.ms),
  peakRssMb: r.peakRssMb,
  backstageRequests: r.result.result.backstageRequests,
  cosmosRequests: (r.result.cosmos).all.total,
  writes: r.result.result.writes,
  ...(r.cpu?.[0] && { cpu: r.cpu[0] }),
});

export async function scaleSize(size: number, options: { seed: number; instanceMemoryMb: number; local: LocalStack; log: (line: string) => void }): Promise<ScaleSizeReport> {
  const { local, log } = options;
  const identity = local.identity!;
  const cosmos = local.cosmos!;
  const generated = generateCatalog(size, options.seed);
  const backstageStack = await startLocalStack({
    backstage: { trust: { jwksUri: identity.jwksUri, issuer: identity.issuer }, staticToken: STATIC_TOKEN, processingIntervalSeconds: 3600 },
  });
  const dir = mkdtempSync(join(tmpdir(), `bench-scale-${size}-`));
  const databaseName = `bench-scale-${size}-${Date.now()}`;
  try {
    const backstage = backstageStack.backstage!;
    const started = performance.now();
    log(`scale ${size}: loading ${generated.length} entities into Backstage`);
    await backstage.loadCatalog(generated);
    await waitForCatalog(backstage, { count: generated.length, settled: true }, { timeoutInMs: Math.max(600_000, generated.length * 200), pollIntervalInMs: 2_000, what: `${generated.length} entities` });
    const ingestInS = Math.round((performance.now() - started) / 100) / 10;
    const entities = await allEntities(backstage);
    log(`scale ${size}: Backstage holds ${entities.length} entities (ingested in ${ingestInS} s)`);
    const entitiesFile = join(dir, 'entities.json');
    writeFileSync(entitiesFile, JSON.stringify(entities));

    // The stand-in evaluates a query over every document of the container for each page it serves (Cosmos serves a
    // page from its index): at 100k a page of the mirror index costs it a few hundred milliseconds, more with the
    // machine busy. The default 10 s request timeout is meant for the service, not for that.
    const env = local.settings({
      LOG_LEVEL: 'error',
      AZURE_CLIENT_ID: 'bench-app',
      COSMOS_DATABASE_NAME: databaseName,
      BACKSTAGE_BASE_URL: backstage.baseUrl,
      COSMOS_REQUEST_TIMEOUT_MS: String(SCALE_COSMOS_REQUEST_TIMEOUT_IN_MS),
    });
    // The app's runs get the instance's heap limit; the bare write does not: it holds every document of the catalog in
    // memory to write them as fast as the emulator takes them (a floor for the time, not a process that is deployed).
    const scenario = async <K extends ScenarioName>(name: K, args: ScenarioArgs<K>, heapLimit = true, settings: Record<string, string> = {}) => {
      const label = Object.keys(settings).length > 0 ? `${name} (${Object.entries(settings).map(([k, v]) => `${k}=${v}`).join(', ')})` : name;
      log(`scale ${size}: ${label}`);
      const nodeArgs = heapLimit ? heapArgsFor(options.instanceMemoryMb) : [];
      const report = await runScenario(name, args, { env: { ...env, ...settings }, emulator: cosmos, timeoutInMs: 2 * 3_600_000, nodeArgs, cpuOf: { backstage: () => backstage.pids() } });
      // In the log too: a run of hours keeps what each step measured even if a later step fails.
      log(`scale ${size}: ${label} → ${JSON.stringify({ peakRssMb: report.peakRssMb, ...summaryOf(report.result) })}`);
      return report;
    };
    await scenario('provision', {});
    const initial = await scenario('reconcile', {});
    const stream = await scenario('bareStream', {});
    const compressedStream = await scenario('bareStream', {}, true, { BACKSTAGE_COMPRESSION: 'br' });
    const index = await scenario('bareIndex', {});
    const zero = await scenario('reconcile', {});
    const stale = Math.max(1, Math.round(entities.length / 100));
    const changed = await scenario('reconcile', { staleCount: stale });
    const bare = await scenario('bareWrite', { entitiesFile }, false);
    const perThousand = (ms: number) => Math.round((ms / entities.length) * 1000);
    return {
      size,
      entities: entities.length,
      backstageIngestInS: ingestInS,
      initial: run(initial),
      zeroChange: run(zero),
      onePercent: { ...run(changed), stale: changed.result.stale },
      bareStream: bareStreamOf(stream),
      bareStreamCompressed: bareStreamOf(compressedStream),
      bareIndex: { ms: Math.round(index.result.ms), peakRssMb: index.peakRssMb, cosmosRequests: index.result.cosmosRequests, ...(index.cpu?.[0] && { cpu: index.cpu[0] }) },
      bareWrite: { bulkMs: Math.round(bare.result.bulk.ms), pointMs: Math.round(bare.result.point.ms), bulkWithHistoryMs: Math.round(bare.result.bulkWithHistory.ms), batchWithHistoryMs: Math.round(bare.result.batchWithHistory.ms) },
      perThousand: { initialMs: perThousand(initial.result.ms), zeroChangeMs: perThousand(zero.result.ms), onePercentMs: perThousand(changed.result.ms) },
    };
  } finally {
    await backstageStack.stop();
    rmSync(dir, { recursive: true, force: true });
    // The emulator runs in this process and keeps every database in memory: the next size starts without this one.
    await dropDatabase(local, databaseName).catch((error: unknown) => log(`scale ${size}: could not drop ${databaseName}: ${String(error)}`));
  }
}

function bareStreamOf(r: { result: ScenarioResult<'bareStream'>; peakRssMb: number; cpu?: CpuUse[] }): ScaleSizeReport['bareStream'] {
  return { ms: Math.round(r.result.ms), peakRssMb: r.peakRssMb, backstageRequests: r.result.backstageRequests, ...(r.cpu?.[0] && { cpu: r.cpu[0] }) };
}

async function dropDatabase(local: LocalStack, databaseName: string): Promise<void> {
  const client = provisionerClient(local.cosmos!, local.identity!);
  try {
    await client.database(databaseName).delete();
  } catch (error) {
    if ((error as { code?: number }).code !== 404) throw error;
  } finally {
    client.dispose();
  }
}

/** The scale run's table. */
export function formatScale(sizes: ScaleSizeReport[]): string[] {
  const lines = [
    '| entities | run | wall s | per 1 000 entities | peak RSS MB | Backstage requests | Cosmos requests | writes |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const s of sizes) {
    const row = (label: string, r: ScaleRun) => lines.push(`| ${s.entities} | ${label} | ${(r.ms / 1000).toFixed(1)} | ${Math.round((r.ms / s.entities) * 1000)} ms | ${r.peakRssMb} | ${r.backstageRequests} | ${r.cosmosRequests} | ${r.writes} |`);
    row('initial load', s.initial);
    row('zero-change reconcile', s.zeroChange);
    row(`1 % changed (${s.onePercent.stale})`, s.onePercent);
    lines.push(`| ${s.entities} | bare catalog stream / mirror index / bulk write / point writes / bulk write with history / batch write with history | ${(s.bareStream.ms / 1000).toFixed(1)} / ${(s.bareIndex.ms / 1000).toFixed(1)} / ${(s.bareWrite.bulkMs / 1000).toFixed(1)} / ${(s.bareWrite.pointMs / 1000).toFixed(1)} / ${s.bareWrite.bulkWithHistoryMs === undefined ? '–' : (s.bareWrite.bulkWithHistoryMs / 1000).toFixed(1)} / ${s.bareWrite.batchWithHistoryMs === undefined ? '–' : (s.bareWrite.batchWithHistoryMs / 1000).toFixed(1)} | – | ${Math.max(s.bareStream.peakRssMb, s.bareIndex.peakRssMb)} | ${s.bareStream.backstageRequests} | ${s.bareIndex.cosmosRequests} | – |`);
    if (s.bareStreamCompressed) {
      const c = s.bareStreamCompressed;
      lines.push(`| ${s.entities} | bare catalog stream, answers compressed (br) | ${(c.ms / 1000).toFixed(1)} | – | ${c.peakRssMb} | ${c.backstageRequests} | – | – |`);
    }
  }
  const cpuRows = sizes.flatMap((s) =>
    (
      [
        ['initial load', s.initial],
        ['zero-change reconcile', s.zeroChange],
        ['bare catalog stream', s.bareStream],
        ...(s.bareStreamCompressed ? [['bare catalog stream, answers compressed (br)', s.bareStreamCompressed] as const] : []),
        ['bare mirror index', s.bareIndex],
      ] as const
    ).flatMap(([label, r]) => (r.cpu ? [formatCpuRow(`${s.entities}`, label, r.ms, r.cpu)] : [])),
  );
  if (cpuRows.length > 0) lines.push('', ...CPU_TABLE_HEADER, ...cpuRows);
  return lines;
}

/** The CPU table's header: where a run's time went on this machine's cores. */
export const CPU_TABLE_HEADER = [
  '| entities | run | wall s | CPU s: app / emulator (bench process) / Backstage | machine busy | floor s (CPU ÷ cores) | wall ÷ floor |',
  '| ---: | --- | ---: | --- | ---: | ---: | ---: |',
];

/** One row of the CPU table. */
export function formatCpuRow(entities: string, label: string, ms: number, cpu: CpuUse): string {
  const s = (label: string) => (cpu.processMs[label] === undefined ? '–' : (cpu.processMs[label] / 1000).toFixed(1));
  return `| ${entities} | ${label} | ${(ms / 1000).toFixed(1)} | ${s('app')} / ${s('bench')} / ${s('backstage')} | ${Math.round(cpu.machineBusy * 100)} % of ${cpu.cores} | ${(cpu.floorMs / 1000).toFixed(1)} | ${cpu.floorMs > 0 ? (ms / cpu.floorMs).toFixed(2) : '–'} |`;
}

/** A scenario result's figures for the log line: its numbers, one level deep (nested objects' numbers too). */
function summaryOf(result: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(result as Record<string, unknown>)) {
    if (typeof value === 'number') out[key] = Math.round(value);
    else if (value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) if (typeof v === 'number') out[`${key}.${k}`] = Math.round(v);
    }
  }
  return out;
}
