/**
 * `npm run charts` — the figures of docs/performance.md as SVG charts, generated from the benchmark's results
 * (`bench/results/*.json`) with Vega-Lite, rendered headless by Vega (no browser, no canvas). Writes docs/charts/*.svg;
 * `--check` fails when a committed chart is not what the results say (the unit tests run the same comparison).
 *
 * - reconcile-time.svg, reconcile-rss.svg: wall time and peak RSS of the reconcile runs against the catalog's size, from
 *   the full or scale run with the most sizes (of those, the one reaching the largest catalog, then the latest);
 * - latency.svg: p50 / p95 / p99 of every latency the benchmark measures, each from the latest result that has it;
 * - detection-idle.svg: what the change-events module reads in an idle minute, with publication generations and with
 *   the full diff.
 */
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';

const ROOT = resolve(__dirname, '..');
export const RESULTS_DIR = join(ROOT, 'bench', 'results');
export const CHARTS_DIR = join(ROOT, 'docs', 'charts');

interface Summary {
  p50: number;
  p95: number;
  p99: number;
}
interface ReconcileRun {
  ms: number;
  peakRssMb: number;
}
interface BenchReport {
  kind: 'full' | 'quick';
  sizes: Array<{
    size: number;
    entities: number;
    reconcile: { initial: ReconcileRun; zeroChange: ReconcileRun[]; onePercent: ReconcileRun };
    incremental?: { latencyMs: { mirror: Summary; edges: Summary; mirrorToEdges?: Summary } };
  }>;
  authored?: { size?: number; latencyMs?: AuthoredLatency };
}
interface AuthoredLatency {
  backstage: Summary;
  mirror: Summary;
  backstageToMirror?: Summary;
  mirrorToEdges?: Summary;
}
/** `npm run bench -- --sizes …` above 20 000 (bench/scale.ts): the reconcile runs only. */
interface ScaleReport {
  kind: 'scale';
  scale: Array<{ entities: number; initial: ReconcileRun; zeroChange: ReconcileRun; onePercent: ReconcileRun }>;
}
interface DetectionResult {
  size: number;
  idlePerMinute: { generations: { rowsRead: number; catalogRequests: number }; diff: { entitiesRead: number; catalogRequests: number } };
  latencyMs: { stitchedToSent: Summary };
}

/** Every results file, oldest first: by the `startedAt` it records, else by the date its name starts with. */
function results(dir: string): Array<{ file: string; data: unknown }> {
  const when = (file: string, data: unknown) => {
    const startedAt = (data as { startedAt?: unknown } | null)?.startedAt;
    return typeof startedAt === 'string' ? startedAt : `${file.slice(0, 10)}T00:00:00.000Z`;
  };
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((file) => ({ file, data: JSON.parse(readFileSync(join(dir, file), 'utf8')) as unknown }))
    .sort((a, b) => when(a.file, a.data).localeCompare(when(b.file, b.data)) || a.file.localeCompare(b.file));
}

const isScale = (data: unknown): data is ScaleReport => typeof data === 'object' && data !== null && (data as ScaleReport).kind === 'scale' && Array.isArray((data as ScaleReport).scale);
const isReport = (data: unknown): data is BenchReport => typeof data === 'object' && data !== null && Array.isArray((data as BenchReport).sizes);
const isDetection = (data: unknown): data is DetectionResult => typeof data === 'object' && data !== null && 'idlePerMinute' in data;
const isAuthored = (data: unknown): data is Required<BenchReport>['authored'] & { size: number } =>
  typeof data === 'object' && data !== null && 'latencyMs' in data && 'perChange' in data;

const FONT = { font: 'Helvetica, Arial, sans-serif' };
/** Axis and legend labels are never cut short. */
const CONFIG = { axis: { labelLimit: 320 }, legend: { labelLimit: 320 } };
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;

