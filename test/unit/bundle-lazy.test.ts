/**
 * scripts/bundle.ts's lazily initialised packages: bundled, but a package's own code runs only when something first
 * reads from its exports — and what the bundled code then sees is the real module's exports, also through the interop
 * helpers TypeScript (`__importStar`, `__importDefault`) and esbuild put around `require`.
 *
 * Real esbuild builds of small fixture packages (in a scratch directory) run in a fresh VM context each. With lazy
 * files (what `npm run build` does), a lazy package is in a file of its own, read only when first used.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { build } from 'esbuild';
import { InvalidEntityError } from '../../shared/platform/errors';
import { validateAuthoredEntity } from '../../shared/authored/validate';
import { parseEntityRef } from '../../shared/model/refs';
import { BUNDLE_EXTERNALS, BUNDLE_LAZY, BUNDLE_LAZY_CALLABLE, BUNDLE_LAZY_EXPORTS, buildLazyFiles, compileIfStale, lazyExports, lazyPackages, ROOT, type LazyChunks } from '../../scripts/bundle';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bundle-lazy-'));
  const pkg = (name: string, source: string) => {
    mkdirSync(join(dir, 'node_modules', name), { recursive: true });
    writeFileSync(join(dir, 'node_modules', name, 'package.json'), JSON.stringify({ name, version: '1.0.0', main: 'index.js' }));
    writeFileSync(join(dir, 'node_modules', name, 'index.js'), source);
  };
  // As tsc compiles a module: `__esModule`, exports defined as getters.
  pkg(
    'lazy-esm-interop',
    `globalThis.loaded.push('lazy-esm-interop');
Object.defineProperty(exports, '__esModule', { value: true });
class Exporter { constructor(options) { this.options = options; } }
Object.defineProperty(exports, 'Exporter', { enumerable: true, get: () => Exporter });
exports.answer = 42;`,
  );
  // Plain CommonJS, no `__esModule`.
  pkg('lazy-plain', `globalThis.loaded.push('lazy-plain'); module.exports = { name: 'plain', nested: { value: 1 } };`);
  pkg('eager', `globalThis.loaded.push('eager'); module.exports = { name: 'eager' };`);
  pkg('shared-dep', `globalThis.loaded.push('shared-dep'); module.exports = { id: 'shared' };`);
  // A lazy package that requires another lazy package and a package the bundle holds too.
  pkg('lazy-outer', `globalThis.loaded.push('lazy-outer'); const plain = require('lazy-plain'); module.exports = { outer: true, shared: require('shared-dep').id, plainName: () => plain.name };`);
  // A function export with properties, as cross-fetch's.
  pkg(
    'lazy-callable',
    `globalThis.loaded.push('lazy-callable');
const fetch = function (url) { return 'fetched ' + url + (this && this.suffix ? this.suffix : ''); };
fetch.ponyfill = true;
module.exports = exports = fetch;
exports.default = fetch;`,
  );
  // A package whose entry requires one of its own modules by a relative path (as zod requires its locales).
  pkg(
    'with-locales',
    `globalThis.loaded.push('with-locales');
Object.defineProperty(exports, '__esModule', { value: true });
exports.locales = require('./locales/index.js');
exports.english = require('./locales/en.js').message;`,
  );
  mkdirSync(join(dir, 'node_modules', 'with-locales', 'locales'));
  writeFileSync(
    join(dir, 'node_modules', 'with-locales', 'locales', 'index.js'),
    `globalThis.loaded.push('with-locales/locales'); Object.defineProperty(exports, '__esModule', { value: true }); exports.en = require('./en.js').message; exports.fr = 'bonjour';`,
  );
  writeFileSync(join(dir, 'node_modules', 'with-locales', 'locales', 'en.js'), `globalThis.loaded.push('with-locales/locales/en'); exports.message = 'hello';`);
  // Barrels as the Backstage CLI builds a package's CommonJS entry; and an entry that does more than re-export.
  const barrel = (name: string, index: string, modules: Record<string, string>) => {
    mkdirSync(join(dir, 'node_modules', name, 'dist', 'kinds'), { recursive: true });
    writeFileSync(join(dir, 'node_modules', name, 'package.json'), JSON.stringify({ name, version: '1.0.0', main: './dist/index.cjs.js' }));
    writeFileSync(join(dir, 'node_modules', name, 'dist', 'index.cjs.js'), index);
    for (const [file, source] of Object.entries(modules)) writeFileSync(join(dir, 'node_modules', name, 'dist', file), source);
  };
  barrel(
    'barrel',
    `'use strict';

var ref = require('./ref.cjs.js');
var Api = require("./kinds/Api.cjs.js");



exports.parseRef = ref.parseRef;
exports.DEFAULT_NAMESPACE = ref.DEFAULT_NAMESPACE;
exports.apiValidator = Api.validator;
//# sourceMappingURL=index.cjs.js.map
`,
    {
      'ref.cjs.js': `'use strict'; globalThis.loaded.push('barrel/ref'); exports.parseRef = (r) => r.split(':'); exports.DEFAULT_NAMESPACE = 'default';`,
      'kinds/Api.cjs.js': `'use strict'; globalThis.loaded.push('barrel/kinds/Api'); require('eager'); exports.validator = { check: (e) => e.kind === 'API' };`,
    },
  );
  barrel('not-a-barrel', `'use strict';\nvar ref = require('./ref.cjs.js');\nref.setUp();\nexports.parseRef = ref.parseRef;\n`, { 'ref.cjs.js': `exports.setUp = () => {}; exports.parseRef = () => [];` });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Bundles `entry` with the two fixture packages lazy, runs it, and returns its exports and what loaded when. */
