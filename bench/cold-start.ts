/**
 * Cold start: how long a fresh Node process takes to load the Functions app the way the host does — `require` the
 * files `package.json` `main` matches, in order, with `@azure/functions` registering the functions
 * (bench/cold-start-child.cjs) — in the deployed layout (the single-file bundle, `dist-bundle/main.js`, built by
 * scripts/bundle.ts exactly as `npm run build` builds it) and in the layout deployed before it (tsc's
 * `dist/functions/*.js`, unbundled).
 *
 *   node --import tsx bench/cold-start.ts [--runs N] [--quick] [--cold-cache] [--json]
 *
 * Each variant runs in its own fresh processes: `process.execPath`, no flags, no tsx, a minimal environment (no
 * NODE_OPTIONS) with production-style settings, so the `appStart` hook validates the configuration and builds the
 * runtime as in Azure. Runs are interleaved across variants. Per variant:
 *
 * - `loadMs`: measured inside the child with `performance.now()`, from before the first `require` to after the last;
 * - `appStartMs`: the `appStart` hooks after it (the worker runs them before it answers the host);
 * - `startMs`: the two together, per run — what the worker spends before it can take the first invocation, and the
 *   figure the goal is measured on, so that work moved from the load into `appStart` is not counted as saved;
 * - `processMs`: the child's whole life as the parent sees it (spawn → exit): Node's own start-up, the load, the
 *   `appStart` hooks and exit;
 * - `files`, `bytes`: the module files the load pulled in (CommonJS from `require.cache`, ES modules from the ESM
 *   loader — jose is ESM-only) and their size on disk, from one extra inventory run (with `--expose-internals`, which
 *   is why it is not timed). That run also records what was registered, which must equal the unbundled app's.
 *
 * The "+ App Insights" variants set `APPLICATIONINSIGHTS_CONNECTION_STRING` (with Entra ingestion, as infra/ does):
 * then the first function file starts the Application Insights distro before anything else loads, as in Azure.
 * Nothing is sent — the process exits right after start-up.
 *
 * The goal (issue 19 §3): the deployed configuration — the bundle, App Insights on — starts in at most 0.4× the time
 * of the configuration deployed before (`unbundled + App Insights`) and no slower than that app without App Insights
 * (`unbundled`), all three in the same run. The configuration deployed before is reproduced, not remembered: the
 * `unbundled` variants load tsc's `dist/functions/*.js`, which is what `main` pointed at, and their first file still
 * starts the distro from node_modules eagerly before requiring anything else (functions/lib/bootstrap.ts is
 * unchanged: the bundle runs the same code, with the distro bundled). Timing goals are reported, never failed on
 * (shared machines are noisy); a bundle that registers anything other than the unbundled app is a defect.
 *
 * What this is not: the Functions host. The worker process, its gRPC channel to the host, and reading the package
 * from a mounted zip on Flex Consumption (where many small files cost more than on this machine's warm page cache)
 * are not included. Medians of fresh processes; p95 is nearest-rank (the maximum under 20 runs). By default the file
 * cache is warm (every file was read by the inventory run). With `--cold-cache`, every timed run first evicts the
 * files its variant loads from the page cache, so they are read from disk — as on an instance that has just been
 * given the package — while Node itself stays cached, as in the host's pre-started (placeholder) workers; their
 * directory entries stay cached too. That is the nearer model of a cold start on Azure, and what `npm run bench`
 * measures the goal on in a full run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { BUNDLE_EXTERNALS, BUNDLE_FILE, bundleFunctions, compileIfStale, functionEntryFiles, packageMain, ROOT } from '../scripts/bundle';

/** The goal for module load on Flex Consumption. */
export const TARGET_LOAD_MS = 300;

/** Issue 19 §3: the deployed configuration ÷ the configuration deployed before, both with App Insights. */
export const GOAL_VS_PREVIOUS_DEPLOYED = 0.4;
/** Issue 19 §3: the deployed configuration ÷ the unbundled app without App Insights. */
export const GOAL_VS_UNBUNDLED_BARE = 1;

/** The variants the goal compares (names in {@link ColdStartVariant.variant}). */
export const GOAL_VARIANTS = {
  deployed: 'bundle + App Insights',
  previousDeployed: 'unbundled + App Insights',
  unbundledBare: 'unbundled',
} as const;

