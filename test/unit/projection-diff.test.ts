/** shared/sync/projection-diff.ts: the reconcile's diff, made while the catalog's projection and the mirror's index stream in. */
import type { CatalogProjectionItem } from '../../shared/sync/catalog-reader';
import type { MirrorIndexItem } from '../../shared/sync/entity-store';
import { ProjectionDiff } from '../../shared/sync/projection-diff';

const catalog = (name: string, etag = `e-${name}`, uid = `u-${name}`): CatalogProjectionItem => ({
  id: `component:default:${name}`,
  entityRef: `component:default/${name}`,
  uid,
  etag,
});
const mirror = (name: string, over: Partial<MirrorIndexItem> = {}): MirrorIndexItem => ({
  id: `component:default:${name}`,
  entityRef: `component:default/${name}`,
  kind: 'Component',
  namespace: 'default',
  name,
  uid: `u-${name}`,
  sourceEtag: `e-${name}`,
  deleted: false,
  _etag: `"m-${name}"`,
  ...over,
});
const ids = (items: ReadonlyArray<{ id: string }>) => items.map((i) => i.id.split(':')[2]).sort();

/** Feeds both sides in the given interleaving ('c' takes the next catalog item, 'm' the next mirror item). */
function feed(order: string, catalogItems: CatalogProjectionItem[], mirrorItems: MirrorIndexItem[]): ProjectionDiff {
  const diff = new ProjectionDiff();
  const c = [...catalogItems];
  const m = [...mirrorItems];
  for (const side of order) {
    if (side === 'c') diff.addCatalog(c.shift()!);
    else diff.addMirror(m.shift()!);
  }
  c.forEach((item) => diff.addCatalog(item));
  m.forEach((item) => diff.addMirror(item));
  return diff;
}

describe('the same outcome whichever stream is ahead', () => {
  // a: unchanged; b: etag changed; c: uid changed (re-created); d: tombstone in the mirror; e: new; f: gone from the catalog.
  const catalogItems = [catalog('a'), catalog('b', 'e-b2'), catalog('c', 'e-c', 'u-c2'), catalog('d'), catalog('e')];
  const mirrorItems = [mirror('f'), mirror('d', { deleted: true }), mirror('c'), mirror('b'), mirror('a')];
  test.each(['ccccc', 'mmmmm', 'cmcmcm', 'mcmcmc', 'ccmmcc'])('interleaving %s', (order) => {
    const diff = feed(order, catalogItems, mirrorItems);
    expect(diff.unchanged).toBe(1);
    expect(ids(diff.departing())).toEqual(['f']);
    expect(diff.catalogCount).toBe(5);
    expect(diff.liveMirrorCount).toBe(4);
    // What the writes are conditional on: the mirror's items of what is synced or tombstoned, never of what agreed.
    expect(ids([...diff.mirrored.values()])).toEqual(['b', 'c', 'd', 'f']);
    // Once the index is read whole, what differs is handed out.
    expect(ids(diff.completeMirror())).toEqual(['b', 'c', 'd', 'e']);
  });
});

test('an agreeing pair is dropped as soon as its second half arrives: a zero-change run holds only what is ahead', () => {
  const diff = new ProjectionDiff();
  const names = Array.from({ length: 1000 }, (_, i) => `n${i}`);
  let held = 0;
  names.forEach((name, i) => {
    diff.addCatalog(catalog(name));
    if (i >= 10) diff.addMirror(mirror(names[i - 10]!));
    held = Math.max(held, diff.catalogCount - diff.unchanged + diff.mirrored.size);
  });
  names.slice(-10).forEach((name) => diff.addMirror(mirror(name)));
  expect(held).toBe(10);
  expect(diff.unchanged).toBe(1000);
  expect(diff.completeMirror()).toEqual([]);
  expect(diff.mirrored.size).toBe(0);
  expect(diff.liveMirrorCount).toBe(1000);
});

test('a repeated catalog item: the same version changes nothing, a newer one is synced', () => {
  const diff = feed('cm', [catalog('a'), catalog('a'), catalog('b'), catalog('b', 'e-b2')], [mirror('a'), mirror('b')]);
  expect(diff.unchanged).toBe(1);
  const toSync = diff.completeMirror();
  expect(ids(toSync)).toEqual(['b']);
  expect(toSync[0]!.etag).toBe('e-b2');
  expect(diff.catalogCount).toBe(2);
  expect(diff.departing()).toEqual([]);
});

test('a changed catalog item followed by the current one agrees with the mirror', () => {
  const diff = feed('ccm', [catalog('a', 'e-old'), catalog('a')], [mirror('a')]);
  expect(diff.unchanged).toBe(1);
  expect(diff.completeMirror()).toEqual([]);
  expect(diff.catalogCount).toBe(1);
});

test('a repeated mirror item is counted once', () => {
  const diff = feed('mmc', [catalog('a')], [mirror('a'), mirror('a'), mirror('z'), mirror('z')]);
  expect(diff.unchanged).toBe(1);
  expect(diff.liveMirrorCount).toBe(2);
  expect(ids(diff.departing())).toEqual(['z']);
});

describe('completeMirror and takeToSync: what a run may sync while the catalog still streams in', () => {
  test('hands out each item to sync once, only what was added since, and never one that agreed since', () => {
    const diff = new ProjectionDiff();
    diff.addCatalog(catalog('a'));
    diff.addCatalog(catalog('b', 'e-b2'));
    diff.addMirror(mirror('a'));
    diff.addMirror(mirror('b'));
    // The index is read whole: 'a' agreed, 'b' changed.
    expect(ids(diff.completeMirror())).toEqual(['b']);
    expect(diff.takeToSync()).toEqual([]);
    diff.addCatalog(catalog('c'));
    diff.addCatalog(catalog('d'));
    expect(ids(diff.takeToSync())).toEqual(['c', 'd']);
    // Everything handed out is still what the run syncs, and none of it looks departed.
    expect(diff.catalogCount - diff.unchanged).toBe(3);
    expect(diff.departing()).toEqual([]);
    expect(diff.catalogCount).toBe(4);
  });

  test('a repeated item is not handed out again; a newer version of one is', () => {
    const diff = new ProjectionDiff();
    diff.addCatalog(catalog('a'));
    expect(ids(diff.completeMirror())).toEqual(['a']);
    diff.addCatalog(catalog('a'));
    expect(diff.takeToSync()).toEqual([]);
    diff.addCatalog(catalog('a', 'e-a2'));
    const again = diff.takeToSync();
    expect(again.map((item) => item.etag)).toEqual(['e-a2']);
    expect(diff.catalogCount).toBe(1);
  });

  test('an item replaced by a newer version before it was handed out is handed out once, as the newer one', () => {
    const diff = new ProjectionDiff();
    diff.completeMirror();
    diff.addCatalog(catalog('a'));
    diff.addCatalog(catalog('a', 'e-a2'));
    expect(diff.takeToSync().map((item) => item.etag)).toEqual(['e-a2']);
  });

  test('before the index is complete nothing is held for a hand-out: what agrees later is dropped whole', () => {
    const diff = new ProjectionDiff();
    expect(() => diff.takeToSync()).toThrow(/before completeMirror/);
    for (let i = 0; i < 100; i += 1) diff.addCatalog(catalog(`n${i}`));
    for (let i = 0; i < 100; i += 1) diff.addMirror(mirror(`n${i}`));
    expect(diff.completeMirror()).toEqual([]);
    expect(diff.takeToSync()).toEqual([]);
    expect(diff.unchanged).toBe(100);
  });
});
