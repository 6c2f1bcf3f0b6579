/**
 * The charts of docs/performance.md are generated from bench/results/*.json (scripts/charts.ts): what is committed must
 * be what the results say, and a results file of a new shape must not break the generator. Vega and Vega-Lite are ES
 * modules only, so the generator runs in its own Node process, as `npm run charts` runs it.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');

function generate(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'charts.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
}

test('docs/charts holds exactly what npm run charts generates from bench/results', () => {
  const run = generate(['--check']);
  expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
});

test('each chart is an SVG of its figures, and docs/performance.md shows every one', () => {
  const files = readdirSync(join(ROOT, 'docs', 'charts')).filter((f) => f.endsWith('.svg')).sort();
  expect(files).toEqual(['detection-idle.svg', 'latency.svg', 'reconcile-rss.svg', 'reconcile-time.svg']);
  const performance = readFileSync(join(ROOT, 'docs', 'performance.md'), 'utf8');
  for (const file of files) {
    const svg = readFileSync(join(ROOT, 'docs', 'charts', file), 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(performance).toContain(`](charts/${file})`);
  }
  // The figures are in the drawing, not only in the data: the detection chart labels its bars with the counts.
  expect(readFileSync(join(ROOT, 'docs', 'charts', 'detection-idle.svg'), 'utf8')).toMatch(/>20000</);
});

test('a directory of results the generator does not know (an unrelated JSON file) changes nothing it draws', () => {
  const dir = mkdtempSync(join(tmpdir(), 'charts-'));
  try {
    cpSync(join(ROOT, 'bench', 'results'), dir, { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(dir, '9999-unrelated.json'));
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', '-e', `require(${JSON.stringify(join(ROOT, 'scripts', 'charts.ts'))}).renderCharts(${JSON.stringify(dir)}).then((c) => process.stdout.write(Object.keys(c).sort().join(',')))`],
      { cwd: ROOT, encoding: 'utf8', timeout: 120_000 },
    );
    expect({ status: run.status, out: run.stdout }).toEqual({ status: 0, out: 'detection-idle.svg,latency.svg,reconcile-rss.svg,reconcile-time.svg' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