export interface Stat {
  median: number;
  p95: number;
}

export interface ColdStartVariant {
  variant: string;
  description: string;
  layout: 'unbundled' | 'bundle';
  /** Application Insights configured (as in Azure). */
  telemetry: boolean;
  /** For bundles: what is left to `require` from node_modules. */
  external?: string[];
  loadMs: Stat;
  /** Load + `appStart`, per run. */
  startMs: Stat;
  processMs: Stat;
  /** Node's own start-up before the child script ran (the child's `performance.now()` at its first line). */
  bootMs: Stat;
  appStartMs: Stat;
  /** Module files loaded (JS, JSON, native), and their size on disk. */
  files: number;
  bytes: number;
  /** Of `files`: the app's own (dist/ or the bundle) and node_modules'. */
  appFiles: number;
  nodeModulesFiles: number;
  /** Whether ES modules were counted (they need a Node internal; false means `files` misses jose's). */
  esmCounted: boolean;
  /** The packages that weigh most in what was loaded. */
  topPackages: Array<{ name: string; files: number; bytes: number }>;
  functions: number;
  /** Azure SDK spans reach OpenTelemetry (Application Insights); null when not observable (see the child). */
  azureSdkTracing: boolean | null;
  /** The same functions, bindings, retry options and hooks as the unbundled app registers. */
  registrationsMatchUnbundled: boolean;
  meetsTarget: boolean;
  samples: { loadMs: number[]; startMs: number[]; processMs: number[] };
}

export interface ColdStartComparison {
  baseline: string;
  candidate: string;
  /** candidate ÷ baseline, medians; below 1 is better. */
  loadMsRatio: number;
  processMsRatio: number;
  filesRatio: number;
  bytesRatio: number;
}

/** The goal, on `startMs` medians; absent when a variant it compares could not be measured. */
export interface ColdStartGoal {
  deployed: string;
  previousDeployed: string;
  unbundledBare: string;
  /** deployed ÷ previous deployed; goal ≤ {@link GOAL_VS_PREVIOUS_DEPLOYED}. */
  vsPreviousDeployed: number;
  /** deployed ÷ unbundled without App Insights; goal ≤ {@link GOAL_VS_UNBUNDLED_BARE}. */
  vsUnbundledBare: number;
  met: { vsPreviousDeployed: boolean; vsUnbundledBare: boolean };
  /** The same two ratios on `loadMs` alone, for comparison with earlier runs. */
  loadOnly: { vsPreviousDeployed: number; vsUnbundledBare: number };
}

export interface ColdStartResult {
  runs: number;
  quick: boolean;
  /** Whether each timed run read the variant's files from disk ({@link MeasureColdStartOptions.coldCache}). */
  coldCache: boolean;
  node: string;
  platform: string;
  measuredAt: string;
  /** 1-minute load average before and after, and the CPU count: other work on the machine inflates every figure. */
  machine: { cpus: number; loadAverageBefore: number; loadAverageAfter: number };
  targetLoadMs: number;
  build: {
    /** `fresh`: dist/ was up to date; `rebuilt`: tsc ran first (tscMs). */
    dist: 'fresh' | 'rebuilt';
    tscMs?: number;
    bundles: Array<{ variant: string; outfile: string; bytes: number; modules: number; buildMs: number }>;
  };
  variants: ColdStartVariant[];
  comparisons: ColdStartComparison[];
  goal?: ColdStartGoal;
  /** `package.json` `main`: the file the deployed variants load. */
  main: string;
  notes: string[];
}

interface VariantSpec {
  variant: string;
  description: string;
  layout: 'unbundled' | 'bundle';
  telemetry: boolean;
  /** Bundle name, output, externals, lazy packages and exports, minification and input (bundles only). */
  bundle?: string;
  outfile?: string;
  external?: string[];
  lazy?: string[];
  lazyExports?: string[];
  minify?: boolean;
  from?: 'dist' | 'sources';
  quickToo: boolean;
}

export interface Registration {
  name: string;
  bindings: unknown[];
  retryOptions: unknown;
}

export interface ChildResult {
  bootMs: number;
  loadMs: number;
  appStartMs: number;
  cjsModules: number;
  functions: Registration[];
  hooks: string[];
  appStart: string[];
  loadError: string | null;
  inventory?: { esmCounted: boolean; files: Array<{ file: string; bytes: number }> };
  /** Inventory runs: whether Azure SDK spans reach OpenTelemetry (null: @azure/core-tracing not loaded from node_modules). */
  azureSdkTracing?: boolean | null;
}

