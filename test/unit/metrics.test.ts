import { fanOutMetrics, InMemoryMetrics } from '../../shared/platform/metrics';
import { VERSION } from '../../shared/platform/version';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

test('counters and measurements by dimension', () => {
  const m = new InMemoryMetrics();
  m.increment('sync.entities', 1, { outcome: 'created' });
  m.increment('sync.entities', 2, { outcome: 'created' });
  m.increment('sync.entities', 1, { outcome: 'unchanged' });
  m.record('latency', 10);
  m.record('latency', 30, { path: 'x' });
  expect(m.counter('sync.entities', { outcome: 'created' })).toBe(3);
  expect(m.counter('sync.entities')).toBe(4);
  expect(m.counter('sync')).toBe(0);
  expect(m.summary('latency')).toEqual({ count: 2, sum: 40, min: 10, max: 30 });
});

test('clear forgets every counter and series, and what comes after is counted afresh', () => {
  const m = new InMemoryMetrics();
  m.increment('sync.entities', 2, { outcome: 'created' });
  m.record('latency', 30, { path: 'x' });
  m.clear();
  expect(m.snapshot()).toEqual({ counters: {}, measurements: {} });
  expect(m.series('latency')).toEqual([]);
  m.record('latency', 5, { path: 'y' });
  expect(m.series('latency')).toEqual([{ dimensions: { path: 'y' }, summary: { count: 1, sum: 5, min: 5, max: 5 } }]);
});

test('fan-out reaches every target', () => {
  const a = new InMemoryMetrics();
  const b = new InMemoryMetrics();
  fanOutMetrics(a, b).increment('x', 2);
  expect([a.counter('x'), b.counter('x')]).toEqual([2, 2]);
});

test('the reported version is the package version', () => {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  expect(VERSION).toBe(pkg.version);
});
