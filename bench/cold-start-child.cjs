// One cold start, in a fresh Node process (started by bench/cold-start.ts with no flags, no NODE_OPTIONS, no tsx):
// requires the given function files in order, as the Functions worker does with the files `package.json` `main`
// matches, then runs the `appStart` hooks, as the worker does before the first invocation.
//
// `@azure/functions-core` exists only inside the worker; a stand-in records what `@azure/functions` registers (so
// the app registers its functions as in the host, rather than switching to "test mode") and what the hooks are.
//
// argv[2] is a JSON object: { out: result file, files: [absolute paths], inventory: boolean }.
// With `inventory` (run with --expose-internals), it also lists every module file loaded, ES modules included, and
// probes whether the Azure SDKs' tracing reaches OpenTelemetry.
'use strict';
const bootMs = performance.now();
const fs = require('node:fs');
const Module = require('node:module');
const path = require('node:path');

const config = JSON.parse(process.argv[2]);
const functions = [];
const hooks = [];
const core = {
  setProgrammingModel: () => undefined,
  getProgrammingModel: () => undefined,
  registerFunction(metadata) {
    // Binding names end in a random suffix (`httpTrigger1a2b3c`); keep the bindings, not their keys.
    const bindings = Object.values(metadata.bindings ?? {})
      .map((binding) => ({ ...binding, name: undefined }))
      .sort((a, b) => `${a.direction}${a.type}`.localeCompare(`${b.direction}${b.type}`));
    functions.push({ name: metadata.name, bindings: JSON.parse(JSON.stringify(bindings)), retryOptions: metadata.retryOptions ?? null });
    return { dispose: () => undefined };
  },
  registerHook(name, callback) {
    hooks.push({ name, callback });
    return { dispose: () => undefined };
  },
  log: () => undefined,
};
const sentinel = path.join(__dirname, '__azure_functions_core_stand_in__.js');
const moduleApi = Module;
const resolveFilename = moduleApi._resolveFilename;
moduleApi._resolveFilename = function (request, ...rest) {
  if (request === '@azure/functions-core') return sentinel;
  return resolveFilename.call(this, request, ...rest);
};
moduleApi._cache[sentinel] = { id: sentinel, filename: sentinel, loaded: true, exports: core };
const preloaded = new Set(Object.keys(require.cache));

// Silences what the app and its packages print while loading (e.g. the Service Bus extension's deferred-binding log).
const quiet = () => true;
const writes = { out: process.stdout.write, err: process.stderr.write };
process.stdout.write = quiet;
process.stderr.write = quiet;

let loadError = null;
const loadStart = performance.now();
try {
  for (const file of config.files) require(file);
} catch (error) {
  loadError = error instanceof Error ? error.stack ?? error.message : String(error);
}
const loadEnd = performance.now();

(async () => {
  const appStart = [];
  for (const hook of hooks.filter((h) => h.name === 'appStart')) {
    const context = { hookData: {}, appHookData: {}, functionAppDirectory: process.cwd() };
    try {
      await hook.callback(context);
      appStart.push(context.hookData.configurationError ? 'configuration error' : 'ok');
    } catch (error) {
      appStart.push(`threw: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const appStartEnd = performance.now();
  process.stdout.write = writes.out;
  process.stderr.write = writes.err;

  const cjs = Object.keys(require.cache).filter((id) => !preloaded.has(id) && id !== sentinel);
  const result = {
    bootMs,
    loadMs: loadEnd - loadStart,
    appStartMs: appStartEnd - loadEnd,
    cjsModules: cjs.length,
    functions,
    hooks: hooks.map((h) => h.name),
    appStart,
    loadError,
  };
  if (config.inventory) {
    // ES modules loaded by require(esm) (jose) are in the ESM loader's cache, not in require.cache.
    let esm = [];
    let esmCounted = false;
    try {
      const { getOrInitializeCascadedLoader } = require('internal/modules/esm/loader');
      for (const [url] of getOrInitializeCascadedLoader().loadCache) if (String(url).startsWith('file:')) esm.push(require('node:url').fileURLToPath(url));
      esmCounted = true;
    } catch {
      esm = [];
    }
    const files = [...new Set([...cjs, ...esm])].filter((f) => path.isAbsolute(f)).sort();
    result.inventory = { esmCounted, files: files.map((file) => ({ file, bytes: fileSize(file) })) };
    result.azureSdkTracing = azureSdkTracing();
  }
  fs.writeFileSync(config.out, JSON.stringify(result));
  process.exit(0);
})();

// Whether the Azure SDKs' tracing goes to OpenTelemetry: the Application Insights distro installs its instrumenter
// when `@azure/core-tracing` is required. Probed on the copy the app loaded from node_modules (null when it loaded
// none: requiring it here would install the instrumenter now and prove nothing).
function azureSdkTracing() {
  try {
    const id = require.resolve('@azure/core-tracing', { paths: [path.dirname(config.files[0])] });
    const coreTracing = require.cache[id]?.exports;
    if (!coreTracing) return null;
    const { span } = coreTracing.createTracingClient({ namespace: 'Microsoft.DocumentDB', packageName: '@azure/cosmos' }).startSpan('cold-start-probe');
    span.end();
    // The distro's spans wrap an OpenTelemetry span; core-tracing's default is a no-op object literal.
    return typeof span.unwrap === 'function';
  } catch {
    return null;
  }
}

function fileSize(file) {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}