const CHILD = join(__dirname, 'cold-start-child.cjs');
const BENCH_BUNDLES = join(ROOT, 'dist-bundle', 'bench');
const DEFAULT_EXTERNALS = Object.keys(BUNDLE_EXTERNALS);

/** Production-style settings (the minimum README.md lists), so `appStart` validates and builds the runtime. */
const APP_SETTINGS: Record<string, string> = {
  CosmosDBConnection__accountEndpoint: 'https://cold-start.documents.azure.com:443/',
  ServiceBusConnection__fullyQualifiedNamespace: 'cold-start.servicebus.windows.net',
  AZURE_CLIENT_ID: '00000000-0000-0000-0000-00000000000a',
  BACKSTAGE_BASE_URL: 'https://backstage.example.com',
  BACKSTAGE_TOKEN_SCOPE: 'api://00000000-0000-0000-0000-00000000000b/.default',
  AUTH_ISSUER: 'https://login.microsoftonline.com/00000000-0000-0000-0000-00000000000c/v2.0',
  AUTH_AUDIENCE: '00000000-0000-0000-0000-00000000000d',
};
/** As infra/app/function.bicep sets them; the endpoints are unreachable and nothing is exported before exit. */
const TELEMETRY_SETTINGS: Record<string, string> = {
  APPLICATIONINSIGHTS_CONNECTION_STRING:
    'InstrumentationKey=00000000-0000-0000-0000-00000000000e;IngestionEndpoint=https://127.0.0.1:9/;LiveEndpoint=https://127.0.0.1:9/',
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=00000000-0000-0000-0000-00000000000a;Authorization=AAD',
};
/** The only variables the children inherit. */
const INHERITED = ['PATH', 'HOME', 'TMPDIR', 'TMP', 'TEMP', 'SystemRoot', 'LANG', 'TZ'];

function variantSpecs(): VariantSpec[] {
  // What `npm run build` writes and `main` points at: the deployed app.
  const bundle = { layout: 'bundle' as const, bundle: 'bundle', outfile: join(ROOT, BUNDLE_FILE), external: DEFAULT_EXTERNALS };
  // The bundle as it was before it was deployed: the distro and the Service Bus extension external, nothing lazy,
  // not minified. For reference: what bundling the distro, the lazy packages and minifying contribute.
  const before = {
    layout: 'bundle' as const,
    bundle: 'bundle before (distro and Service Bus extension external)',
    outfile: join(BENCH_BUNDLES, 'before', 'main.js'),
    external: [...DEFAULT_EXTERNALS, 'applicationinsights', '@azure/functions-extensions-servicebus'],
    lazy: [],
    lazyExports: [],
    minify: false,
  };
  const sources = {
    layout: 'bundle' as const,
    bundle: 'bundle from sources',
    outfile: join(BENCH_BUNDLES, 'sources', 'main.js'),
    external: DEFAULT_EXTERNALS,
    from: 'sources' as const,
  };
  const unbundled = { layout: 'unbundled' as const, description: 'dist/functions/*.js as tsc leaves them: what `main` pointed at before the bundle was deployed' };
  const bundleText = `${BUNDLE_FILE} as \`npm run build\` writes it: the deployed app`;
  const beforeText = 'the bundle as it was before it was deployed: applicationinsights and the Service Bus extension loaded from node_modules, nothing initialised lazily, not minified';
  return [
    { variant: 'unbundled', telemetry: false, quickToo: true, ...unbundled },
    { variant: 'bundle', description: bundleText, telemetry: false, quickToo: true, ...bundle },
    { variant: 'bundle before', description: beforeText, telemetry: false, quickToo: false, ...before },
    {
      variant: 'bundle from sources (experimental)',
      description:
        'as `bundle`, but from functions/*.ts: esbuild picks the ESM builds of the SDKs and tree-shakes them, leaving ESM and CommonJS copies of the Azure core packages side by side. Not a deployment candidate',
      telemetry: false,
      quickToo: false,
      ...sources,
    },
    { variant: GOAL_VARIANTS.previousDeployed, telemetry: true, quickToo: true, ...unbundled },
    { variant: GOAL_VARIANTS.deployed, description: bundleText, telemetry: true, quickToo: true, ...bundle },
    { variant: 'bundle before + App Insights', description: beforeText, telemetry: true, quickToo: false, ...before },
  ];
}