async function run(entry: string): Promise<{ loaded: string[]; exports: Record<string, (...args: unknown[]) => unknown>; lazy: Set<string> }> {
  const lazy = new Set<string>();
  const result = await build({
    stdin: { contents: entry, resolveDir: dir, loader: 'js' },
    bundle: true,
    write: false,
    platform: 'node',
    format: 'cjs',
    logLevel: 'silent',
    plugins: [lazyPackages(['lazy-esm-interop', 'lazy-plain', 'lazy-callable'], lazy, ['lazy-callable'])],
  });
  const loaded: string[] = [];
  const module = { exports: {} as Record<string, (...args: unknown[]) => unknown> };
  runInNewContext(result.outputFiles[0]!.text, { module, exports: module.exports, globalThis: { loaded }, require }, { filename: 'bundle.js' });
  return { loaded, exports: module.exports, lazy };
}

test('a lazy package runs only when its exports are first read; an ordinary one when required', async () => {
  const { loaded, exports, lazy } = await run(`
    const interop = require('lazy-esm-interop');
    const plain = require('lazy-plain');
    require('eager');
    module.exports.answer = () => interop.answer;
    module.exports.make = (options) => new interop.Exporter(options);
    module.exports.plainName = () => plain.name;
  `);
  expect(lazy).toEqual(new Set(['lazy-esm-interop', 'lazy-plain']));
  expect(loaded).toEqual(['eager']);
  expect(exports.answer!()).toBe(42);
  expect(loaded).toEqual(['eager', 'lazy-esm-interop']);
  // The real class, constructed as usual.
  const made = exports.make!({ a: 1 }) as { options: unknown; constructor: { name: string } };
  expect(made.options).toEqual({ a: 1 });
  expect(made.constructor.name).toBe('Exporter');
  expect(loaded).toEqual(['eager', 'lazy-esm-interop']);
  expect(exports.plainName!()).toBe('plain');
  expect(loaded).toEqual(['eager', 'lazy-esm-interop', 'lazy-plain']);
});

