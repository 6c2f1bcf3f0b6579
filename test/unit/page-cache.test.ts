/**
 * bench/cold-start.ts evictFromPageCache: what `--cold-cache` relies on to measure a start that reads the package from
 * disk. Residency is read back with util-linux's `fincore` (mincore(2)). The files live next to node_modules — on
 * the disk the measured package is read from, not a tmpfs, whose pages cannot be evicted.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { evictFromPageCache } from '../../bench/cold-start';

const residentBytes = (file: string) => Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' }).trim());

let dir: string;
beforeAll(() => {
  const cache = join(__dirname, '..', '..', 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  dir = mkdtempSync(join(cache, 'page-cache-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('the files are no longer in memory afterwards, and read back unchanged', () => {
  const files = ['a file.js', 'b.js'].map((name) => join(dir, name));
  files.forEach((file, i) => writeFileSync(file, Buffer.alloc(4 << 20, i + 1)));
  execFileSync('sync');
  for (const file of files) {
    readFileSync(file);
    expect(residentBytes(file)).toBeGreaterThan(0);
  }
  evictFromPageCache(files);
  for (const file of files) expect(residentBytes(file)).toBe(0);
  expect(readFileSync(files[1]!).every((byte) => byte === 2)).toBe(true);
});

test('a file that cannot be evicted is an error, not a warm measurement called cold', () => {
  expect(() => evictFromPageCache([join(dir, 'missing.js')])).toThrow(/could not evict 1 files from the page cache/);
});