export interface MeasureColdStartOptions {
  runs?: number;
  quick?: boolean;
  /**
   * Before every timed run, evict the files the variant loads from the page cache (see {@link evictFromPageCache}):
   * the package is read from disk, as on an instance that has just received it, while Node itself stays warm.
   */
  coldCache?: boolean;
}

export async function measureColdStart(options: MeasureColdStartOptions = {}): Promise<ColdStartResult> {
  const quick = options.quick ?? false;
  const coldCache = options.coldCache ?? false;
  const runs = Math.max(1, Math.floor(options.runs ?? (quick ? 3 : 10)));
  const notes: string[] = [];
  const loadAverageBefore = round2(loadavg()[0]!);

  const dist = ensureDist(notes);
  let specs = variantSpecs().filter((s) => !quick || s.quickToo);
  // A bundle variant that fails to build or load is reported in `notes` and left out; the unbundled app must load.
  const drop = (spec: VariantSpec, error: unknown) => {
    if (spec.layout === 'unbundled') throw error;
    notes.push(`${spec.variant}: left out: ${error instanceof Error ? error.message : String(error)}`.slice(0, 2000));
    specs = specs.filter((s) => s.outfile !== spec.outfile);
  };

  const bundles: ColdStartResult['build']['bundles'] = [];
  for (const spec of [...specs]) {
    if (spec.layout !== 'bundle' || bundles.some((b) => b.variant === spec.bundle) || !specs.includes(spec)) continue;
    try {
      const result = await bundleFunctions({
        outfile: spec.outfile!,
        external: spec.external!,
        ...(spec.lazy && { lazy: spec.lazy }),
        ...(spec.lazyExports && { lazyExports: spec.lazyExports }),
        ...(spec.minify !== undefined && { minify: spec.minify }),
        ...(spec.from && { from: spec.from }),
      });
      bundles.push({ variant: spec.bundle!, outfile: relative(ROOT, result.outfile), bytes: result.bytes, modules: result.inputs, buildMs: result.buildMs });
    } catch (error) {
      drop(spec, error);
    }
  }

  const entries = functionEntryFiles();
  const filesOf = (spec: VariantSpec) => (spec.layout === 'bundle' ? [spec.outfile!] : entries);
  const scratch = mkdtempSync(join(tmpdir(), 'cold-start-'));
  try {
    // One inventory run per variant (untimed; it also warms the file cache), then `runs` timed rounds, interleaved.
    const inventories = new Map<VariantSpec, ChildResult>();
    for (const spec of [...specs]) {
      if (!specs.includes(spec)) continue;
      try {
        const { result } = await runChild(spec, filesOf(spec), scratch, true);
        if (result.loadError) throw new Error(`${spec.variant}: loading failed: ${result.loadError}`);
        inventories.set(spec, result);
      } catch (error) {
        drop(spec, error);
      }
    }
    const samples = new Map<VariantSpec, Array<{ child: ChildResult; processMs: number }>>(specs.map((s) => [s, []]));
    for (let round = 0; round < runs; round++) {
      for (const spec of specs) {
        if (coldCache) evictFromPageCache(inventories.get(spec)!.inventory!.files.map((f) => f.file));
        const { result, processMs } = await runChild(spec, filesOf(spec), scratch, false);
        if (result.loadError) throw new Error(`${spec.variant}: loading failed: ${result.loadError}`);
        samples.get(spec)!.push({ child: result, processMs });
      }
    }

    // With telemetry, the distro adds its own invocation hooks: compare like with like.
    const referenceKey = (telemetry: boolean) => {
      const reference = specs.find((s) => s.layout === 'unbundled' && s.telemetry === telemetry);
      return reference ? registrationKey(inventories.get(reference)!) : undefined;
    };
    const variants = specs.map((spec): ColdStartVariant => {
      const inventory = inventories.get(spec)!;
      const runsOf = samples.get(spec)!;
      const files = inventory.inventory!.files;
      const appFiles = files.filter((f) => !f.file.split(/[\\/]/).includes('node_modules'));
      const matches = registrationKey(inventory) === (referenceKey(spec.telemetry) ?? referenceKey(false));
      if (!matches) notes.push(`${spec.variant}: registrations differ from the unbundled app's`);
      const failedStart = inventory.appStart.filter((s) => s !== 'ok');
      if (failedStart.length > 0) notes.push(`${spec.variant}: appStart ${failedStart.join(', ')}`);
      const loadMs = runsOf.map((r) => r.child.loadMs);
      const startMs = runsOf.map((r) => r.child.loadMs + r.child.appStartMs);
      const load = stat(loadMs);
      return {
        variant: spec.variant,
        description: spec.description,
        layout: spec.layout,
        telemetry: spec.telemetry,
        ...(spec.external && { external: ['@azure/functions-core', ...spec.external] }),
        loadMs: load,
        startMs: stat(startMs),
        processMs: stat(runsOf.map((r) => r.processMs)),
        bootMs: stat(runsOf.map((r) => r.child.bootMs)),
        appStartMs: stat(runsOf.map((r) => r.child.appStartMs)),
        files: files.length,
        bytes: files.reduce((sum, f) => sum + f.bytes, 0),
        appFiles: appFiles.length,
        nodeModulesFiles: files.length - appFiles.length,
        esmCounted: inventory.inventory!.esmCounted,
        topPackages: topPackages(files, 8),
        functions: inventory.functions.length,
        azureSdkTracing: inventory.azureSdkTracing ?? null,
        registrationsMatchUnbundled: matches,
        meetsTarget: load.median < TARGET_LOAD_MS,
        samples: { loadMs: loadMs.map(round1), startMs: startMs.map(round1), processMs: runsOf.map((r) => round1(r.processMs)) },
      };
    });
    if (variants.some((v) => !v.esmCounted)) notes.push('ES modules could not be listed on this Node version: `files`/`bytes` miss the ESM-only packages (jose)');

    const comparisons: ColdStartComparison[] = [];
    for (const telemetry of [false, true]) {
      const baseline = variants.find((v) => v.layout === 'unbundled' && v.telemetry === telemetry);
      if (!baseline) continue;
      for (const candidate of variants.filter((v) => v.layout === 'bundle' && v.telemetry === telemetry)) {
        comparisons.push({
          baseline: baseline.variant,
          candidate: candidate.variant,
          loadMsRatio: round2(candidate.loadMs.median / baseline.loadMs.median),
          processMsRatio: round2(candidate.processMs.median / baseline.processMs.median),
          filesRatio: round2(candidate.files / baseline.files),
          bytesRatio: round2(candidate.bytes / baseline.bytes),
        });
      }
    }

    const goal = goalOf(variants);
    const main = packageMain();
    if (main !== BUNDLE_FILE) notes.push(`package.json "main" is ${main}, not ${BUNDLE_FILE}: the "bundle" variants are not what is deployed`);

    const machine = { cpus: cpus().length, loadAverageBefore, loadAverageAfter: round2(loadavg()[0]!) };
    // The children keep about one CPU busy themselves; more than that is someone else's work.
    if (Math.max(machine.loadAverageBefore, machine.loadAverageAfter - 1) > machine.cpus / 2) {
      notes.push(`the machine was busy (1-minute load average ${machine.loadAverageBefore} before, ${machine.loadAverageAfter} after, ${machine.cpus} CPUs): absolute times are inflated; the ratios hold better`);
    }
    return {
      runs,
      quick,
      coldCache,
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      measuredAt: new Date().toISOString(),
      machine,
      targetLoadMs: TARGET_LOAD_MS,
      build: { ...dist, bundles },
      variants,
      comparisons,
      ...(goal && { goal }),
      main,
      notes,
    };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The goal's two ratios, on `startMs` medians (and on `loadMs` for comparison), when its three variants were measured. */
export function goalOf(variants: ColdStartVariant[]): ColdStartGoal | undefined {
  const find = (name: string) => variants.find((v) => v.variant === name);
  const deployed = find(GOAL_VARIANTS.deployed);
  const previous = find(GOAL_VARIANTS.previousDeployed);
  const bare = find(GOAL_VARIANTS.unbundledBare);
  if (!deployed || !previous || !bare) return undefined;
  const vsPreviousDeployed = round2(deployed.startMs.median / previous.startMs.median);
  const vsUnbundledBare = round2(deployed.startMs.median / bare.startMs.median);
  return {
    deployed: deployed.variant,
    previousDeployed: previous.variant,
    unbundledBare: bare.variant,
    vsPreviousDeployed,
    vsUnbundledBare,
    met: { vsPreviousDeployed: vsPreviousDeployed <= GOAL_VS_PREVIOUS_DEPLOYED, vsUnbundledBare: vsUnbundledBare <= GOAL_VS_UNBUNDLED_BARE },
    loadOnly: {
      vsPreviousDeployed: round2(deployed.loadMs.median / previous.loadMs.median),
      vsUnbundledBare: round2(deployed.loadMs.median / bare.loadMs.median),
    },
  };
}

function ensureDist(notes: string[]): { dist: 'fresh' | 'rebuilt'; tscMs?: number } {
  const { tscMs, orphans } = compileIfStale();
  if (orphans.length > 0) notes.push(`dist/ has compiled functions without a source (the host would load them too): ${orphans.join(', ')}`);
  return tscMs === undefined ? { dist: 'fresh' } : { dist: 'rebuilt', tscMs };
}

function childEnvironment(telemetry: boolean): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of INHERITED) if (process.env[name] !== undefined) env[name] = process.env[name]!;
  return { ...env, ...APP_SETTINGS, ...(telemetry && TELEMETRY_SETTINGS) };
}

