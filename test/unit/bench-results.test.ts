/** bench/harness.ts writeResults: committed results are never replaced by a later run of the same kind and date. */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeResults } from '../../bench/harness';

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'bench-results-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('a second run of a kind on the same date gets its own file; a run that writes again keeps its file', () => {
  const first = writeResults(dir, '2026-12-02T10:00:00.000Z', 'scale', { run: 1 });
  const second = writeResults(dir, '2026-12-02T18:00:00.000Z', 'scale', { run: 2, sizes: 1 });
  // The second run writes again after its next step: the same file, not a third.
  expect(writeResults(dir, '2026-12-02T18:00:00.000Z', 'scale', { run: 2, sizes: 2 }, second)).toBe(second);
  const other = writeResults(dir, '2026-12-03T09:00:00.000Z', 'scale', { run: 3 });
  expect([first, second, other]).toEqual(['2026-12-02-scale.json', '2026-12-02-scale-2.json', '2026-12-03-scale.json'].map((f) => join(dir, f)));
  expect(readdirSync(dir).sort()).toEqual(['2026-12-02-scale-2.json', '2026-12-02-scale.json', '2026-12-03-scale.json']);
  expect(JSON.parse(readFileSync(first, 'utf8'))).toEqual({ run: 1 });
  expect(JSON.parse(readFileSync(second, 'utf8'))).toEqual({ run: 2, sizes: 2 });
});
