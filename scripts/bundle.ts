/**
 * `npm run build:bundle` (also part of `npm run build`) — bundles the compiled function files (`dist/functions/*.js`,
 * {@link FUNCTION_FILES}; compiled first when stale) into one file, `dist-bundle/main.js` (+ `main.js.map`), with
 * esbuild. That file is what is deployed: `package.json` `main` points at it. Fewer files to find, read and compile
 * at cold start; see docs/deploy.md ("What is deployed: a single-file bundle") and bench/cold-start.ts.
 * `--outfile <path>` writes elsewhere (it must stay inside the repository, so the externals resolve from node_modules).
 *
 * The input is tsc's CommonJS output, not the TypeScript sources: every `require` then resolves with the `require`
 * condition, so the bundle holds exactly the CommonJS builds Node loads for the unbundled app (from the sources,
 * esbuild would pick the ESM builds of the Azure SDKs for `import`s and the CommonJS ones for `require`s — two copies
 * of `@azure/core-rest-pipeline`, `@azure/logger` and others). The entry requires the files in the order of the
 * glob, sorted as the host sorts the files of a `main` glob.
 *
 * Not bundled ({@link BUNDLE_EXTERNALS}), and so still loaded from node_modules: what the host provides, and the
 * packages that break or change behaviour when bundled.
 *
 * Bundled separately and loaded lazily ({@link BUNDLE_LAZY}): packages that other bundled packages `require` at load
 * time but that this app never uses, or uses only later — the OpenTelemetry exporters, propagators and
 * instrumentations the Application Insights distro (through `@opentelemetry/sdk-node`) requires whatever its
 * configuration, what the Azure SDKs require for features this app does not use (Cosmos DB's client-side encryption,
 * Service Bus administration, MSAL's certificate assertions), zod's translations, and the gRPC stack of the Service
 * Bus extension, needed at the first message settlement — and what only some requests use (ajv for the authoring
 * API, zod's v3 API for a configured filter). Each is
 * replaced in `main.js` by a small module whose properties load the real one on first access, from its own file
 * (`lazy/<package>.<hash>.js` next to `main.js`, a bundle of the package and what it requires): what is never
 * touched is neither read nor parsed at start (3.6 MiB of the 8.3 MiB the bundle would hold with them inside).
 *
 * Bundled export by export ({@link BUNDLE_LAZY_EXPORTS}): packages whose entry only re-exports its modules, where
 * requiring the entry would run every module (the catalog model builds every kind when loaded); each export runs
 * its own module when first read.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';
import type { BuildOptions, Plugin } from 'esbuild';

export const ROOT = resolve(__dirname, '..');

/** The compiled function files, relative to the repository: what the bundle is built from (and the unbundled layout). */
export const FUNCTION_FILES = 'dist/functions/*.js';

/** Where `npm run build` writes the bundle, relative to the repository; `package.json` `main`. */
export const BUNDLE_FILE = 'dist-bundle/main.js';

/** Left to `require` at run time, with the reason for each. */
export const BUNDLE_EXTERNALS: Readonly<Record<string, string>> = {
  '@azure/functions-core': 'provided by the Functions worker at run time; not an npm package',
  '@azure/core-tracing':
    'the Azure SDK instrumentation of the Application Insights distro installs its tracer through a require hook on this module; bundled, the hook never fires and Cosmos DB / Service Bus calls stop being traced',
  '@opentelemetry/api':
    'its global registration (tracer, meter and logger providers) is per copy: one copy for the app, the distro and the Azure SDK instrumentation, which @azure/core-tracing reaches from node_modules',
  '@opentelemetry/api-logs': 'as @opentelemetry/api: one copy for the app and the distro',
};

/**
 * Bundled, but initialised on first use instead of when first required (see the header), with the reason each is not
 * needed at load. A package listed here that something does use at load is simply initialised then: the stand-in
 * forwards every property read, `in`, and key listing to the real module.
 */