/**
 * Loads `files` as the host would (bench/cold-start-child.cjs) in a fresh Node process with a minimal, production-style
 * environment; `inventory` also lists every module file loaded (one extra flag: `--expose-internals`).
 */
export async function loadInFreshProcess(
  files: string[],
  options: { telemetry?: boolean; inventory?: boolean; scratchDir?: string } = {},
): Promise<{ result: ChildResult; processMs: number }> {
  const scratch = options.scratchDir ?? mkdtempSync(join(tmpdir(), 'cold-start-'));
  const out = join(scratch, `${process.pid}-${Math.random().toString(36).slice(2)}.json`);
  const args = [...(options.inventory ? ['--expose-internals'] : []), CHILD, JSON.stringify({ out, files, inventory: options.inventory ?? false })];
  let stderr = '';
  try {
    const started = performance.now();
    const child = spawn(process.execPath, args, { cwd: ROOT, env: childEnvironment(options.telemetry ?? false), stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (exitCode) => resolve(exitCode));
    });
    const processMs = performance.now() - started;
    clearTimeout(timer);
    if (code !== 0 || !existsSync(out)) throw new Error(`the cold-start child exited with ${code}:\n${stderr}`);
    return { result: JSON.parse(readFileSync(out, 'utf8')) as ChildResult, processMs };
  } finally {
    if (options.scratchDir) rmSync(out, { force: true });
    else rmSync(scratch, { recursive: true, force: true });
  }
}

