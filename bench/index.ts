/**
 * `npm run bench`: the sync measured against its physical limits and a naive baseline, on the local stand-ins, in
 * one run (the machines are shared and noisy, so only ratios measured side by side and counts that do not drift
 * mean anything).
 *
 *   npm run bench                         1k and 10k catalogs (about 14 minutes on 2 cores)
 *   npm run bench -- --quick              one 300-entity catalog, a smoke check (about 2 minutes)
 *   npm run bench -- --sizes 50000        opt-in sizes (comma-separated); above 20 000, a scale run (bench/scale.ts)
 *   npm run bench -- --scale --sizes 10000  a scale run at any sizes
 *   options: --seed 42 --changes 50 --repeat 3 --rtt 5 --out bench/results --no-write
 *            --instance-memory-mb 512 (scale runs: the memory of the instance each measured process emulates)
 *
 * Writes a Markdown report to stdout and the figures as JSON under bench/results/. docs/performance.md explains them.
 */
import { execSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem, type as osType } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { generateCatalog } from '../local/catalog-generator';
import { startFaultProxy } from '../local/faults/http-proxy';
import { allEntities, catalogClient, LOCAL_API_AUDIENCE, startLocalStack, waitForCatalog, type LocalStack } from '../local/stack';
import { PROJECTION_FEED_POLL_DELAY_IN_MS } from '../shared/edges/projector';
import { HISTORY_FEED_POLL_DELAY_IN_MS } from '../shared/history/history-recorder';
import { measureAuthored, type AuthoredBenchResult } from './authored';
import type { CpuUse } from './cpu';
import { formatDetection, measureDetection, type DetectionBenchResult } from './detection';
import { GOAL_VS_PREVIOUS_DEPLOYED, GOAL_VS_UNBUNDLED_BARE, measureColdStart, type ColdStartResult } from './cold-start';
import { ENTITY_FEED_PROCESSOR_COUNT, FEED_POLL_CANDIDATES_IN_MS, formatFeedPoll } from './feed-poll';
import { runScenario, writeResults, type ScenarioReport } from './harness';
import { CPU_TABLE_HEADER, formatCpuRow, formatScale, SCALE_INSTANCE_MEMORY_IN_MB, SCALE_MEMORY_BUDGET_IN_MB, SCALE_THRESHOLD, scaleSize, type ScaleSizeReport } from './scale';
import { formatStorm } from './storm';
import type { ContainerCounts, ScenarioArgs, ScenarioName, ScenarioResult } from './scenario';

const ROOT = resolve(__dirname, '..');
const STATIC_TOKEN = 'bench-harness-static-token';

interface Options {
  quick: boolean;
  /** A scale run (bench/scale.ts), whatever the sizes; also implied by a size above {@link SCALE_THRESHOLD}. */
  scale: boolean;
  sizes: number[];
  seed: number;
  changes: number;
  perRound: number;
  repeat: number;
  graphRoots: number;
  out: string;
  write: boolean;
  rttInMs: number;
  /** Scale runs: the instance memory each measured process is given the heap of (bench/scale.ts); 0 = this machine's. */
  instanceMemoryMb: number;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      scale: { type: 'boolean', default: false },
      sizes: { type: 'string' },
      seed: { type: 'string', default: '42' },
      changes: { type: 'string' },
      repeat: { type: 'string' },
      'graph-roots': { type: 'string' },
      out: { type: 'string', default: join(ROOT, 'bench', 'results') },
      'no-write': { type: 'boolean', default: false },
      rtt: { type: 'string', default: '5' },
      'instance-memory-mb': { type: 'string', default: String(SCALE_INSTANCE_MEMORY_IN_MB) },
    },
  });
  const quick = values.quick === true;
  const sizes = (values.sizes ?? (quick ? '300' : '1000,10000')).split(',').map((s) => Number(s.trim()));
  return {
    quick,
    scale: values.scale === true || sizes.some((size) => size > SCALE_THRESHOLD),
    sizes,
    seed: Number(values.seed),
    changes: Number(values.changes ?? (quick ? 10 : 50)),
    perRound: 10,
    repeat: Number(values.repeat ?? (quick ? 1 : 3)),
    graphRoots: Number(values['graph-roots'] ?? (quick ? 3 : 10)),
    out: values.out,
    write: values['no-write'] !== true,
    rttInMs: Number(values.rtt),
    instanceMemoryMb: Number(values['instance-memory-mb']),
  };
}

interface Stack {
  local: LocalStack;
  hostJson: { extensions: { serviceBus: { maxConcurrentSessions: number; sessionIdleTimeout: string } } };
}

// ------------------------------------------------------------------------------------------------
// The report: what `npm run bench` prints as Markdown and writes to bench/results/*.json (docs/performance.md reads
// both). Each scenario's part is what bench/scenario.ts answers, with the peak RSS the harness measured beside it.

/** A scenario's result with the peak RSS of the child process that ran it, and the CPU time of its measured section. */
type WithPeakRss<T> = T & { peakRssMb: number; cpu?: CpuUse };
type Reconcile = ScenarioResult<'reconcile'>;
/** A scenario report as a result with its peak RSS and its (first) measured section's CPU time. */
const withPeakRss = <T>(r: ScenarioReport<T>): WithPeakRss<T> => ({ ...r.result, peakRssMb: r.peakRssMb, ...(r.cpu?.[0] && { cpu: r.cpu[0] }) });
type Naive = ScenarioResult<'naive'>;

type TargetKind = 'at-most' | 'at-least' | 'equal';

interface Target {
  name: string;
  /** Rounded to two decimals. */
  value: number;
  limit: number;
  kind: TargetKind;
  /** null: not applicable to this catalog size (see `note`). */
  met: boolean | null;
  /** A count that must hold on any machine (missing it fails the run), as opposed to a time that drifts with load. */
  counted: boolean;
  note?: string;
}