test("TypeScript's __importStar leaves a package marked `__esModule` lazy; key listing and __importDefault see the real exports", async () => {
  const { loaded, exports } = await run(`
    var __importStar = function (mod) {
      if (mod && mod.__esModule) return mod;
      var result = {};
      if (mod != null) for (var k of Object.getOwnPropertyNames(mod)) if (k !== 'default') result[k] = mod[k];
      result.default = mod;
      return result;
    };
    var __importDefault = function (mod) { return mod && mod.__esModule ? mod : { default: mod }; };
    const star = __importStar(require('lazy-esm-interop'));
    const loadedAfterStar = [...globalThis.loaded];
    const plainDefault = __importDefault(require('lazy-plain'));
    module.exports.loadedAfterStar = () => loadedAfterStar;
    module.exports.keys = () => Object.keys(star).sort();
    module.exports.hasAnswer = () => 'answer' in star;
    module.exports.plainDefault = () => plainDefault.default.nested.value;
    module.exports.spread = () => ({ ...require('lazy-plain') });
  `);
  expect(exports.loadedAfterStar!()).toEqual([]);
  // A package its source does not mark as an ES module is loaded by the helper's `__esModule` read: only the real
  // module can tell.
  expect(loaded).toEqual(['lazy-plain']);
  expect(exports.keys!()).toEqual(['Exporter', 'answer']);
  expect(exports.hasAnswer!()).toBe(true);
  expect(exports.plainDefault!()).toBe(1);
  expect(exports.spread!()).toEqual({ name: 'plain', nested: { value: 1 } });
  expect(loaded).toEqual(['lazy-plain', 'lazy-esm-interop']);
});

test('esbuild interop (import from a lazy package in ES module syntax) sees the real exports', async () => {
  const { loaded, exports } = await run(`
    import { answer } from 'lazy-esm-interop';
    import plain from 'lazy-plain';
    export const read = () => [answer, plain.name];
  `);
  expect(exports.read!()).toEqual([42, 'plain']);
  expect(loaded.sort()).toEqual(['lazy-esm-interop', 'lazy-plain']);
});

test("a package's module listed by its path is lazy also where the package requires it by a relative path", async () => {
  const lazy = new Set<string>();
  const result = await build({
    stdin: { contents: `const pkg = require('with-locales'); module.exports.english = () => pkg.english; module.exports.french = () => pkg.locales.fr;`, resolveDir: dir, loader: 'js' },
    bundle: true,
    write: false,
    platform: 'node',
    format: 'cjs',
    logLevel: 'silent',
    plugins: [lazyPackages(['with-locales/locales'], lazy)],
  });
  const loaded: string[] = [];
  const module = { exports: {} as Record<string, () => unknown> };
  runInNewContext(result.outputFiles[0]!.text, { module, exports: module.exports, globalThis: { loaded }, require }, { filename: 'bundle.js' });
  expect(lazy).toEqual(new Set(['with-locales/locales']));
  // The package and the module it requires directly loaded; the listed module did not.
  expect(loaded).toEqual(['with-locales', 'with-locales/locales/en']);
  expect(module.exports.english!()).toBe('hello');
  expect(module.exports.french!()).toBe('bonjour');
  expect(loaded).toEqual(['with-locales', 'with-locales/locales/en', 'with-locales/locales']);
});

test('no package is both external and lazy, and every entry says why', () => {
  for (const name of Object.keys(BUNDLE_LAZY)) expect(Object.keys(BUNDLE_EXTERNALS)).not.toContain(name);
  for (const reason of [...Object.values(BUNDLE_LAZY), ...Object.values(BUNDLE_EXTERNALS), ...Object.values(BUNDLE_LAZY_EXPORTS)]) expect(reason.length).toBeGreaterThan(10);
  // The bundle script reads the Service Bus extension's contract from its package; it must exist to be copied.
  const proto = join(require.resolve('@azure/functions-extensions-servicebus').replace(/[/\\][^/\\]+$/, ''), 'proto', 'settlement.proto');
  expect(readFileSync(proto, 'utf8')).toContain('service Settlement');
});