async function runChild(spec: VariantSpec, files: string[], scratch: string, inventory: boolean): Promise<{ result: ChildResult; processMs: number }> {
  try {
    return await loadInFreshProcess(files, { telemetry: spec.telemetry, inventory, scratchDir: scratch });
  } catch (error) {
    throw new Error(`${spec.variant}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/**
 * Drops `files` from the page cache (coreutils' `dd iflag=nocache count=0`: posix_fadvise DONTNEED for the whole file),
 * so that the next process reads them from disk. Their directory entries stay cached. Linux only; fails loudly when
 * `dd` does not support it rather than measure a warm cache and call it cold.
 */
export function evictFromPageCache(files: readonly string[]): void {
  const result = spawnSync('sh', ['-c', 'for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none || exit 1; done', 'evict', ...files], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`could not evict ${files.length} files from the page cache: ${result.stderr || result.error?.message || `exit ${result.status}`}`);
}

/** What the host would receive, independent of registration order. */
function registrationKey(result: ChildResult): string {
  const functions = [...result.functions].sort((a, b) => a.name.localeCompare(b.name));
  return JSON.stringify({ functions, hooks: [...result.hooks].sort() });
}

function topPackages(files: Array<{ file: string; bytes: number }>, count: number): ColdStartVariant['topPackages'] {
  const packages = new Map<string, { files: number; bytes: number }>();
  for (const { file, bytes } of files) {
    const parts = file.split(/[\\/]/);
    const at = parts.lastIndexOf('node_modules');
    const name = at < 0 ? '(app)' : parts[at + 1]?.startsWith('@') ? `${parts[at + 1]}/${parts[at + 2]}` : parts[at + 1]!;
    const entry = packages.get(name) ?? { files: 0, bytes: 0 };
    entry.files += 1;
    entry.bytes += bytes;
    packages.set(name, entry);
  }
  return [...packages]
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .slice(0, count)
    .map(([name, entry]) => ({ name, ...entry }));
}

export function stat(values: number[]): Stat {
  if (values.length === 0) throw new Error('no samples');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  const p95 = sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)]!;
  return { median: round1(median), p95: round1(p95) };
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const round2 = (n: number) => Math.round(n * 100) / 100;

/** The goal's two lines: each ratio, its limit, and whether it is met. */
export function formatGoal(goal: ColdStartGoal): string[] {
  const verdict = (met: boolean) => (met ? 'met' : '**missed**');
  return [
    `| ${goal.deployed} ÷ ${goal.previousDeployed} (deployed before) | ${goal.vsPreviousDeployed} | ≤ ${GOAL_VS_PREVIOUS_DEPLOYED} | ${verdict(goal.met.vsPreviousDeployed)} |`,
    `| ${goal.deployed} ÷ ${goal.unbundledBare} (no App Insights) | ${goal.vsUnbundledBare} | ≤ ${GOAL_VS_UNBUNDLED_BARE} | ${verdict(goal.met.vsUnbundledBare)} |`,
  ];
}

/** The result as Markdown: one row per variant, the goal, then the bundle ÷ unbundled ratios. */
export function formatColdStart(result: ColdStartResult): string {
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  const lines = [
    `## Cold start: loading the Functions app in a fresh Node process (${result.runs} runs, Node ${result.node}, ${result.platform}${result.coldCache ? ', the package read from disk on every run' : ''})`,
    '',
    `Deployed: \`package.json\` \`main\` = ${result.main}.`,
    '',
    `| variant | load ms p50 | load ms p95 | load + appStart ms p50 | process ms p50 | process ms p95 | files | MiB | load < ${result.targetLoadMs} ms |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...result.variants.map(
      (v) =>
        `| ${v.variant} | ${Math.round(v.loadMs.median)} | ${Math.round(v.loadMs.p95)} | ${Math.round(v.startMs.median)} | ${Math.round(v.processMs.median)} | ${Math.round(v.processMs.p95)} | ` +
        `${v.files} | ${mib(v.bytes)} | ${v.meetsTarget ? 'yes' : '**no**'} |`,
    ),
    '',
    ...(result.goal
      ? [
          'Goal (load + appStart, medians of the same run; on load alone: ' +
            `${result.goal.loadOnly.vsPreviousDeployed} and ${result.goal.loadOnly.vsUnbundledBare}):`,
          '',
          '| goal | ratio | limit | verdict |',
          '| --- | ---: | ---: | --- |',
          ...formatGoal(result.goal),
          '',
        ]
      : []),
    '| bundle vs unbundled | load | process | files | bytes |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...result.comparisons.map((c) => `| ${c.candidate} ÷ ${c.baseline} | ${c.loadMsRatio} | ${c.processMsRatio} | ${c.filesRatio} | ${c.bytesRatio} |`),
    '',
    `Build: dist/ ${result.build.dist}${result.build.tscMs !== undefined ? ` (tsc ${result.build.tscMs} ms)` : ''}; ` +
      result.build.bundles.map((b) => `${b.outfile} ${mib(b.bytes)} MiB from ${b.modules} modules in ${b.buildMs} ms`).join('; ') +
      `. Machine: ${result.machine.cpus} CPUs, 1-minute load average ${result.machine.loadAverageBefore} before, ${result.machine.loadAverageAfter} after.`,
    ...result.notes.map((n) => `\nNote: ${n}`),
  ];
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { runs: { type: 'string' }, quick: { type: 'boolean', default: false }, 'cold-cache': { type: 'boolean', default: false }, json: { type: 'boolean', default: false } },
  });
  const runs = values.runs === undefined ? undefined : Number(values.runs);
  if (runs !== undefined && !(Number.isInteger(runs) && runs > 0)) throw new Error('--runs must be a positive integer');
  const result = await measureColdStart({ quick: values.quick, coldCache: values['cold-cache'], ...(runs !== undefined && { runs }) });
  process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : formatColdStart(result));
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