interface SizeReport {
  size: number;
  entities: number;
  relationsPerEntity: number;
  backstageIngestInS: number;
  reconcile: {
    initial: WithPeakRss<Reconcile>;
    zeroChange: Array<WithPeakRss<Reconcile>>;
    onePercent: WithPeakRss<Reconcile>;
  };
  baselines: {
    bareStream: Array<WithPeakRss<ScenarioResult<'bareStream'>>>;
    bareIndex: Array<WithPeakRss<ScenarioResult<'bareIndex'>>>;
    bareWrite: ScenarioResult<'bareWrite'>;
    naive: WithPeakRss<Naive>;
  };
  ratios: {
    zeroChangeOverBareStream: number;
    zeroChangeOverSlowerStream: number;
    initialOverBareWrite: number;
    initialOverBareWriteWithHistory?: number;
    naiveOverInitial: number;
    naiveOverZeroChange: number;
    naiveOverInitialWithRtt: number;
  };
  /** The initial load and the naive sync again, through a proxy adding `rttInMs` to every Cosmos request. */
  withRtt: { rttInMs: number; initial: Reconcile; naive: Naive };
  projection: ScenarioResult<'projectAll'>;
  graph: ScenarioResult<'graph'>;
  incremental: ScenarioResult<'incremental'>;
  /**
   * `count` entities changed at once through the event path — as batches (the default), and one message per entity —
   * each against a reconcile of the same entities.
   */
  storm: { batched: ScenarioResult<'storm'>; perEntity: ScenarioResult<'storm'> };
  /** The edge projection's feedPollDelay: idle polls against mirror write → edges latency, per candidate delay. */
  feedPoll: ScenarioResult<'feedPoll'>;
  /**
   * The entity history. Records, requests and charge of each run are in its own part (`reconcile.*.history`,
   * `incremental.history`, `incremental.perChange.history`); here, the extra request charge per changed entity (the
   * history recorder's, on the emulator: 1 RU per response) and reading the history.
   */
  history: {
    /** Per mirror write of the initial load, per stale entity of the 1 % reconcile, per change of the event path. */
    requestChargePerChange: { initialLoad: number; onePercent: number; incremental: number };
    reads: ScenarioResult<'historyReads'>;
  };
  targets: Target[];
}

interface Versions {
  app: string;
  commit: string;
  '@azure/cosmos': string;
  '@azure/service-bus': string;
  '@backstage/plugin-catalog-backend': string;
  '@vercel/cosmosdb-server': string;
}

interface BenchReport {
  kind: 'quick' | 'full';
  startedAt: string;
  durationInS: number;
  machine: { os: string; cpus: number; cpuModel: string | undefined; memoryGiB: number; node: string };
  versions: Versions;
  /** The options of the run, without the output directory (left out of the JSON). */
  options: Omit<Options, 'out'> & { out: undefined };
  sizes: SizeReport[];
  /** bench/cold-start.ts's result with its targets, or why it could not be measured. */
  coldStart: (ColdStartResult & { targets: Target[] }) | { error: string };
  /** bench/authored.ts's result with its targets, or why it could not be measured. */
  authored: (AuthoredBenchResult & { targets: Target[] }) | { error: string };
  /** bench/detection.ts's result with its targets, or why it could not be measured. */
  detection?: (DetectionBenchResult & { targets: Target[] }) | { error: string };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
};
const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

async function main(): Promise<void> {
  const opts = options();
  const started = Date.now();
  if (opts.scale) return scaleRun(opts, started);
  // The stand-ins every size shares; each size gets its own Backstage (benchSize).
  // The baselines bulk-upsert into scratch containers, which the app's roles do not allow: no role enforcement here.
  const local = await startLocalStack({ identity: true, cosmos: { appRoles: false }, serviceBus: true });
  const stack: Stack = { local, hostJson: JSON.parse(readFileSync(join(ROOT, 'host.json'), 'utf8')) as Stack['hostJson'] };
  const results: SizeReport[] = [];
  try {
    for (const size of opts.sizes) results.push(await benchSize(size, opts, stack));
  } finally {
    await local.stop();
  }
  // The authored path on the largest catalog of the run (its own stack: Backstage with the provider and the module).
  let authored: BenchReport['authored'];
  try {
    const size = Math.max(...opts.sizes);
    const result = await measureAuthored({ size, writes: opts.quick ? 20 : 100, spacingInMs: 250, seed: opts.seed, moduleIntervalInSeconds: 1, log });
    const note = size >= 10_000 ? undefined : 'the goal names the 10k catalog';
    authored = {
      ...result,
      targets: [
        target('authored: PUT → Backstage p95 < 5 s (provider defaults)', result.latencyMs.backstage.p95, 5_000, 'at-most', note),
        target('authored: PUT → mirror p95 < 10 s', result.latencyMs.mirror.p95, 10_000, 'at-most', note),
        // The stitched change's way through the shipped defaults: the module every second, the intake, the sync.
        target('stitched change (served by the catalog API) → mirror p95 < 3 s', result.latencyMs.backstageToMirror.p95, 3_000, 'at-most', note),
        target('mirror write → edges p95 < 1 s', result.latencyMs.mirrorToEdges.p95, 1_000, 'at-most', note),
      ],
    };
  } catch (error) {
    authored = { error: error instanceof Error ? error.message : String(error) };
  }
  // The change-events module's detection on the largest catalog (its own Backstage, the module's engine in-process).
  let detection: BenchReport['detection'];
  try {
    const size = Math.max(...opts.sizes);
    const result = await measureDetection({ size, edits: opts.quick ? 3 : 20, seed: opts.seed, log });
    const note = size >= 10_000 ? undefined : 'the goal names the 10k catalog';
    detection = {
      ...result,
      targets: [
        // With generations nothing is read while nothing changes, whatever the catalog's size.
        target('detection: rows read in an idle minute (generations) = 0', result.idlePerMinute.generations.rowsRead, 0, 'equal'),
        target('detection: catalog API requests in an idle minute (generations) = 0', result.idlePerMinute.generations.catalogRequests, 0, 'equal'),
        target('detection: stitched → event sent p95 < 2 s', result.latencyMs.stitchedToSent.p95, 2_000, 'at-most', note),
      ],
    };
  } catch (error) {
    detection = { error: error instanceof Error ? error.message : String(error) };
  }
  let coldStart: BenchReport['coldStart'];
  try {
    log('cold start');
    // A full run measures the goal with the package read from disk, as a fresh instance reads it (cold-start.ts);
    // the quick run, a smoke check, on a warm file cache.
    const result = await measureColdStart({ quick: opts.quick, coldCache: !opts.quick && process.platform === 'linux' });
    coldStart = { ...result, targets: coldStartTargets(result) };
  } catch (error) {
    coldStart = { error: error instanceof Error ? error.message : String(error) };
  }

  const report: BenchReport = {
    kind: opts.quick ? 'quick' : 'full',
    startedAt: new Date(started).toISOString(),
    durationInS: Math.round((Date.now() - started) / 1000),
    machine: { os: `${osType()} ${release()}`, cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: round(totalmem() / 2 ** 30, 1), node: process.version },
    versions: versions(),
    options: { ...opts, out: undefined },
    sizes: results,
    coldStart,
    authored,
    detection,
  };
  process.stdout.write(markdown(report));
  if (opts.write) log(`wrote ${writeResults(opts.out, report.startedAt, report.kind, report)}`);
  const misses = [
    ...results.flatMap((r) => r.targets),
    ...('targets' in authored ? authored.targets : []),
    ...(detection && 'targets' in detection ? detection.targets : []),
    ...('targets' in coldStart ? coldStart.targets : []),
  ].filter(
    (t) => t.met === false,
  );
  log(`${misses.length} target(s) missed${misses.length ? `: ${misses.map((t) => t.name).join('; ')}` : ''}`);
  const wrongCounts = misses.filter((t) => t.counted);
  if (wrongCounts.length > 0) {
    log(`FAILED: a count that must hold on any machine is wrong: ${wrongCounts.map((t) => t.name).join('; ')}`);
    process.exitCode = 1;
  }
}

