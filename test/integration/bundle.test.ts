/**
 * The single-file bundle (scripts/bundle.ts; `npm run build` writes it, `package.json` `main` points at it: it is
 * what is deployed) is the same app: loaded in a fresh Node process as the host would load it, it registers exactly
 * the functions, bindings, retry options and hooks that the compiled files (dist/functions/*.js) register, its
 * `appStart` hook accepts a production configuration, and it takes nothing of the app from dist/ and nothing but the
 * externals from node_modules — with Application Insights configured too: the distro is bundled, and the Azure SDKs'
 * spans still reach OpenTelemetry (why `@azure/core-tracing` stays external).
 *
 * No stand-ins: this runs esbuild (through the CLI, in its own process) and loads both layouts in child processes.
 * The bundle running end to end against the stand-ins is in telemetry.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join, sep } from 'node:path';
import { loadInFreshProcess, type ChildResult } from '../../bench/cold-start';
import { BUNDLE_EXTERNALS, BUNDLE_FILE, functionEntryFiles, packageMain, ROOT } from '../../scripts/bundle';

jest.setTimeout(180_000);

let outDir: string;
let unbundled: ChildResult;
let bundled: ChildResult;
let unbundledTelemetry: ChildResult;
let bundledTelemetry: ChildResult;

beforeAll(async () => {
  mkdirSync(join(ROOT, 'dist-bundle'), { recursive: true });
  outDir = mkdtempSync(join(ROOT, 'dist-bundle', 'test-'));
  // The CLI compiles dist/ first when it is stale.
  const cli = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'bundle.ts'), '--outfile', join(outDir, 'main.js')], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  if (cli.status !== 0) throw new Error(`scripts/bundle.ts failed (${cli.status}):\n${cli.stdout}${cli.stderr}`);
  const bundle = [join(outDir, 'main.js')];
  [unbundled, bundled, unbundledTelemetry, bundledTelemetry] = (
    await Promise.all([
      loadInFreshProcess(functionEntryFiles(), { inventory: true }),
      loadInFreshProcess(bundle, { inventory: true }),
      loadInFreshProcess(functionEntryFiles(), { inventory: true, telemetry: true }),
      loadInFreshProcess(bundle, { inventory: true, telemetry: true }),
    ])
  ).map((r) => r.result) as [ChildResult, ChildResult, ChildResult, ChildResult];
});

afterAll(() => {
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

const byName = (result: ChildResult) => [...result.functions].sort((x, y) => x.name.localeCompare(y.name));

test('both layouts load, and the unbundled app registers one function per file in functions/', () => {
  expect(unbundled.loadError).toBeNull();
  expect(bundled.loadError).toBeNull();
  const files = readdirSync(join(ROOT, 'functions'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.replace(/\.ts$/, ''))
    .sort();
  expect(byName(unbundled).map((f) => f.name)).toEqual(files);
});

test('the bundle registers the same functions, bindings, retry options and hooks', () => {
  expect(byName(bundled)).toEqual(byName(unbundled));
  expect([...bundled.hooks].sort()).toEqual([...unbundled.hooks].sort());
  expect(bundled.hooks).toContain('appStart');
  const syncEntity = bundled.functions.find((f) => f.name === 'syncEntity')!;
  // The Service Bus SDK binding (deferred binding) survives bundling.
  expect(syncEntity.bindings).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'serviceBusTrigger', sdkBinding: true })]));
});

test('the appStart hook accepts a production configuration in both layouts', () => {
  expect(unbundled.appStart).toEqual(['ok']);
  expect(bundled.appStart).toEqual(['ok']);
});

/** The packages a load took from node_modules. */
function nodeModulesPackages(result: ChildResult): string[] {
  const files = result.inventory!.files.map((f) => f.file);
  const packages = new Set(
    files
      .filter((f) => f.includes(`${sep}node_modules${sep}`))
      .map((f) => {
        const parts = f.split(sep);
        const at = parts.lastIndexOf('node_modules');
        return parts[at + 1]!.startsWith('@') ? `${parts[at + 1]}/${parts[at + 2]}` : parts[at + 1]!;
      }),
  );
  return [...packages].sort();
}