export const BUNDLE_LAZY: Readonly<Record<string, string>> = {
  ...Object.fromEntries(
    ['trace', 'metrics', 'logs'].flatMap((signal) =>
      ['http', 'grpc', 'proto'].map((protocol) => [`@opentelemetry/exporter-${signal}-otlp-${protocol}`, 'OTLP export: only with OTEL_EXPORTER_OTLP_* / the distro\'s otlp*ExporterConfig, which this app does not set']),
    ),
  ),
  '@opentelemetry/exporter-zipkin': 'an exporter sdk-node offers; not configured',
  '@opentelemetry/exporter-prometheus': 'an exporter sdk-node offers; not configured',
  '@opentelemetry/propagator-b3': 'a propagator sdk-node offers through OTEL_PROPAGATORS; W3C trace context is used',
  '@opentelemetry/propagator-jaeger': 'as propagator-b3',
  '@opentelemetry/configuration': 'sdk-node\'s declarative (file) configuration; not used',
  yaml: 'read by @opentelemetry/configuration only',
  ...Object.fromEntries(
    ['mongodb', 'mysql', 'pg', 'redis', 'redis-4'].map((name) => [
      `@opentelemetry/instrumentation-${name}`,
      'an instrumentation of the distro, disabled (shared/platform/telemetry.ts enables only azureSdk and http): never constructed',
    ]),
  ),
  '@opentelemetry/instrumentation-bunyan': 'a log instrumentation of the distro, disabled',
  '@opentelemetry/instrumentation-winston': 'as instrumentation-bunyan',
  '@microsoft/applicationinsights-web-snippet': 'the distro\'s browser SDK loader, disabled',
  '@azure/keyvault-keys': "Cosmos DB's client-side encryption (its Key Vault key resolver): this app does not encrypt client-side",
  '@azure/core-xml': "the Service Bus administration client's ATOM (XML) serialisation: this app does not administer Service Bus",
  jsonwebtoken: "MSAL's client assertions (certificate credentials): signed only when a certificate credential is used",
  'zod/v4/locales': "zod's error messages in every language (required by `zod` for its `locales` export): only English is used, which zod loads itself",
  '@grpc/grpc-js': 'the Service Bus extension settles messages over gRPC with the host: first needed at the first settlement',
  '@grpc/proto-loader': 'as @grpc/grpc-js (reads proto/settlement.proto, copied next to the bundle)',
  ajv: "JSON-schema validation: the catalog model's kind validators and entity policies, which only the authoring API runs (shared/authored/validate.ts)",
  'ajv-errors': "ajv's custom error messages: required by the catalog model with ajv, loaded with it",
  lodash: "the catalog model's validator functions use it for one deep-equality check (isJsonSafe), which the app's entity refs never reach",
  'zod/v3': "zod's v3 API: @backstage/filter-predicates parses a SYNC_CATALOG_FILTER with it, read only when one is set",
  'zod-validation-error/v3': "zod v3's error formatter, required by @backstage/filter-predicates with zod/v3: loaded with it",
  'uri-template': "@backstage/catalog-client's request paths: read at the first Backstage request",
  '@backstage/errors': "@backstage/catalog-client's and filter-predicates' error types: read when one of them reports an error",
  'serialize-error': '@backstage/errors requires it: loaded with it',
  'cross-fetch': "@backstage/catalog-client's default fetch (node-fetch and its URL parser): the app always passes its own fetchApi",
};

/**
 * Packages whose entry only re-exports its modules (as the Backstage CLI builds a package: `var a = require('./a.cjs.js')`
 * lines, then `exports.x = a.x` lines): in the bundle each export reads its module on first use, instead of the entry
 * loading every module when required (see {@link lazyExports}), with what that saves at start.
 */
export const BUNDLE_LAZY_EXPORTS: Readonly<Record<string, string>> = {
  '@backstage/catalog-model':
    'its entry builds the catalog model at load (every kind, its JSON schema and annotations, with ajv and zod): the app reads the name validators on each invocation and the kind validators only in the authoring API',
  '@backstage/filter-predicates': 'its schema module loads zod v3 and zod-validation-error; the app evaluates predicates and parses one only when SYNC_CATALOG_FILTER is set',
  '@backstage/catalog-client': 'CatalogClient and what it requires load when the first Backstage client is built, not with the function files',
};

/** Of {@link BUNDLE_LAZY}, the packages whose exports are a function: their stand-in is a function too (see lazyPackages). */
export const BUNDLE_LAZY_CALLABLE: readonly string[] = ['cross-fetch', 'lodash'];