async function benchSize(size: number, opts: Options, stack: Stack): Promise<SizeReport> {
  const identity = stack.local.identity!;
  const cosmos = stack.local.cosmos!;
  const broker = stack.local.broker!;
  log(`catalog of ${size} entities (seed ${opts.seed})`);
  const dir = mkdtempSync(join(tmpdir(), `bench-${size}-`));
  const generated = generateCatalog(size, opts.seed);
  // Entities the incremental scenario edits, in a file location of their own so a refresh of that location is cheap.
  const components = generated.filter((e) => e.kind === 'Component').map((e) => e.metadata.name);
  const changing = Array.from({ length: Math.min(opts.changes, 50) }, (_, i) => ({
    name: `bench-change-${i}`,
    dependsOn: [`component:${components[(i * 7) % components.length]}`, `component:${components[(i * 13 + 1) % components.length]}`],
  }));
  const incrementalFile = join(dir, 'incremental.yaml');
  writeFileSync(
    incrementalFile,
    changing
      .map((e) => JSON.stringify({ apiVersion: 'backstage.io/v1alpha1', kind: 'Component', metadata: { name: e.name, description: 'initial' }, spec: { type: 'service', lifecycle: 'production', owner: 'group:bench', dependsOn: e.dependsOn } }))
      .join('\n---\n'),
  );

  const backstageStack = await startLocalStack({
    backstage: {
      trust: { jwksUri: identity.jwksUri, issuer: identity.issuer },
      staticToken: STATIC_TOKEN,
      // Nothing reprocesses during the measurements; edits are picked up through an explicit refresh.
      processingIntervalSeconds: 3600,
    },
  });
  const backstage = backstageStack.backstage!;
  const harness = { token: STATIC_TOKEN };
  const admin = catalogClient(backstage.baseUrl);
  try {
    // Ingestion: the generated catalog in one mutation of the stand-in's provider, the incremental file as a location
    // (and its Location entity); done when every entity is processed and stitched and the catalog has settled.
    const ingestStarted = performance.now();
    await Promise.all([backstage.loadCatalog(generated), admin.addLocation({ type: 'file', target: incrementalFile }, harness)]);
    const expected = generated.length + changing.length + 1;
    await waitForCatalog(backstage, { count: expected, settled: true }, { timeoutInMs: Math.max(300_000, expected * 100), pollIntervalInMs: 1_000, what: `${expected} entities` });
    const ingestInS = round((performance.now() - ingestStarted) / 1000, 1);
    const entities = await allEntities(backstage);
    log(`Backstage holds ${entities.length} entities (ingested in ${ingestInS} s)`);
    const entitiesFile = join(dir, 'entities.json');
    writeFileSync(entitiesFile, JSON.stringify(entities));
    const relations = entities.map((e) => e.relations?.length ?? 0);
    const locationEntity = (await admin.getEntities({ filter: { kind: 'Location', 'spec.target': incrementalFile } }, harness)).items[0];
    if (!locationEntity) throw new Error('the incremental location entity is not in the catalog');

    // The settings a deployment would have, pointed at the stand-ins (the app reads Backstage with Entra tokens).
    const env = stack.local.settings({
      LOG_LEVEL: 'error',
      AZURE_CLIENT_ID: 'bench-app',
      COSMOS_DATABASE_NAME: `bench-${size}-${Date.now()}`,
      BACKSTAGE_BASE_URL: backstage.baseUrl,
    });
    const run = <K extends ScenarioName>(name: K, args: ScenarioArgs<K>, overrides: Record<string, string> = {}) => {
      log(`${size}: ${name}${overrides.BENCH_LABEL ? ` (${overrides.BENCH_LABEL})` : ''}`);
      return runScenario(name, args, { env: { ...env, ...overrides }, emulator: cosmos, cpuOf: { backstage: () => backstage.pids() } });
    };

    await run('provision', {});
    const initial = await run('reconcile', {});
    const streams: Array<ScenarioReport<ScenarioResult<'bareStream'>>> = [];
    const zeros: Array<ScenarioReport<ScenarioResult<'reconcile'>>> = [];
    const indexes: Array<ScenarioReport<ScenarioResult<'bareIndex'>>> = [];
    for (let i = 0; i < opts.repeat; i += 1) {
      streams.push(await run('bareStream', {}));
      indexes.push(await run('bareIndex', {}));
      zeros.push(await run('reconcile', {}));
    }
    const staleCount = Math.max(1, Math.round(entities.length / 100));
    const changed = await run('reconcile', { staleCount });
    const bare = await run('bareWrite', { entitiesFile });
    const naive = await run('naive', {});
    const projection = await run('projectAll', {});
    const step = Math.max(1, Math.floor(components.length / opts.graphRoots));
    const roots = Array.from({ length: opts.graphRoots }, (_, i) => `component:default:${components[Math.min(components.length - 1, i * step)]}`);
    const graph = await run('graph', { roots, depths: [3, 6] });
    const incremental = await run('incremental', {
      file: incrementalFile,
      entities: changing,
      rounds: Math.ceil(opts.changes / opts.perRound),
      perRound: Math.min(opts.perRound, changing.length),
      locationRef: `location:${locationEntity.metadata.namespace ?? 'default'}/${locationEntity.metadata.name}`,
      staticToken: STATIC_TOKEN,
      brokerConnection: broker.connectionString,
      sessions: stack.hostJson.extensions.serviceBus,
      feedPollDelayInMs: PROJECTION_FEED_POLL_DELAY_IN_MS,
      historyFeedPollDelayInMs: HISTORY_FEED_POLL_DELAY_IN_MS,
      spacingInMs: 100,
      senderToken: await identity.mint({ audience: LOCAL_API_AUDIENCE, roles: ['Events.Send'] }),
    });
    const stormArgs = {
      count: Math.min(entities.length, opts.quick ? 300 : 2_000),
      brokerConnection: broker.connectionString,
      sessions: stack.hostJson.extensions.serviceBus,
      senderToken: await identity.mint({ audience: LOCAL_API_AUDIENCE, roles: ['Events.Send'] }),
    };
    const storm = await run('storm', stormArgs);
    // The same storm with one message per entity (what every burst cost before the intake queued batches).
    const stormPerEntity = await run('storm', stormArgs, { INTAKE_BATCH_SYNC_MIN_EVENTS: '0', BENCH_LABEL: 'one message per entity' });
    const feedPoll = await run('feedPoll', {
      delaysInMs: opts.quick ? [PROJECTION_FEED_POLL_DELAY_IN_MS] : FEED_POLL_CANDIDATES_IN_MS,
      writes: opts.quick ? 5 : 20,
      idleWindowInMs: opts.quick ? 5_000 : 30_000,
      seed: opts.seed,
    });
    // The history as it stands after all of the above (the initial load, the 1 % reconcile, the event path): the
    // first page of entities spread over the catalog, and the whole change log as a new consumer follows it.
    const historyEntities = Math.min(50, entities.length);
    const historyReads = await run('historyReads', {
      entities: Array.from({ length: historyEntities }, (_, i) => entities[Math.floor((i * entities.length) / historyEntities)]!).map((e) => ({
        kind: e.kind,
        namespace: e.metadata.namespace ?? 'default',
        name: e.metadata.name,
      })),
      pageSize: 20,
      changesPageSize: 1000,
      include: 'entity',
      readerToken: await identity.mint({ audience: LOCAL_API_AUDIENCE, roles: ['Catalog.Read'] }),
    });

    // The same initial load and naive sync with a round trip per Cosmos request, as in an Azure region (the local
    // emulator answers in well under a millisecond, which hides what concurrency buys).
    const rtt = await startFaultProxy(cosmos.endpoint, { tls: cosmos.tls, targetCa: cosmos.certificatePem });
    let withRtt: { initial: Reconcile; naive: Naive };
    try {
      rtt.failAll({ delayInMs: opts.rttInMs });
      const viaRtt = { CosmosDBConnection__accountEndpoint: rtt.url, COSMOS_DATABASE_NAME: `${env.COSMOS_DATABASE_NAME}-rtt`, BENCH_LABEL: `${opts.rttInMs} ms Cosmos round trip` };
      await run('provision', {}, viaRtt);
      const initialRtt = await run('reconcile', {}, viaRtt);
      const naiveRtt = await run('naive', {}, viaRtt);
      withRtt = { initial: initialRtt.result, naive: naiveRtt.result };
    } finally {
      await rtt.close();
    }

    const zeroMs = median(zeros.map((z) => z.result.ms));
    const streamMs = median(streams.map((s) => s.result.ms));
    const indexMs = median(indexes.map((s) => s.result.ms));
    const bareWriteMs = Math.min(bare.result.bulk.ms, bare.result.point.ms);
    // What an initial load must write: every document and its first history record, as the app's stores write them.
    const bareWriteWithHistoryMs = bare.result.batchWithHistory.ms;
    const writesOf = (r: Reconcile) => r.result.writes;
    const incrementalLatency = incremental.result.latencyMs;
    const incrementalWrites = mirrorWrites(incremental.result.perChange.entities);
    const changeLog = historyReads.result.changes;
    const targets = [
      target('zero-change reconcile ≤ 1.3× the bare catalog stream', zeroMs / streamMs, 1.3),
      target('… against the slower of the two streams it runs side by side (catalog, mirror index)', zeroMs / Math.max(streamMs, indexMs), 1.3),
      target('zero-change reconcile writes = 0', zeros.reduce((n, z) => n + writesOf(z.result), 0), 0, 'equal'),
      target('1 % changed: writes = changed count', writesOf(changed.result), changed.result.stale, 'equal'),
      // One history record per version the sync writes, none without a write.
      target('initial load: history records = mirror writes', initial.result.history.records, writesOf(initial.result), 'equal'),
      target('zero-change reconcile: history records = 0', zeros.reduce((n, z) => n + z.result.history.records, 0), 0, 'equal'),
      // The 1 % are made stale in the mirror (their sourceEtag), not edited in Backstage: rewrites of the same entity.
      target('1 % changed (the same entities rewritten): history records = 0', changed.result.history.records, 0, 'equal'),
      target('event path: history records = mirror writes', incremental.result.history.records, incrementalWrites, 'equal'),
      target('change log followed from the beginning: records = history records', changeLog.records, changeLog.inContainer, 'equal'),
      // Below RECONCILE_BULK_MIN_ENTITIES an initial load writes point by point, and the goal names the 10k catalog.
      target('initial load ≤ 2× the bare write of what it writes (documents and their history records, batch requests as the stores write them)', initial.result.ms / bareWriteWithHistoryMs, 2, 'at-most', size >= 10_000 ? undefined : 'the goal names the 10k catalog'),
      target('… against the same written through the SDK\'s bulk executor, one call per container', initial.result.ms / bare.result.bulkWithHistory.ms, 2, 'at-most', 'information: the executor the app wrote with before'),
      target('… against the bare write of the documents alone (half of what it writes)', initial.result.ms / bareWriteMs, 2, 'at-most', 'information: the history records double the writes'),
      target('initial load ≥ 5× faster than the naive sync', naive.result.ms / initial.result.ms, 5, 'at-least', size >= 10_000 ? undefined : 'the goal names the 10k catalog'),
      target(`… the same with a ${opts.rttInMs} ms Cosmos round trip`, withRtt.naive.ms / withRtt.initial.ms, 5, 'at-least', size >= 10_000 ? undefined : 'the goal names the 10k catalog'),
      target('incremental p95, event → mirror write < 1 s', incrementalLatency.mirror.p95, 1000),
      target('incremental p95, mirror write → edges < 1 s (the shipped feedPollDelay)', incrementalLatency.mirrorToEdges.p95, 1000),
      // A storm costs about what a reconcile of the same entities costs: Backstage requests within 2× (the reconcile
      // also streams the catalog's projection; the storm reads the changed entities only), wall time within 3×.
      target('storm: Backstage requests ≤ 2× the reconcile of the same entities', storm.result.storm.backstage.requests / Math.max(1, storm.result.reconcile.backstage.requests), 2),
      target('storm: wall time ≤ 3× the reconcile of the same entities', storm.result.storm.ms / storm.result.reconcile.ms, 3),
      target('peak RSS of the reconcile < 512 MB', Math.max(initial.peakRssMb, ...zeros.map((z) => z.peakRssMb), changed.peakRssMb), 512, 'at-most', size >= 10_000 ? undefined : 'the goal names the 10k catalog'),
    ];
    return {
      size,
      entities: entities.length,
      relationsPerEntity: round(relations.reduce((a, b) => a + b, 0) / relations.length, 1),
      backstageIngestInS: ingestInS,
      reconcile: {
        initial: withPeakRss(initial),
        zeroChange: zeros.map(withPeakRss),
        onePercent: withPeakRss(changed),
      },
      baselines: {
        bareStream: streams.map(withPeakRss),
        bareIndex: indexes.map(withPeakRss),
        bareWrite: bare.result,
        naive: { ...naive.result, peakRssMb: naive.peakRssMb },
      },
      ratios: {
        zeroChangeOverBareStream: round(zeroMs / streamMs),
        zeroChangeOverSlowerStream: round(zeroMs / Math.max(streamMs, indexMs)),
        initialOverBareWrite: round(initial.result.ms / bareWriteMs),
        initialOverBareWriteWithHistory: round(initial.result.ms / bareWriteWithHistoryMs),
        naiveOverInitial: round(naive.result.ms / initial.result.ms),
        naiveOverZeroChange: round(naive.result.ms / zeroMs),
        naiveOverInitialWithRtt: round(withRtt.naive.ms / withRtt.initial.ms),
      },
      withRtt: { rttInMs: opts.rttInMs, initial: withRtt.initial, naive: withRtt.naive },
      projection: projection.result,
      graph: graph.result,
      incremental: incremental.result,
      storm: { batched: storm.result, perEntity: stormPerEntity.result },
      feedPoll: feedPoll.result,
      history: {
        requestChargePerChange: {
          initialLoad: round(initial.result.history.requestCharge / Math.max(1, writesOf(initial.result))),
          onePercent: round(changed.result.history.requestCharge / Math.max(1, changed.result.stale)),
          incremental: round(incremental.result.history.requestCharge / Math.max(1, incremental.result.changes)),
        },
        reads: historyReads.result,
      },
      targets,
    };
  } finally {
    await backstageStack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The cold-start goal (issue 19 §3) as targets: two timing ratios of the same run (load + appStart medians), never
 * failing the run, and a count — every bundle registers what the unbundled app registers — that does.
 */
function coldStartTargets(result: ColdStartResult): Target[] {
  const goal = result.goal;
  const missing = goal ? undefined : 'a variant the goal compares was not measured (see the notes)';
  const cache = result.coldCache ? ', the package read from disk' : ', warm file cache';
  return [
    target(
      `cold start${cache}: deployed (bundle + App Insights) ≤ ${GOAL_VS_PREVIOUS_DEPLOYED}× the configuration deployed before (unbundled + App Insights)`,
      goal?.vsPreviousDeployed ?? 0,
      GOAL_VS_PREVIOUS_DEPLOYED,
      'at-most',
      missing,
    ),
    target(`cold start${cache}: deployed ≤ ${GOAL_VS_UNBUNDLED_BARE}× the unbundled app without App Insights`, goal?.vsUnbundledBare ?? 0, GOAL_VS_UNBUNDLED_BARE, 'at-most', missing),
    target('cold start: bundles registering other functions, bindings or hooks than the unbundled app = 0', result.variants.filter((v) => !v.registrationsMatchUnbundled).length, 0, 'equal'),
  ];
}

/** Documents a run wrote into one container (creates, replaces, upserts). */
function mirrorWrites(c: ContainerCounts): number {
  return (c.create ?? 0) + (c.replace ?? 0) + (c.upsert ?? 0);
}

function target(name: string, value: number, limit: number, kind: TargetKind = 'at-most', notApplicable?: string): Target {
  const met = notApplicable ? null : kind === 'at-most' ? value <= limit : kind === 'at-least' ? value >= limit : value === limit;
  // Counts do not drift with the machine's load: missing one of those is a bug, and fails the run.
  const counted = kind === 'equal';
  return { name, value: round(value), limit, kind, met, counted, ...(notApplicable && { note: notApplicable }) };
}

function versions(): Versions {
  const read = (name: string) => {
    try {
      return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  };
  let commit = 'unknown';
  try {
    commit = execSync('git rev-parse --short HEAD', { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    // not a git checkout
  }
  return {
    app: (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
    commit,
    '@azure/cosmos': read('@azure/cosmos'),
    '@azure/service-bus': read('@azure/service-bus'),
    '@backstage/plugin-catalog-backend': read('@backstage/plugin-catalog-backend'),
    '@vercel/cosmosdb-server': read('@vercel/cosmosdb-server'),
  };
}

// ------------------------------------------------------------------------------------------------

/** The History section of a size: records and requests per mirror write of each run, then reading the history. */
function dependencySection(lines: string[], title: string, figures: ScenarioResult<'incremental'>['dependencies']): void {
  lines.push(`${title}:`, '', '| dependency, operation | calls | mean ms | max ms | failures | retried |', '| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const [key, f] of Object.entries(figures)) lines.push(`| ${key} | ${f.calls} | ${f.meanMs} | ${f.maxMs} | ${f.failures} | ${f.retried} |`);
  lines.push('');
}

function historySection(lines: string[], size: SizeReport): void {
  const h = size.history;
  lines.push(
    '### History',
    '',
    'Records each run added to the history container, and its requests there as the emulator counts them (reads / queries / writes; the SDK sends a query-plan request beside each query, counted as a query). RU: the charge the history recorder reported (the emulator charges 1 RU per response, none for a query plan), as the run adds it to its own under `history`; on the event path, the write path + the recordHistory backstop on the change feed.',
    '',
    '| run | mirror writes | history records | of which an empty diff | history reads / queries / writes | history RU | RU per mirror write |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const row = (label: string, writes: number, r: ScenarioResult<'reconcile'>['history']) => {
    const c = r.requests;
    const perWrite = writes > 0 ? round(r.requestCharge / writes) : '–';
    const ru = r.requestChargeByPath.feed > 0 ? `${r.requestCharge} (${r.requestChargeByPath.write} + ${r.requestChargeByPath.feed})` : `${r.requestCharge}`;
    lines.push(`| ${label} | ${writes} | ${r.records} | ${r.emptyDiffs} | ${c.read ?? 0} / ${c.query ?? 0} / ${mirrorWrites(c)} | ${ru} | ${perWrite} |`);
  };
  row('initial load', size.reconcile.initial.result.writes, size.reconcile.initial.history);
  size.reconcile.zeroChange.forEach((z, i) => row(`zero-change reconcile #${i + 1}`, z.result.writes, z.history));
  row(`1 % changed (${size.reconcile.onePercent.stale} stale)`, size.reconcile.onePercent.result.writes, size.reconcile.onePercent.history);
  row(`event path (${size.incremental.changes} changes)`, mirrorWrites(size.incremental.perChange.entities), size.incremental.history);
  const perChange = h.requestChargePerChange;
  lines.push('', `Extra request charge for the history per changed entity (emulator RU): ${perChange.initialLoad} per write of the initial load, ${perChange.onePercent} per stale entity of the 1 % reconcile, ${perChange.incremental} per change on the event path.`, '');
  const e = h.reads.entityHistory;
  lines.push('| history read | calls | p50 ms | p95 ms | Cosmos requests p50 | p95 | records p50 |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  lines.push(`| GET /api/entities/…/history?pageSize=${e.pageSize} | ${e.calls} | ${round(e.ms.p50, 1)} | ${round(e.ms.p95, 1)} | ${e.cosmosRequests.p50} | ${e.cosmosRequests.p95} | ${e.items.p50} |`);
  const c = h.reads.changes;
  lines.push(
    '',
    `GET /api/changes from the beginning (pageSize=${c.pageSize}, include=${c.include}) until an empty page: ${c.records} records (${c.distinct} distinct; ${c.inContainer} in the container) in ${c.pages} pages, ${(c.ms / 1000).toFixed(2)} s, ${Math.round(c.recordsPerSecond)} records/s; page p50 ${round(c.pageMs.p50, 1)} ms, p95 ${round(c.pageMs.p95, 1)} ms; ${c.cosmos.total} Cosmos requests (${c.cosmos.changefeed} change-feed reads).`,
    '',
  );
}

/**
 * A run with a size above {@link SCALE_THRESHOLD}: bench/scale.ts for every size, one report (`<date>-scale.json`).
 * Targets: the 512 MB budget at every size, time per entity no worse at the largest size than at the smallest
 * (growth no faster than linear), and writes that must hold (zero-change 0, 1 % changed = the stale count).
 */
async function scaleRun(opts: Options, started: number): Promise<void> {
  const local = await startLocalStack({ identity: true, cosmos: { appRoles: false }, serviceBus: true });
  const sizes: ScaleSizeReport[] = [];
  let report: ReturnType<typeof scaleReport> | undefined;
  let file: string | undefined;
  try {
    for (const size of [...opts.sizes].sort((a, b) => a - b)) {
      sizes.push(await scaleSize(size, { seed: opts.seed, instanceMemoryMb: opts.instanceMemoryMb, local, log }));
      // Written after every size: a run of an hour or more keeps what it measured if a later size fails.
      report = scaleReport(opts, started, sizes);
      if (opts.write) {
        file = writeResults(opts.out, report.startedAt, 'scale', report, file);
        log(`wrote ${file} (${sizes.length} of ${opts.sizes.length} sizes)`);
      }
    }
  } finally {
    await local.stop();
  }
  if (!report) return;
  const lines = [`# Scale benchmark — ${report.startedAt}`, '', `${report.machine.cpus} × ${report.machine.cpuModel}, ${report.machine.memoryGiB} GiB, Node ${report.machine.node}; commit ${report.versions.commit}; ${report.durationInS} s`, ''];
  lines.push(...formatScale(sizes), '', '| target | value | limit | met |', '| --- | ---: | ---: | --- |');
  for (const t of report.targets) lines.push(`| ${t.name} | ${t.value} | ${t.limit} | ${t.met === null ? `n/a (${t.note})` : t.met ? 'yes' : '**no**'} |`);
  process.stdout.write(`${lines.join('\n')}\n`);
  const misses = report.targets.filter((t) => t.met === false);
  log(`${misses.length} target(s) missed${misses.length ? `: ${misses.map((t) => t.name).join('; ')}` : ''}`);
  if (misses.some((t) => t.counted)) process.exitCode = 1;
}

/** The scale run's report of the sizes measured so far, with its targets. */
function scaleReport(opts: Options, started: number, sizes: ScaleSizeReport[]) {
  const smallest = sizes[0]!;
  const largest = sizes.at(-1)!;
  const growth = (pick: (s: ScaleSizeReport) => number) => pick(largest) / pick(smallest);
  const linear = largest === smallest ? 'one size: nothing to compare' : undefined;
  const targets: Target[] = [
    ...sizes.map((s) => target(`peak RSS < ${SCALE_MEMORY_BUDGET_IN_MB} MB at ${s.entities} entities`, Math.max(s.initial.peakRssMb, s.zeroChange.peakRssMb, s.onePercent.peakRssMb), SCALE_MEMORY_BUDGET_IN_MB)),
    // Time per entity at the largest size over the smallest: 1 is linear; a little above is noise, far above is not.
    target('initial load: time per entity, largest ÷ smallest size ≤ 1.25', growth((s) => s.initial.ms / s.entities), 1.25, 'at-most', linear),
    target('zero-change reconcile: time per entity, largest ÷ smallest size ≤ 1.25', growth((s) => s.zeroChange.ms / s.entities), 1.25, 'at-most', linear),
    ...sizes.map((s) => target(`zero-change reconcile writes = 0 at ${s.entities}`, s.zeroChange.writes, 0, 'equal')),
    ...sizes.map((s) => target(`1 % changed: writes = changed count at ${s.entities}`, s.onePercent.writes, s.onePercent.stale, 'equal')),
  ];
  return {
    kind: 'scale' as const,
    startedAt: new Date(started).toISOString(),
    durationInS: Math.round((Date.now() - started) / 1000),
    machine: { os: `${osType()} ${release()}`, cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: round(totalmem() / 2 ** 30, 1), node: process.version },
    versions: versions(),
    options: { seed: opts.seed, sizes: opts.sizes, instanceMemoryMb: opts.instanceMemoryMb },
    scale: sizes,
    targets,
  };
}

function markdown(report: BenchReport): string {
  const lines: string[] = [];
  const machine = report.machine;
  lines.push(`# Benchmark (${report.kind}) — ${report.startedAt}`, '');
  lines.push(`${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node ${machine.node}; commit ${report.versions.commit}; ${report.durationInS} s`, '');
  for (const size of report.sizes) {
    lines.push(`## ${size.entities} entities (${size.relationsPerEntity} relations per entity; Backstage ingested them in ${size.backstageIngestInS} s)`, '');
    lines.push('| run | wall s | Backstage requests | Cosmos reads / queries / writes | writes | RU | peak RSS MB |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    const rec = (label: string, r: WithPeakRss<Reconcile>) => {
      const c = r.cosmos.all;
      lines.push(`| ${label} | ${(r.ms / 1000).toFixed(2)} | ${r.result.backstageRequests} | ${c.read} / ${c.query} / ${c.create + c.replace + c.upsert} | ${r.result.writes} | ${r.result.requestCharge} | ${r.peakRssMb} |`);
    };
    rec('initial load (ours)', size.reconcile.initial);
    size.reconcile.zeroChange.forEach((z, i) => rec(`zero-change reconcile #${i + 1}`, z));
    rec(`1 % changed (${size.reconcile.onePercent.stale} stale)`, size.reconcile.onePercent);
    size.baselines.bareStream.forEach((s, i) => lines.push(`| bare catalog stream #${i + 1} | ${(s.ms / 1000).toFixed(2)} | ${s.backstageRequests} | – | – | – | ${s.peakRssMb} |`));
    size.baselines.bareIndex.forEach((s, i) => lines.push(`| bare mirror index stream #${i + 1} | ${(s.ms / 1000).toFixed(2)} | – | ${s.cosmosRequests} requests | – | – | ${s.peakRssMb} |`));
    const b = size.baselines.bareWrite;
    lines.push(`| bare bulk write (${b.documents} docs) | ${(b.bulk.ms / 1000).toFixed(2)} | – | ${b.bulk.requests} requests | ${b.documents} | – | – |`);
    lines.push(`| bare point writes, 64 in flight | ${(b.point.ms / 1000).toFixed(2)} | – | ${b.point.requests} requests | ${b.documents} | – | – |`);
    lines.push(`| bare write of the documents and their history records, batch requests (the stores) | ${(b.batchWithHistory.ms / 1000).toFixed(2)} | – | ${b.batchWithHistory.requests} requests | ${b.documents + b.bulkWithHistory.records} | – | – |`);
    lines.push(`| bare bulk write of the documents and their history records (bulk executor) | ${(b.bulkWithHistory.ms / 1000).toFixed(2)} | – | ${b.bulkWithHistory.requests} requests | ${b.documents + b.bulkWithHistory.records} | – | – |`);
    const n = size.baselines.naive;
    lines.push(`| naive: full pages + sequential upserts | ${(n.ms / 1000).toFixed(2)} | ${n.backstageRequests} | ${n.cosmos.total} requests | ${n.writes} | – | ${n.peakRssMb} |`);
    const w = size.withRtt;
    lines.push(`| initial load (ours), ${w.rttInMs} ms Cosmos round trip | ${(w.initial.ms / 1000).toFixed(2)} | ${w.initial.result.backstageRequests} | – | ${w.initial.result.writes} | – | – |`);
    lines.push(`| naive, ${w.rttInMs} ms Cosmos round trip | ${(w.naive.ms / 1000).toFixed(2)} | – | – | ${w.naive.writes} | – | – |`);
    const cpuRows = [
      ...(size.reconcile.initial.cpu ? [formatCpuRow(`${size.entities}`, 'initial load', size.reconcile.initial.ms, size.reconcile.initial.cpu)] : []),
      ...size.reconcile.zeroChange.flatMap((z, i) => (z.cpu ? [formatCpuRow(`${size.entities}`, `zero-change reconcile #${i + 1}`, z.ms, z.cpu)] : [])),
      ...size.baselines.bareStream.flatMap((z, i) => (z.cpu ? [formatCpuRow(`${size.entities}`, `bare catalog stream #${i + 1}`, z.ms, z.cpu)] : [])),
      ...size.baselines.bareIndex.flatMap((z, i) => (z.cpu ? [formatCpuRow(`${size.entities}`, `bare mirror index stream #${i + 1}`, z.ms, z.cpu)] : [])),
    ];
    if (cpuRows.length > 0) lines.push('', ...CPU_TABLE_HEADER, ...cpuRows);
    lines.push('', '| ratio | value |', '| --- | ---: |');
    for (const [k, v] of Object.entries(size.ratios)) lines.push(`| ${k} | ${v} |`);
    const p = size.projection;
    lines.push('', `Edge projection of all ${p.documents} documents: ${(p.ms / 1000).toFixed(1)} s, ${p.edgesAdded} edges written, ${p.cosmos.query} queries, ${p.failed} failed.`, '');
    lines.push('| graph query | p50 ms | p95 ms | Cosmos requests p50 | nodes p50 |', '| --- | ---: | ---: | ---: | ---: |');
    for (const g of size.graph) lines.push(`| ${g.direction} depth ${g.depth} | ${round(g.ms.p50, 1)} | ${round(g.ms.p95, 1)} | ${g.cosmosRequests.p50} | ${g.nodes.p50} |`);
    const inc = size.incremental;
    lines.push('', `Incremental (${inc.changes} changes, feed poll delay ${inc.feedPollDelayInMs} ms):`, '');
    lines.push('| latency | p50 ms | p95 ms | p99 ms |', '| --- | ---: | ---: | ---: |');
    const latencyLabels = { mirror: 'event → mirror write', edges: 'event → edges written', mirrorToEdges: 'mirror write → edges written' } as const;
    for (const k of ['mirror', 'edges', 'mirrorToEdges'] as const) {
      const l = inc.latencyMs[k];
      if (l) lines.push(`| ${latencyLabels[k]} | ${round(l.p50, 0)} | ${round(l.p95, 0)} | ${round(l.p99, 0)} |`);
    }
    const per = inc.perChange;
    const perContainer = (c: ContainerCounts) => `${round((c.read ?? 0) / inc.changes)} reads, ${round((c.query ?? 0) / inc.changes)} queries, ${round(((c.create ?? 0) + (c.replace ?? 0) + (c.upsert ?? 0) + (c.delete ?? 0)) / inc.changes)} writes`;
    lines.push('', `Per change: ${round(per.backstageRequests)} Backstage requests; entities: ${perContainer(per.entities)}; edges: ${perContainer(per.edges)}; history: ${perContainer(per.history)}; leases (time-driven checkpoints): ${perContainer(per.leases)}.`, '');
    dependencySection(lines, `Dependency calls on the event path (\`dependency.duration\`; the normal range docs/operations.md quotes)`, inc.dependencies);
    const caughtUp = inc.backlogs;
    lines.push(
      `Backlog monitor once the event path caught up: change feed ${Object.entries(caughtUp.changeFeed).map(([p, n]) => `${p} ${n}`).join(', ') || '(no leases)'}; queue oldest message ${caughtUp.queue?.oldestMessageAgeInMs ?? '–'} ms, dead letters ${caughtUp.queue?.deadLetters ?? '–'}.`,
      '',
    );
    lines.push(
      ...formatStorm({ size: size.entities, ...size.storm }),
      '',
      ...formatFeedPoll(size.feedPoll, ENTITY_FEED_PROCESSOR_COUNT),
      '',
    );
    dependencySection(lines, 'Dependency calls of the initial load', size.reconcile.initial.dependencies);
    historySection(lines, size);
    lines.push('| target | value | limit | met |', '| --- | ---: | ---: | --- |');
    for (const t of size.targets) lines.push(`| ${t.name} | ${t.value} | ${t.limit} | ${t.met === null ? `n/a (${t.note})` : t.met ? 'yes' : '**no**'} |`);
    lines.push('');
  }
  const authored = report.authored;
  if ('latencyMs' in authored) {
    lines.push(
      `## Authored path (${authored.writes} PUTs ${authored.spacingInMs} ms apart on the ${authored.size}-entity catalog; provider defaults, change-events module every ${authored.moduleIntervalInSeconds} s)`,
      '',
      '| latency | p50 ms | p95 ms | max ms |',
      '| --- | ---: | ---: | ---: |',
    );
    lines.push(`| PUT → entity in Backstage | ${round(authored.latencyMs.backstage.p50, 0)} | ${round(authored.latencyMs.backstage.p95, 0)} | ${round(authored.latencyMs.backstage.max, 0)} |`);
    lines.push(`| PUT → document in the mirror | ${round(authored.latencyMs.mirror.p50, 0)} | ${round(authored.latencyMs.mirror.p95, 0)} | ${round(authored.latencyMs.mirror.max, 0)} |`);
    const l = authored.latencyMs;
    if (l.backstageToMirror) lines.push(`| catalog API serves it → mirror document | ${round(l.backstageToMirror.p50, 0)} | ${round(l.backstageToMirror.p95, 0)} | ${round(l.backstageToMirror.max, 0)} |`);
    if (l.mirrorToEdges) lines.push(`| mirror write → edges | ${round(l.mirrorToEdges.p50, 0)} | ${round(l.mirrorToEdges.p95, 0)} | ${round(l.mirrorToEdges.max, 0)} |`);
    const per = Object.entries(authored.perChange).map(([container, counts]) => `${container}: ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(', ')}`);
    lines.push('', `Cosmos requests per authored change — ${per.join('; ')}. Idle, the provider reads the change feed ${authored.idle.changeFeedReadsPerMinute} times a minute.`, '');
    lines.push('| target | value | limit | met |', '| --- | ---: | ---: | --- |');
    for (const t of authored.targets) lines.push(`| ${t.name} | ${t.value} | ${t.limit} | ${t.met === null ? `n/a (${t.note})` : t.met ? 'yes' : '**no**'} |`);
    lines.push('');
  } else {
    lines.push(`Authored path: ${JSON.stringify(authored)}`, '');
  }
  const detection = report.detection;
  if (detection && 'latencyMs' in detection) {
    lines.push('## Change detection (the Backstage module)', '', formatDetection(detection), '', '| target | value | limit | met |', '| --- | ---: | ---: | --- |');
    for (const t of detection.targets) lines.push(`| ${t.name} | ${t.value} | ${t.limit} | ${t.met === null ? `n/a (${t.note})` : t.met ? 'yes' : '**no**'} |`);
    lines.push('');
  } else if (detection) {
    lines.push(`Change detection: ${JSON.stringify(detection)}`, '');
  }
  const cold = report.coldStart;
  if ('variants' in cold) {
    lines.push(
      `## Cold start (module load in a fresh Node process; deployed: \`main\` = ${cold.main})`,
      '',
      '| variant | load ms p50 | load ms p95 | load + appStart ms p50 | process ms p50 | files | KB |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const v of cold.variants) {
      lines.push(`| ${v.variant} | ${round(v.loadMs.median, 0)} | ${round(v.loadMs.p95, 0)} | ${round(v.startMs.median, 0)} | ${round(v.processMs.median, 0)} | ${v.files} | ${Math.round(v.bytes / 1024)} |`);
    }
    lines.push('', '| target | value | limit | met |', '| --- | ---: | ---: | --- |');
    for (const t of cold.targets) lines.push(`| ${t.name} | ${t.value} | ${t.limit} | ${t.met === null ? `n/a (${t.note})` : t.met ? 'yes' : '**no**'} |`);
    lines.push('');
  } else {
    lines.push(`Cold start: ${JSON.stringify(cold)}`, '');
  }
  return `${lines.join('\n')}\n`;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