test('a callable stand-in: the interop helper Backstage packages use leaves it unloaded; calling it calls the real function', async () => {
  const { loaded, exports } = await run(`
    // As @backstage/catalog-client's CommonJS build wraps cross-fetch.
    function _interopDefaultCompat(e) { return e && typeof e === 'object' && 'default' in e ? e : { default: e }; }
    const fetch = require('lazy-callable');
    const fetchDefault = _interopDefaultCompat(fetch);
    module.exports.type = () => typeof fetch;
    module.exports.call = (url) => fetchDefault.default(url);
    module.exports.callWithThis = (url) => fetch.call({ suffix: '!' }, url);
    module.exports.ponyfill = () => fetch.ponyfill;
  `);
  expect(loaded).toEqual([]);
  expect(exports.type!()).toBe('function');
  expect(loaded).toEqual([]);
  expect(exports.call!('a')).toBe('fetched a');
  expect(loaded).toEqual(['lazy-callable']);
  expect(exports.callWithThis!('b')).toBe('fetched b!');
  expect(exports.ponyfill!()).toBe(true);
});

test('lazy files: each lazy package in its own file, read on first use; a lazy package inside another is a stand-in too', async () => {
  const out = join(dir, 'out-files');
  const chunks: LazyChunks = { requirePrefix: './lazy/', files: new Map() };
  const used = new Set<string>();
  const packages = ['lazy-outer', 'lazy-plain', 'lazy-esm-interop'];
  const esbuildOptions = { bundle: true, platform: 'node', format: 'cjs', logLevel: 'silent', metafile: true } as const;
  const main = await build({
    ...esbuildOptions,
    stdin: {
      contents: `require('shared-dep'); require('eager'); const outer = require('lazy-outer'); const interop = require('lazy-esm-interop');
        module.exports = { outerShared: () => outer.shared, outerPlain: () => outer.plainName(), answer: () => interop.answer };`,
      resolveDir: dir,
      loader: 'js',
    },
    outfile: join(out, 'main.js'),
    plugins: [lazyPackages(packages, used, [], chunks)],
  });
  const { files, sharedWithMain } = await buildLazyFiles({ chunks, packages, used, callable: [], lazyDir: join(out, 'lazy'), esbuildOptions, mainInputs: Object.keys(main.metafile.inputs) });
  // Three files: lazy-plain's was found inside lazy-outer's, not in main.js.
  expect(files.map((file) => file.slice(out.length + 1).replace(/\.[0-9a-f]{8}\.js$/, ''))).toEqual(['lazy/lazy-esm-interop', 'lazy/lazy-outer', 'lazy/lazy-plain']);
  expect(readdirSync(join(out, 'lazy')).filter((f) => f.endsWith('.js'))).toHaveLength(3);
  expect(readFileSync(join(out, 'main.js'), 'utf8')).not.toMatch(/lazy-outer'\)|outer: true|name: "plain"/);
  // shared-dep is in main.js and in lazy-outer's file: a second copy, reported.
  expect(Object.entries(sharedWithMain).filter(([, shared]) => shared.length > 0).map(([file, shared]) => [file.replace(/\.[0-9a-f]{8}\.js$/, ''), shared])).toEqual([['lazy/lazy-outer', [expect.stringMatching(/(^|\/)node_modules\/shared-dep\/index\.js$/)]]]);

  const loaded: string[] = [];
  const read: string[] = [];
  const realRequire = createRequire(join(out, 'main.js'));
  const tracingRequire = Object.assign((id: string) => {
    if (id.startsWith('.')) read.push(id.replace(/\.[0-9a-f]{8}\.js$/, ''));
    return realRequire(id);
  }, realRequire);
  (globalThis as { loaded?: string[] }).loaded = loaded;
  try {
    const module = { exports: {} as Record<string, () => unknown> };
    // The lazy files are required from main.js with Node's own require, relative to it.
    runInNewContext(readFileSync(join(out, 'main.js'), 'utf8'), { module, exports: module.exports, require: tracingRequire, globalThis: { loaded } }, { filename: join(out, 'main.js') });
    expect(loaded).toEqual(['shared-dep', 'eager']);
    expect(read).toEqual([]);
    expect(module.exports.answer!()).toBe(42);
    expect(read).toEqual(['./lazy/lazy-esm-interop']);
    expect(module.exports.outerShared!()).toBe('shared');
    expect(read).toEqual(['./lazy/lazy-esm-interop', './lazy/lazy-outer']);
    expect(loaded).toEqual(['shared-dep', 'eager', 'lazy-esm-interop', 'lazy-outer', 'shared-dep']);
    // lazy-plain's file is read only when lazy-outer first uses it.
    expect(module.exports.outerPlain!()).toBe('plain');
    expect(loaded.at(-1)).toBe('lazy-plain');
  } finally {
    delete (globalThis as { loaded?: string[] }).loaded;
  }
  expect(existsSync(join(out, 'lazy'))).toBe(true);
});

test('lazy exports: requiring a barrel runs none of its modules; reading an export runs only the module that defines it', async () => {
  const result = await build({
    stdin: {
      // As tsc compiles a named import (a property read at each use) and as esbuild imports an ES module's (__toESM).
      contents: `const barrel = require('barrel');
        import * as star from 'barrel';
        module.exports = { keys: () => Object.keys(barrel), ref: (r) => barrel.parseRef(r), ns: () => star.DEFAULT_NAMESPACE, check: (e) => barrel.apiValidator.check(e) };`,
      resolveDir: dir,
      loader: 'js',
    },
    bundle: true,
    write: false,
    platform: 'node',
    format: 'cjs',
    logLevel: 'silent',
    plugins: [lazyExports(['barrel'])],
  });
  const loaded: string[] = [];
  const module = { exports: {} as Record<string, (...args: unknown[]) => unknown> };
  runInNewContext(result.outputFiles[0]!.text, { module, exports: module.exports, globalThis: { loaded }, require }, { filename: 'bundle.js' });
  expect(loaded).toEqual([]);
  expect(module.exports.keys!()).toEqual(['parseRef', 'DEFAULT_NAMESPACE', 'apiValidator']);
  expect(loaded).toEqual([]);
  expect(module.exports.ref!('component:a')).toEqual(['component', 'a']);
  expect(module.exports.ns!()).toBe('default');
  expect(loaded).toEqual(['barrel/ref']);
  expect(module.exports.check!({ kind: 'API' })).toBe(true);
  expect(loaded).toEqual(['barrel/ref', 'barrel/kinds/Api', 'eager']);
});

test('lazy exports: an entry that does more than re-export fails the build, naming the package', async () => {
  await expect(
    build({ stdin: { contents: `require('not-a-barrel');`, resolveDir: dir, loader: 'js' }, bundle: true, write: false, platform: 'node', format: 'cjs', logLevel: 'silent', plugins: [lazyExports(['not-a-barrel'])] }),
  ).rejects.toThrow(/not-a-barrel: its entry is not a barrel of re-exports \(line 3: ref\.setUp\(\);\); take it out of BUNDLE_LAZY_EXPORTS/);
});

test('every package of BUNDLE_LAZY_EXPORTS, as installed, is a barrel the plugin takes: every export a getter', async () => {
  const entry = Object.keys(BUNDLE_LAZY_EXPORTS).map((name) => `require(${JSON.stringify(name)});`).join('\n');
  const result = await build({ stdin: { contents: entry, resolveDir: ROOT, loader: 'js' }, bundle: true, write: false, platform: 'node', format: 'cjs', logLevel: 'silent', plugins: [lazyExports(Object.keys(BUNDLE_LAZY_EXPORTS))], metafile: true });
  for (const name of Object.keys(BUNDLE_LAZY_EXPORTS)) {
    const index = readFileSync(require.resolve(name), 'utf8');
    // Each export of the real entry is a getter in the bundle.
    const exported = [...index.matchAll(/^exports\.(\w+) = /gm)].map((m) => m[1]);
    expect(exported.length).toBeGreaterThan(0);
    for (const key of exported) expect(result.outputFiles[0]!.text).toMatch(new RegExp(`Object\\.defineProperty\\(exports\\d*, "${key}", \\{ enumerable: true, get: \\(\\) =>`));
  }
});

test('the app bundled as `npm run build` bundles it: the catalog model builds its kinds and ajv loads at the first authored entity validated, not at start or at the first ref parsed, with the same outcomes', async () => {
  const out = join(dir, 'out-app');
  const chunks: LazyChunks = { requirePrefix: './lazy/', files: new Map() };
  const used = new Set<string>();
  const packages = Object.keys(BUNDLE_LAZY);
  const esbuildOptions = { bundle: true, platform: 'node', format: 'cjs', logLevel: 'silent', metafile: true } as const;
  // From tsc's CommonJS output, as the bundle is built: every package resolves to its `require` build.
  compileIfStale();
  const main = await build({
    ...esbuildOptions,
    stdin: {
      contents: ['authored/validate', 'model/refs', 'platform/errors'].map((file) => `Object.assign(module.exports, require('./dist/shared/${file}.js'));`).join('\n'),
      resolveDir: ROOT,
      loader: 'js',
    },
    outfile: join(out, 'main.js'),
    plugins: [lazyPackages(packages, used, BUNDLE_LAZY_CALLABLE, chunks), lazyExports(Object.keys(BUNDLE_LAZY_EXPORTS))],
  });
  await buildLazyFiles({ chunks, packages, used, callable: BUNDLE_LAZY_CALLABLE, lazyDir: join(out, 'lazy'), esbuildOptions, mainInputs: Object.keys(main.metafile.inputs) });
  const policy = { kinds: ['Component'], namespaces: [], maxBytes: 65536 };
  const name = { kind: 'component', namespace: 'default', name: 'provisioned-service' };
  const valid = { apiVersion: 'backstage.io/v1alpha1', kind: 'Component', metadata: { name: 'provisioned-service' }, spec: { type: 'service', lifecycle: 'experimental', owner: 'group:default/platform' } };
  const invalid = [{ ...valid, spec: { type: 'service' } }, { ...valid, metadata: { name: 'provisioned-service', labels: { 'a b': 'c' } } }];
  // In a fresh process: which lazy files are read when, and what the bundled validation answers.
  const child = spawnSync(
    process.execPath,
    [
      '-e',
      `const Module = require('node:module');
       const read = [];
       const load = Module._load;
       Module._load = function (request, ...rest) {
         if (request.startsWith('./lazy/')) read.push(request.slice('./lazy/'.length).replace(/\\.[0-9a-f]{8}\\.js$/, ''));
         return load.call(this, request, ...rest);
       };
       const app = require(process.argv[1]);
       const [policy, name, valid, invalid] = JSON.parse(process.argv[2]);
       const problems = (body) => app.validateAuthoredEntity(body, name, policy).then(() => null, (e) => (e instanceof app.InvalidEntityError ? e.problems : String(e)));
       (async () => {
         const atStart = [...read];
         const ref = app.parseEntityRef('component:default/provisioned-service');
         const afterRef = [...read];
         const accepted = await app.validateAuthoredEntity(valid, name, policy);
         const refused = [];
         for (const body of invalid) refused.push(await problems(body));
         process.stdout.write(JSON.stringify({ atStart, ref, afterRef, accepted, refused, read }));
       })();`,
      join(out, 'main.js'),
      JSON.stringify([policy, name, valid, invalid]),
    ],
    { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } },
  );
  expect(child.stderr).toBe('');
  const bundled = JSON.parse(child.stdout) as { atStart: string[]; ref: unknown; afterRef: string[]; accepted: unknown; refused: unknown[]; read: string[] };
  expect(bundled.atStart).toEqual([]);
  // Parsing a ref runs the catalog model's name validators, which require lodash for a check refs never reach: no file read.
  expect(bundled.ref).toEqual(parseEntityRef('component:default/provisioned-service'));
  expect(bundled.afterRef).toEqual([]);
  expect(bundled.read).toEqual(expect.arrayContaining(['ajv']));
  // The same answers as the unbundled validation.
  expect(bundled.accepted).toEqual(await validateAuthoredEntity(valid, name, policy));
  const unbundledProblems = await Promise.all(invalid.map((body) => validateAuthoredEntity(body, name, policy).then(() => null, (e: unknown) => (e instanceof InvalidEntityError ? e.problems : String(e)))));
  expect(unbundledProblems.every((p) => Array.isArray(p) && p.length > 0)).toBe(true);
  expect(bundled.refused).toEqual(unbundledProblems);
});