/** The Vega-Lite specs of every chart, from the results in `dir`. */
export function chartSpecs(dir: string = RESULTS_DIR): Record<string, TopLevelSpec> {
  const all = results(dir);
  const specs: Record<string, TopLevelSpec> = {};
  const full = all.filter((r): r is { file: string; data: BenchReport } => isReport(r.data) && r.data.kind === 'full');
  // The reconcile by size: every full or scale run, oldest first, reduced to (entities, run, seconds, MB); the one
  // with the most sizes wins, then the one reaching the largest catalog, then the latest (the sort is stable).
  const sized = all.flatMap(({ file, data }) =>
    isScale(data)
      ? [{ file, sizes: data.scale }]
      : isReport(data) && data.kind === 'full'
        ? [{ file, sizes: data.sizes.map((s) => ({ entities: s.entities, initial: s.reconcile.initial, zeroChange: { ms: median(s.reconcile.zeroChange.map((z) => z.ms)), peakRssMb: Math.max(...s.reconcile.zeroChange.map((z) => z.peakRssMb)) }, onePercent: s.reconcile.onePercent })) }]
        : [],
  );
  const largest = (run: (typeof sized)[number]) => Math.max(...run.sizes.map((s) => s.entities));
  const bySizes = sized.sort((a, b) => a.sizes.length - b.sizes.length || largest(a) - largest(b)).at(-1);
  if (bySizes) {
    const rows = bySizes.sizes.flatMap((s) => [
      { entities: s.entities, run: 'initial load', seconds: s.initial.ms / 1000, mb: s.initial.peakRssMb },
      { entities: s.entities, run: 'zero-change reconcile', seconds: s.zeroChange.ms / 1000, mb: s.zeroChange.peakRssMb },
      { entities: s.entities, run: '1 % changed', seconds: s.onePercent.ms / 1000, mb: s.onePercent.peakRssMb },
    ]);
    const x = { field: 'entities', type: 'quantitative', title: 'entities in the catalog', scale: { type: 'log', nice: false }, axis: { format: '~s' } } as const;
    const color = { field: 'run', type: 'nominal', title: null, legend: { orient: 'top' } } as const;
    specs['reconcile-time'] = {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      config: CONFIG,
      title: { text: 'Reconcile wall time by catalog size', subtitle: `bench/results/${bySizes.file}`, ...FONT },
      width: 480,
      height: 260,
      data: { values: rows },
      mark: { type: 'line', point: true },
      encoding: { x, y: { field: 'seconds', type: 'quantitative', title: 'seconds' }, color },
    };
    specs['reconcile-rss'] = {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      config: CONFIG,
      title: { text: 'Peak RSS of the reconcile by catalog size', subtitle: `bench/results/${bySizes.file}; the line is the 512 MB budget`, ...FONT },
      width: 480,
      height: 260,
      layer: [
        { data: { values: rows }, mark: { type: 'line', point: true }, encoding: { x, y: { field: 'mb', type: 'quantitative', title: 'MB', scale: { domainMin: 0 } }, color } },
        { data: { values: [{ mb: 512 }] }, mark: { type: 'rule', strokeDash: [4, 4], color: '#c0392b' }, encoding: { y: { field: 'mb', type: 'quantitative' } } },
      ],
    };
  }

  // Each latency from the latest result that has it.
  const latency: Array<{ path: string; percentile: string; ms: number; source: string }> = [];
  const add = (path: string, summary: Summary, source: string) => {
    for (const p of ['p50', 'p95', 'p99'] as const) latency.push({ path, percentile: p, ms: Math.round(summary[p]), source });
  };
  const withIncremental = full.filter((r) => r.data.sizes.some((s) => s.incremental)).at(-1);
  if (withIncremental) {
    const largest = [...withIncremental.data.sizes].filter((s) => s.incremental).sort((a, b) => a.size - b.size).at(-1)!;
    add('event → mirror write', largest.incremental!.latencyMs.mirror, withIncremental.file);
    add('event → edges written', largest.incremental!.latencyMs.edges, withIncremental.file);
    const mirrorToEdges = largest.incremental!.latencyMs.mirrorToEdges;
    if (mirrorToEdges) add('mirror write → edges written', mirrorToEdges, withIncremental.file);
  }
  const authored = all
    .map((r) => ({ file: r.file, data: isAuthored(r.data) ? r.data : isReport(r.data) && r.data.authored?.latencyMs ? r.data.authored : undefined }))
    .filter((r) => r.data?.latencyMs)
    .at(-1);
  if (authored) {
    add('authored PUT → Backstage', authored.data!.latencyMs!.backstage, authored.file);
    add('authored PUT → mirror', authored.data!.latencyMs!.mirror, authored.file);
    const { backstageToMirror, mirrorToEdges } = authored.data!.latencyMs!;
    if (backstageToMirror) add('catalog change served → mirror', backstageToMirror, authored.file);
    if (mirrorToEdges) add('mirror → edges (authored run)', mirrorToEdges, authored.file);
  }
  const detection = all.filter((r): r is { file: string; data: DetectionResult } => isDetection(r.data)).at(-1);
  if (detection) add('catalog change stitched → event sent', detection.data.latencyMs.stitchedToSent, detection.file);
  if (latency.length > 0) {
    specs.latency = {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      config: CONFIG,
      title: { text: 'Latencies (ms)', subtitle: `from ${[...new Set(latency.map((l) => l.source))].join(', ')}`, ...FONT },
      width: 480,
      height: { step: 14 },
      data: { values: latency },
      mark: 'bar',
      encoding: {
        y: { field: 'path', type: 'nominal', title: null, sort: null },
        yOffset: { field: 'percentile', sort: ['p50', 'p95', 'p99'] },
        x: { field: 'ms', type: 'quantitative', title: 'milliseconds' },
        color: { field: 'percentile', type: 'nominal', sort: ['p50', 'p95', 'p99'], title: null, legend: { orient: 'top' } },
        tooltip: [{ field: 'ms' }],
      },
    };
  }
  if (detection) {
    const { generations, diff } = detection.data.idlePerMinute;
    specs['detection-idle'] = {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      config: CONFIG,
      title: { text: `Change detection: what an idle minute reads (${detection.data.size} entities)`, subtitle: `bench/results/${detection.file}`, ...FONT },
      width: 480,
      height: { step: 18 },
      data: {
        values: [
          { mode: 'publication generations', what: 'entities or rows read', count: generations.rowsRead },
          { mode: 'full diff every 30 s', what: 'entities or rows read', count: diff.entitiesRead },
          { mode: 'publication generations', what: 'catalog API requests', count: generations.catalogRequests },
          { mode: 'full diff every 30 s', what: 'catalog API requests', count: diff.catalogRequests },
        ],
      },
      facet: { row: { field: 'what', type: 'nominal', title: null, header: { labelAngle: 0, labelOrient: 'top', labelAnchor: 'start', labelFontWeight: 'bold' } } },
      spec: {
        layer: [
          { mark: 'bar', encoding: { y: { field: 'mode', type: 'nominal', title: null }, x: { field: 'count', type: 'quantitative', title: 'per minute' } } },
          { mark: { type: 'text', align: 'left', dx: 4 }, encoding: { y: { field: 'mode', type: 'nominal' }, x: { field: 'count', type: 'quantitative' }, text: { field: 'count' } } },
        ],
      },
      resolve: { scale: { x: 'independent' } },
    };
  }
  return specs;
}