export interface BundleOptions {
  /** Default `dist-bundle/main.js` under the repository. */
  outfile?: string;
  /** Module names left external; default the keys of {@link BUNDLE_EXTERNALS}. `@azure/functions-core` is always added. */
  external?: readonly string[];
  /** Packages initialised on first use; default the keys of {@link BUNDLE_LAZY}. */
  lazy?: readonly string[];
  /** Packages bundled export by export; default the keys of {@link BUNDLE_LAZY_EXPORTS}. */
  lazyExports?: readonly string[];
  /**
   * Minify whitespace and syntax, not identifiers (function and class names, and so stack traces, stay as they
   * are): less source for V8 to scan at load. Default true.
   */
  minify?: boolean;
  /** Linked source map (`main.js.map`, mapped through tsc's maps to the TypeScript sources). Default true. */
  sourcemap?: boolean;
  /**
   * `dist` (default): tsc's output, as Node loads it. `sources`: functions/*.ts directly — smaller and faster to load
   * (esbuild tree-shakes the ESM builds of the SDKs) but with ESM and CommonJS copies of the same Azure core packages
   * side by side; for measurement only (bench/cold-start.ts).
   */
  from?: 'dist' | 'sources';
}

export interface BundleResult {
  outfile: string;
  /** The function files bundled, in load order (relative to the repository). */
  entries: string[];
  external: string[];
  /** Of `lazy`, the packages the bundle holds (the others were not required by anything bundled). */
  lazy: string[];
  /** The lazy packages' files, relative to the repository (`lazy/…` next to the outfile), and their total size. */
  lazyFiles: string[];
  lazyBytes: number;
  /** Per lazy file, the input files it shares with `main.js` (each a second copy, loaded with the lazy file). */
  sharedWithMain: Record<string, string[]>;
  bytes: number;
  /** Source files esbuild put in the bundle, and how many of them came from node_modules. */
  inputs: number;
  nodeModulesInputs: number;
  buildMs: number;
}

/**
 * The files a `main`-style pattern (a file, or `dir/*.js`; default {@link FUNCTION_FILES}) matches, sorted as the
 * host's glob returns them.
 */
export function functionEntryFiles(root: string = ROOT, main: string = FUNCTION_FILES): string[] {
  const pattern = basename(main);
  const dir = join(root, dirname(main));
  if (/[*?[\]{}]/.test(dirname(main))) throw new Error(`${main}: only the file name part may be a pattern`);
  if (!/[*?]/.test(pattern)) return existsSync(join(dir, pattern)) ? [join(dir, pattern)] : [];
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => regex.test(f) && statSync(join(dir, f)).isFile())
    .sort()
    .map((f) => join(dir, f));
}

/** `package.json` `main`: what the Functions host loads. */
export function packageMain(root: string = ROOT): string {
  const main = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { main?: string }).main;
  if (!main) throw new Error('package.json has no "main"');
  return main;
}

/** How long compileIfStale waits for another process's compilation of the same dist/ before giving up. */
const COMPILE_LOCK_TIMEOUT_IN_MS = 180_000;

/**
 * Compiles dist/ with tsc (`tsconfig.build.json`) when a compiled file is missing or older than its source or the
 * tsconfig files; returns how long tsc took, or undefined when dist/ was up to date. Also returns compiled function
 * files whose source is gone: tsc never deletes outputs, and the host would load them too.
 *
 * One compilation at a time per repository (`dist/.compile.lock`, created atomically): processes that build bundles
 * side by side — two test files, a test and the benchmark — would otherwise write the same files while the other
 * reads them. A second process waits until the first has finished, then finds dist/ fresh.
 */