/** The externals that are npm packages (`@azure/functions-core` is the worker's). */
const externalPackages = Object.keys(BUNDLE_EXTERNALS)
  .filter((name) => name !== '@azure/functions-core')
  .sort();

test('package.json main is the bundle `npm run build` writes, and the Service Bus settlement contract is next to it', () => {
  expect(packageMain()).toBe(BUNDLE_FILE);
  expect(existsSync(join(outDir, 'proto', 'settlement.proto'))).toBe(true);
});

test('the bundle takes nothing of the app from dist/ and nothing but the externals from node_modules', () => {
  const files = bundled.inventory!.files.map((f) => f.file);
  expect(files).toContain(join(outDir, 'main.js'));
  expect(files.filter((f) => f.startsWith(join(ROOT, 'dist') + sep))).toEqual([]);
  expect(nodeModulesPackages(bundled)).toEqual(externalPackages);
  // …whereas the unbundled app takes the bundled packages from there.
  expect(nodeModulesPackages(unbundled)).toEqual(expect.arrayContaining(['@azure/functions', '@azure/cosmos', '@azure/functions-extensions-servicebus', 'zod', 'jose']));
});

test('the lazy packages are files of their own next to the bundle: none is read at start; those the app uses later load on their own', () => {
  const lazyFiles = readdirSync(join(outDir, 'lazy')).filter((f) => f.endsWith('.js'));
  const fileOf = (name: string) => lazyFiles.find((f) => f.startsWith(`${name}.`));
  for (const name of ['grpc_grpc-js', 'grpc_proto-loader', 'cross-fetch', 'opentelemetry_exporter-trace-otlp-http']) expect(fileOf(name)).toBeDefined();
  for (const result of [bundled, bundledTelemetry]) {
    expect(result.inventory!.files.filter((f) => f.file.startsWith(join(outDir, 'lazy') + sep))).toEqual([]);
  }
  // What the Service Bus extension (settlement over gRPC) and @backstage/catalog-client read from them.
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      `const [grpc, loader, fetch] = process.argv.slice(1).map((f) => require(f));
       process.stdout.write(JSON.stringify([typeof grpc.credentials.createInsecure, typeof grpc.Metadata, typeof loader.loadSync, typeof fetch, typeof fetch.default]));`,
      ...['grpc_grpc-js', 'grpc_proto-loader', 'cross-fetch'].map((name) => join(outDir, 'lazy', fileOf(name)!)),
    ],
    { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } },
  );
  expect(probe.stderr).toBe('');
  expect(JSON.parse(probe.stdout)).toEqual(['function', 'function', 'function', 'function', 'function']);
});

test('with Application Insights configured, the bundle starts its own copy of the distro and the Azure SDKs are still traced', () => {
  expect(bundledTelemetry.loadError).toBeNull();
  expect(byName(bundledTelemetry)).toEqual(byName(unbundled));
  expect([...bundledTelemetry.hooks].sort()).toEqual([...unbundledTelemetry.hooks].sort());
  // The distro's invocation hook (trace context from the host) is registered, as in the unbundled app.
  expect(bundledTelemetry.hooks).toContain('preInvocation');
  expect(bundled.hooks).not.toContain('preInvocation');
  expect(bundledTelemetry.appStart).toEqual(['ok']);
  expect(unbundledTelemetry.azureSdkTracing).toBe(true);
  expect(bundledTelemetry.azureSdkTracing).toBe(true);
  // …and the probe can tell: without telemetry, core-tracing keeps its no-op default.
  expect(bundled.azureSdkTracing).toBe(false);
  // The distro came from the bundle: still nothing but the externals from node_modules.
  expect(nodeModulesPackages(bundledTelemetry)).toEqual(externalPackages);
  expect(nodeModulesPackages(unbundledTelemetry)).toContain('applicationinsights');
});