/** Renders every chart to SVG text, by file name. */
export async function renderCharts(dir: string = RESULTS_DIR): Promise<Record<string, string>> {
  // Both are ES modules only.
  const vega = await import('vega');
  const vl = await import('vega-lite');
  const out: Record<string, string> = {};
  for (const [name, spec] of Object.entries(chartSpecs(dir))) {
    const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
    out[`${name}.svg`] = `${await view.toSVG()}\n`;
    view.finalize();
  }
  return out;
}

if (require.main === module) {
  void (async () => {
    const charts = await renderCharts();
    if (process.argv.includes('--check')) {
      const stale = Object.entries(charts).filter(([file, svg]) => {
        try {
          return readFileSync(join(CHARTS_DIR, file), 'utf8') !== svg;
        } catch {
          return true;
        }
      });
      if (stale.length > 0) {
        console.error(`docs/charts is stale (${stale.map(([f]) => f).join(', ')}): run npm run charts`);
        process.exit(1);
      }
      return;
    }
    mkdirSync(CHARTS_DIR, { recursive: true });
    for (const [file, svg] of Object.entries(charts)) writeFileSync(join(CHARTS_DIR, file), svg);
    console.log(`wrote ${Object.keys(charts).map((f) => `docs/charts/${f}`).join(', ')}`);
  })();
}