export function compileIfStale(root: string = ROOT): { tscMs?: number; orphans: string[] } {
  const lock = join(root, 'dist', '.compile.lock');
  mkdirSync(dirname(lock), { recursive: true });
  const deadline = Date.now() + COMPILE_LOCK_TIMEOUT_IN_MS;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // A lock older than the timeout was left by a process that died while compiling (gone already: try again).
      const lockedAt = statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
      if (Date.now() - lockedAt > COMPILE_LOCK_TIMEOUT_IN_MS) rmSync(lock, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`another process has been compiling dist/ for ${COMPILE_LOCK_TIMEOUT_IN_MS / 1000} s (${lock})`, { cause: error });
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
  try {
    return compileUnlocked(root);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function compileUnlocked(root: string): { tscMs?: number; orphans: string[] } {
  const list = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? list(join(dir, entry.name)) : [join(dir, entry.name)]));
  const sources = ['functions', 'shared'].flatMap((dir) => list(join(root, dir)).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')));
  const configTime = Math.max(...['tsconfig.json', 'tsconfig.build.json'].map((f) => statSync(join(root, f)).mtimeMs));
  const stale = sources.some((source) => {
    const output = join(root, 'dist', relative(root, source)).replace(/\.ts$/, '.js');
    if (!existsSync(output)) return true;
    const outputTime = statSync(output).mtimeMs;
    return outputTime < statSync(source).mtimeMs || outputTime < configTime;
  });
  let tscMs: number | undefined;
  if (stale) {
    const started = performance.now();
    const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc', { paths: [root] }), '-p', 'tsconfig.build.json'], { cwd: root, encoding: 'utf8' });
    if (tsc.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed:\n${tsc.stdout}${tsc.stderr}`);
    tscMs = Math.round(performance.now() - started);
  }
  const orphans = functionEntryFiles(root).filter((file) => !existsSync(join(root, relative(join(root, 'dist'), file)).replace(/\.js$/, '.ts')));
  return { ...(tscMs !== undefined && { tscMs }), orphans: orphans.map((file) => relative(root, file)) };
}

export async function bundleFunctions(options: BundleOptions = {}): Promise<BundleResult> {
  const outfile = resolve(options.outfile ?? join(ROOT, BUNDLE_FILE));
  const external = [...new Set(['@azure/functions-core', ...(options.external ?? Object.keys(BUNDLE_EXTERNALS))])];
  const lazy = (options.lazy ?? Object.keys(BUNDLE_LAZY)).filter((name) => !external.includes(name));
  const fromSources = options.from === 'sources';
  const entries = fromSources
    ? readdirSync(join(ROOT, 'functions'))
        .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
        .sort()
        .map((f) => join(ROOT, 'functions', f))
    : functionEntryFiles(ROOT);
  if (entries.length === 0) throw new Error(`no compiled function files (${FUNCTION_FILES}); run \`npm run build\` first`);
  // Loaded here, not at the top: importing this module (e.g. for functionEntryFiles) needs no esbuild.
  const { build } = await import('esbuild');
  const lazyUsed = new Set<string>();
  const chunks: LazyChunks = { requirePrefix: `./${LAZY_DIR}/`, files: new Map() };
  const lazyDir = join(dirname(outfile), LAZY_DIR);
  rmSync(lazyDir, { recursive: true, force: true });
  const started = performance.now();
  const common = {
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: options.sourcemap === false ? false : 'linked',
    sourcesContent: false,
    external,
    metafile: true,
    logLevel: 'warning',
    legalComments: 'none',
    ...(options.minify !== false && { minifyWhitespace: true, minifySyntax: true }),
  } as const;
  const result = await build({
    ...common,
    stdin: {
      contents: entries
        .map((file) => `./${relative(ROOT, file).split('\\').join('/')}`)
        .map((path) => (fromSources ? `import ${JSON.stringify(path.replace(/\.ts$/, ''))};` : `require(${JSON.stringify(path)});`))
        .join('\n'),
      resolveDir: ROOT,
      sourcefile: fromSources ? 'functions-entry.ts' : 'functions-entry.js',
      loader: fromSources ? 'ts' : 'js',
    },
    outfile,
    plugins: [...(lazy.length > 0 ? [lazyPackages(lazy, lazyUsed, BUNDLE_LAZY_CALLABLE, chunks)] : []), lazyExports(options.lazyExports ?? Object.keys(BUNDLE_LAZY_EXPORTS))],
  });
  const { files: lazyFiles, sharedWithMain } = await buildLazyFiles({
    chunks,
    packages: lazy,
    used: lazyUsed,
    callable: BUNDLE_LAZY_CALLABLE,
    lazyDir,
    esbuildOptions: common,
    mainInputs: Object.keys(result.metafile.inputs),
  });
  // The Service Bus extension, when bundled, looks for its settlement contract next to the bundle.
  if (!external.includes('@azure/functions-extensions-servicebus')) {
    const proto = join(dirname(require.resolve('@azure/functions-extensions-servicebus', { paths: [ROOT] })), 'proto', 'settlement.proto');
    mkdirSync(join(dirname(outfile), 'proto'), { recursive: true });
    copyFileSync(proto, join(dirname(outfile), 'proto', 'settlement.proto'));
  }
  const inputs = Object.keys(result.metafile.inputs);
  return {
    outfile,
    entries: entries.map((file) => relative(ROOT, file)),
    external,
    lazy: lazy.filter((name) => lazyUsed.has(name)),
    lazyFiles: lazyFiles.map((file) => relative(ROOT, file)),
    lazyBytes: lazyFiles.reduce((sum, file) => sum + statSync(file).size, 0),
    sharedWithMain,
    bytes: statSync(outfile).size,
    inputs: inputs.length,
    nodeModulesInputs: inputs.filter((i) => i.includes('node_modules/')).length,
    buildMs: Math.round(performance.now() - started),
  };
}

const LAZY_NAMESPACE = 'lazy-package';

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
/** The directory next to the bundle that holds the lazy packages' files. */
export const LAZY_DIR = 'lazy';

/**
 * Where lazily loaded packages live when they are not in the bundle that requires them: `files` maps each package's
 * resolved entry file to the name of its own bundle (filled in by {@link lazyPackages}); a stand-in requires
 * `requirePrefix + name`, relative to the bundle that holds it.
 */
export interface LazyChunks {
  requirePrefix: string;
  files: Map<string, string>;
}

/** The file name of a lazy package's own bundle: readable, and distinct for two versions of one package. */
export const lazyFileName = (name: string, realPath: string): string =>
  `${name.replace(/^@/, '').replace(/[^\w.-]+/g, '_')}.${createHash('sha256').update(relative(ROOT, realPath).split('\\').join('/')).digest('hex').slice(0, 8)}.js`;

/**
 * Builds the file of each lazy package {@link lazyPackages} recorded in `chunks` (into `lazyDir`), with `esbuildOptions`
 * (those of the bundle that requires them). A lazy package that requires another gets a stand-in for it too (its file,
 * `./` from inside `lazyDir`), so no two lazy files hold the same lazy package; files are built until no new one turns
 * up. Returns the files, and per file the inputs it shares with the bundle whose inputs are `mainInputs` (each a
 * second copy, loaded with the lazy file).
 */
export async function buildLazyFiles(options: {
  chunks: LazyChunks;
  packages: readonly string[];
  used: Set<string>;
  callable: readonly string[];
  lazyDir: string;
  esbuildOptions: BuildOptions;
  mainInputs: readonly string[];
}): Promise<{ files: string[]; sharedWithMain: Record<string, string[]> }> {
  const { build } = await import('esbuild');
  const mainInputs = new Set(options.mainInputs);
  const sharedWithMain: Record<string, string[]> = {};
  const built = new Set<string>();
  const chunks = { ...options.chunks, requirePrefix: './' };
  for (let pending = [...chunks.files]; pending.length > 0; pending = [...chunks.files].filter(([, file]) => !built.has(file))) {
    await Promise.all(
      pending.map(async ([realPath, file]) => {
        built.add(file);
        const chunk = await build({
          ...options.esbuildOptions,
          metafile: true,
          entryPoints: [realPath],
          outfile: join(options.lazyDir, file),
          plugins: [lazyPackages(options.packages, options.used, options.callable, chunks)],
        });
        sharedWithMain[`${basename(options.lazyDir)}/${file}`] = Object.keys(chunk.metafile.inputs).filter((input) => mainInputs.has(input));
      }),
    );
  }
  return { files: [...built].sort().map((file) => join(options.lazyDir, file)), sharedWithMain };
}

/**
 * An esbuild plugin: a bare `require`/`import` of one of `packages` (not of its subpaths) from bundled code resolves
 * to a stand-in that requires the real package on the first property read, `in` or key listing — bundled as usual,
 * or, with `chunks`, from the package's own file (left for the caller to build; see {@link LazyChunks}). A name may be
 * a module of a package (`zod/v4/locales`): then a relative `require` of that module's file (by its file name, as
 * `../locales/index.cjs`) from inside the package resolves to the stand-in too.
 * `used` receives the names that were resolved so. The stand-in is an object, or — for the names in `callable`, whose
 * exports are a function — a function that calls the real one (`typeof` then says `function` before loading, as it
 * would of the real exports, so the interop helpers that test for an object leave it unloaded).
 * `__esModule` is answered without loading when the real module's source marks itself so (as tsc's output does), so
 * TypeScript's and esbuild's interop helpers (`__importStar`, `__importDefault`, `__toESM`) treat the stand-in as
 * they would the real module without touching it; otherwise reading it loads the real module.
 */
export function lazyPackages(packages: readonly string[], used: Set<string> = new Set(), callable: readonly string[] = [], chunks?: LazyChunks): Plugin {
  const callablePaths = new Set<string>();
  const targetOf = new Map<string, string>();
  const filter = new RegExp(`^(${packages.map(escape).join('|')})$`);
  return {
    name: 'lazy-packages',
    setup(build) {
      // A package's module (`zod/v4/locales`) is also reached by relative requires inside the package: those are
      // matched on the file they resolve to (Node's resolution of the name from where the build resolves, which is
      // esbuild's for a CommonJS bundle on Node).
      const from = build.initialOptions.stdin?.resolveDir ?? build.initialOptions.absWorkingDir ?? ROOT;
      const modules = new Map<string, string>();
      for (const name of packages.filter((n) => n.split('/').length > (n.startsWith('@') ? 2 : 1))) {
        try {
          modules.set(require.resolve(name, { paths: [from] }), name);
        } catch {
          // Not installed: nothing requires it.
        }
      }
      const standIn = (name: string, realPath: string) => {
        // One stand-in per resolved file: importers that resolve the name to different versions get different ones.
        used.add(name);
        if (callable.includes(name)) callablePaths.add(realPath);
        if (chunks) {
          const file = chunks.files.get(realPath) ?? lazyFileName(name, realPath);
          chunks.files.set(realPath, file);
          targetOf.set(realPath, `${chunks.requirePrefix}${file}`);
        }
        return { path: realPath, namespace: LAZY_NAMESPACE };
      };
      build.onResolve({ filter }, async (args) => {
        // The stand-in's own require of the real package, and build.resolve below, resolve normally.
        if (args.pluginData === 'real' || args.namespace === LAZY_NAMESPACE) return undefined;
        const real = await build.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, pluginData: 'real' });
        if (real.errors.length > 0) return { errors: real.errors };
        return standIn(args.path, real.path);
      });
      if (modules.size > 0) {
        const basenames = [...new Set([...modules.keys()].map((file) => escape(basename(file))))];
        build.onResolve({ filter: new RegExp(`^\\.\\.?/(.*/)?(${basenames.join('|')})$`) }, async (args) => {
          if (args.pluginData === 'real' || args.namespace === LAZY_NAMESPACE) return undefined;
          const real = await build.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, pluginData: 'real' });
          const name = modules.get(real.path);
          // The module's own entry (a lazy file's entry point) and everything else resolve as usual.
          return name === undefined || args.kind === 'entry-point' ? undefined : standIn(name, real.path);
        });
      }
      build.onResolve({ filter: /.*/, namespace: LAZY_NAMESPACE }, async (args) => {
        if (chunks && [...targetOf.values()].includes(args.path)) return { path: args.path, external: true };
        const real = await build.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, pluginData: 'real' });
        return real.errors.length > 0 ? { errors: real.errors } : { path: real.path, external: real.external };
      });
      build.onLoad({ filter: /.*/, namespace: LAZY_NAMESPACE }, (args) => {
        const realPath = args.path;
        // tsc's and esbuild's CommonJS output mark ES modules so; read from the source, so nothing runs at build time.
        const esModule = /Object\.defineProperty\(\s*(?:module\.)?exports\s*,\s*["']__esModule["']|exports\.__esModule\s*=/.test(readFileSync(realPath, 'utf8'));
        return {
          resolveDir: dirname(realPath),
          loader: 'js',
          contents: [
            `let real;`,
            `const load = () => (real ??= require(${JSON.stringify(targetOf.get(realPath) ?? realPath)}));`,
            // An arrow function has no non-configurable own property, so the traps below keep the Proxy invariants.
            `module.exports = new Proxy(${callablePaths.has(realPath) ? '() => {}' : '{}'}, {`,
            `  apply: (_, self, args) => Reflect.apply(load(), self, args),`,
            `  get: (_, key) => (key === '__esModule' && real === undefined ? ${esModule ? 'true' : 'load().__esModule'} : load()[key]),`,
            `  has: (_, key) => key in load(),`,
            `  ownKeys: () => Reflect.ownKeys(load()),`,
            `  getOwnPropertyDescriptor: (_, key) => {`,
            `    const descriptor = Reflect.getOwnPropertyDescriptor(load(), key);`,
            `    return descriptor && { value: load()[key], writable: false, enumerable: descriptor.enumerable, configurable: true };`,
            `  },`,
            `});`,
          ].join('\n'),
        };
      });
    },
  };
}

