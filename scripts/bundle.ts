/**
 * `npm run build:bundle` — bundles the compiled function files (`package.json` `main`, i.e. `dist/functions/*.js`;
 * compiled first when stale) into one file, `dist-bundle/main.js` (+ `main.js.map`), with esbuild. Fewer files to
 * find, read and compile at cold start; see docs/deploy.md ("A single-file bundle") and bench/cold-start.ts.
 * `--outfile <path>` writes elsewhere (it must stay inside the repository, so the externals resolve from node_modules).
 *
 * The input is tsc's CommonJS output, not the TypeScript sources: every `require` then resolves with the `require`
 * condition, so the bundle holds exactly the CommonJS builds Node loads for the unbundled app (from the sources,
 * esbuild would pick the ESM builds of the Azure SDKs for `import`s and the CommonJS ones for `require`s — two copies
 * of `@azure/core-rest-pipeline`, `@azure/logger` and others). The entry requires the files in the order of the
 * `main` glob, as the host does.
 *
 * Not bundled ({@link BUNDLE_EXTERNALS}), and so still loaded from node_modules: what the host provides, and the
 * packages that break or change behaviour when bundled.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

export const ROOT = resolve(__dirname, '..');

/** Left to `require` at run time, with the reason for each. */
export const BUNDLE_EXTERNALS: Readonly<Record<string, string>> = {
  '@azure/functions-core': 'provided by the Functions worker at run time; not an npm package',
  applicationinsights:
    'loaded only when telemetry is configured; hooks `require` (require-in-the-middle) to instrument modules and reads files relative to its own directory',
  '@azure/core-tracing':
    'the Azure SDK instrumentation of applicationinsights installs its tracer when this module is required; inside a bundle that never happens and Cosmos DB / Service Bus calls stop being traced',
  '@opentelemetry/api': 'one copy shared with applicationinsights (its global registration is per copy and version)',
  '@opentelemetry/api-logs': 'one copy shared with applicationinsights',
  '@azure/functions-extensions-servicebus':
    'reads its gRPC settlement .proto relative to its own directory on the first settlement; that path cannot be exercised without the real host',
};

export interface BundleOptions {
  /** Default `dist-bundle/main.js` under the repository. */
  outfile?: string;
  /** Module names left external; default the keys of {@link BUNDLE_EXTERNALS}. `@azure/functions-core` is always added. */
  external?: readonly string[];
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
  bytes: number;
  /** Source files esbuild put in the bundle, and how many of them came from node_modules. */
  inputs: number;
  nodeModulesInputs: number;
  buildMs: number;
}

/**
 * The files the host loads: `package.json` `main` (a file or a `dir/*.js`-style pattern), sorted as the host's glob
 * returns them.
 */
export function functionEntryFiles(root: string = ROOT): string[] {
  const main = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { main?: string }).main;
  if (!main) throw new Error('package.json has no "main"');
  const pattern = basename(main);
  const dir = join(root, dirname(main));
  if (/[*?[\]{}]/.test(dirname(main))) throw new Error(`package.json "main" (${main}): only the file name part may be a pattern`);
  if (!/[*?]/.test(pattern)) return existsSync(join(dir, pattern)) ? [join(dir, pattern)] : [];
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => regex.test(f) && statSync(join(dir, f)).isFile())
    .sort()
    .map((f) => join(dir, f));
}

/**
 * Compiles dist/ with tsc (`tsconfig.build.json`) when a compiled file is missing or older than its source or the
 * tsconfig files; returns how long tsc took, or undefined when dist/ was up to date. Also returns compiled function
 * files whose source is gone: tsc never deletes outputs, and the host would load them too.
 */
export function compileIfStale(root: string = ROOT): { tscMs?: number; orphans: string[] } {
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
  const outfile = resolve(options.outfile ?? join(ROOT, 'dist-bundle', 'main.js'));
  const external = [...new Set(['@azure/functions-core', ...(options.external ?? Object.keys(BUNDLE_EXTERNALS))])];
  const fromSources = options.from === 'sources';
  const entries = fromSources
    ? readdirSync(join(ROOT, 'functions'))
        .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
        .sort()
        .map((f) => join(ROOT, 'functions', f))
    : functionEntryFiles(ROOT);
  if (entries.length === 0) throw new Error('no compiled function files (package.json "main"); run `npm run build` first');
  // Loaded here, not at the top: importing this module (e.g. for functionEntryFiles) needs no esbuild.
  const { build } = await import('esbuild');
  const started = performance.now();
  const result = await build({
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
    bytes: statSync(outfile).size,
    inputs: inputs.length,
    nodeModulesInputs: inputs.filter((i) => i.includes('node_modules/')).length,
    buildMs: Math.round(performance.now() - started),
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
      `external (loaded from node_modules at run time): ${result.external.join(', ')}\n`,
  );
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