/**
 * An esbuild plugin: the entry file of each of `packages` that is a barrel — `'use strict'`, `var a = require('./a.js');`
 * lines and `exports.x = a.y;` lines, nothing else (comments and blank lines aside) — becomes one getter per export,
 * each requiring its module on first read: requiring the package runs none of its modules, and reading an export runs
 * only the module that defines it (and what that one requires). Any other entry fails the build, naming the package,
 * so an upgrade that changes its shape is noticed rather than silently bundled whole. Every copy of a package in
 * node_modules is matched (by its entry's path below a `node_modules/<name>/` directory).
 */
export function lazyExports(packages: readonly string[]): Plugin {
  return {
    name: 'lazy-exports',
    setup(build) {
      if (packages.length === 0) return;
      const from = build.initialOptions.stdin?.resolveDir ?? build.initialOptions.absWorkingDir ?? ROOT;
      // The entry's path inside its package (`dist/index.cjs.js`), as Node resolves it for a `require`.
      const entries = new Map<string, string>();
      for (const name of packages) {
        let entry: string;
        try {
          entry = require.resolve(name, { paths: [from] });
        } catch {
          continue; // not installed: nothing requires it
        }
        const inPackage = entry.split(sep).join('/').split(`/node_modules/${name}/`).pop()!;
        entries.set(`node_modules/${name}/${inPackage}`, name);
      }
      if (entries.size === 0) return;
      const filter = new RegExp(`[\\\\/](${[...entries.keys()].map((e) => e.split('/').map(escape).join('[\\\\/]')).join('|')})$`);
      build.onLoad({ filter }, (args) => {
        const path = args.path.split(sep).join('/');
        const name = [...entries].find(([entry]) => path.endsWith(`/${entry}`))?.[1] ?? args.path;
        const source = readFileSync(args.path, 'utf8');
        const modules = new Map<string, string>();
        const getters: string[] = [];
        for (const [index, raw] of source.split(/\r?\n/).entries()) {
          const line = raw.trim();
          if (line === '' || line.startsWith('//') || /^['"]use strict['"];$/.test(line)) continue;
          const required = /^var (\w+) = require\(('[^']+'|"[^"]+")\);$/.exec(line);
          const reexport = /^exports\.(\w+) = (\w+)\.(\w+);$/.exec(line);
          if (required) modules.set(required[1]!, required[2]!);
          else if (reexport && modules.has(reexport[2]!)) {
            getters.push(`Object.defineProperty(exports, ${JSON.stringify(reexport[1])}, { enumerable: true, get: () => require(${modules.get(reexport[2]!)}).${reexport[3]} });`);
          } else {
            return { errors: [{ text: `${name}: its entry is not a barrel of re-exports (line ${index + 1}: ${line.slice(0, 80)}); take it out of BUNDLE_LAZY_EXPORTS` }] };
          }
        }
        return { loader: 'js', resolveDir: dirname(args.path), contents: ["'use strict';", ...getters].join('\n') };
      });
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { outfile: { type: 'string' }, 'no-sourcemap': { type: 'boolean', default: false } } });
  const compiled = compileIfStale();
  if (compiled.tscMs !== undefined) process.stdout.write(`dist/ was stale: compiled with tsc in ${compiled.tscMs} ms\n`);
  if (compiled.orphans.length > 0) process.stderr.write(`warning: compiled functions without a source are bundled too: ${compiled.orphans.join(', ')}\n`);
  const result = await bundleFunctions({ ...(values.outfile && { outfile: values.outfile }), sourcemap: !values['no-sourcemap'] });
  process.stdout.write(
    `${relative(process.cwd(), result.outfile)}: ${result.entries.length} function files, ${result.inputs} modules ` +
      `(${result.nodeModulesInputs} from node_modules), ${(result.bytes / 2 ** 20).toFixed(1)} MiB, in ${result.buildMs} ms\n` +
      `external (loaded from node_modules at run time): ${result.external.join(', ')}\n` +
      `loaded on first use, each from its own file under ${LAZY_DIR}/ (${(result.lazyBytes / 2 ** 20).toFixed(1)} MiB in ${result.lazyFiles.length} files): ${result.lazy.join(', ') || 'none'}\n`,
  );
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
