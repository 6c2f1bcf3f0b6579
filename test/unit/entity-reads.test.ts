import type { Entity } from '@backstage/catalog-model';
import { BackstageRequestError, BackstageUnavailableError, OperationAbortedError } from '../../shared/platform/errors';
import { InMemoryMetrics } from '../../shared/platform/metrics';
import { CoalescedEntityReads } from '../../shared/sync/entity-reads';

const entity = (name: string): Entity => ({ apiVersion: 'backstage.io/v1alpha1', kind: 'Component', metadata: { name, etag: `etag-${name}` } });

/**
 * A catalog whose answers the test releases: every request is recorded and waits until `release()` (or answers at
 * once with `immediate`), so what is in flight and what goes together is under the test's control.
 */
function fakeCatalog(options: { immediate?: boolean; known?: (ref: string) => boolean; rejectBatch?: boolean; refused?: string; failing?: Error } = {}) {
  const requests: Array<{ kind: 'by-refs' | 'by-name'; refs: string[] }> = [];
  const pending: Array<() => void> = [];
  const known = options.known ?? (() => true);
  const wait = () => (options.immediate ? Promise.resolve() : new Promise<void>((resolve) => pending.push(resolve)));
  const nameOf = (ref: string) => ref.split('/').at(-1)!;
  return {
    requests,
    inFlight: () => pending.length,
    release: () => pending.splice(0).forEach((resolve) => resolve()),
    catalog: {
      async getEntitiesByRefs(refs: readonly string[]) {
        requests.push({ kind: 'by-refs', refs: [...refs] });
        await wait();
        if (options.failing) throw options.failing;
        if (options.rejectBatch && options.refused && refs.includes(options.refused)) throw new BackstageRequestError('Backstage rejected POST /entities/by-refs with 400', 400);
        return refs.map((ref) => (known(ref) ? entity(nameOf(ref)) : undefined));
      },
      async getEntityByRef(ref: string) {
        requests.push({ kind: 'by-name', refs: [ref] });
        await wait();
        if (options.failing) throw options.failing;
        if (ref === options.refused) throw new BackstageRequestError(`Backstage rejected GET /entities/by-name/${ref} with 400`, 400);
        return known(ref) ? entity(nameOf(ref)) : undefined;
      },
    },
  };
}

const until = async (condition: () => boolean) => {
  for (let i = 0; i < 1_000 && !condition(); i += 1) await new Promise((r) => setImmediate(r));
  if (!condition()) throw new Error('condition never held');
};

test('a read alone is one by-name request, sent at once', async () => {
  const fake = fakeCatalog({ immediate: true });
  const reads = new CoalescedEntityReads(fake.catalog);
  await expect(reads.getEntityByRef('component:default/a')).resolves.toMatchObject({ metadata: { name: 'a' } });
  expect(fake.requests).toEqual([{ kind: 'by-name', refs: ['component:default/a'] }]);
});

test('reads asked for while the slots are busy go together as one by-refs request, each answered with its own entity', async () => {
  const fake = fakeCatalog({ known: (ref) => !ref.endsWith('/gone') });
  const reads = new CoalescedEntityReads(fake.catalog, { maxConcurrentReads: 1 });
  const first = reads.getEntityByRef('component:default/a');
  await until(() => fake.inFlight() === 1);
  const later = ['component:default/b', 'component:default/gone', 'component:default/c'].map((ref) => reads.getEntityByRef(ref));
  // The three wait for the slot: nothing else is sent while the first is in flight.
  for (let i = 0; i < 20; i += 1) await new Promise((r) => setImmediate(r));
  expect(fake.requests).toHaveLength(1);
  fake.release();
  await expect(first).resolves.toMatchObject({ metadata: { name: 'a' } });
  await until(() => fake.inFlight() === 1);
  fake.release();
  const [b, gone, c] = await Promise.all(later);
  expect([b?.metadata.name, gone, c?.metadata.name]).toEqual(['b', undefined, 'c']);
  expect(fake.requests).toEqual([
    { kind: 'by-name', refs: ['component:default/a'] },
    { kind: 'by-refs', refs: ['component:default/b', 'component:default/gone', 'component:default/c'] },
  ]);
});

test('at most maxConcurrentReads requests are in flight, and a batch holds at most maxBatchSize refs', async () => {
  const fake = fakeCatalog();
  const metrics = new InMemoryMetrics();
  const reads = new CoalescedEntityReads(fake.catalog, { maxConcurrentReads: 2, maxBatchSize: 3, metrics });
  const all = Array.from({ length: 10 }, (_, i) => reads.getEntityByRef(`component:default/e${i}`));
  let peak = 0;
  while (fake.requests.reduce((n, r) => n + r.refs.length, 0) < 10 || fake.inFlight() > 0) {
    await until(() => fake.inFlight() > 0);
    peak = Math.max(peak, fake.inFlight());
    fake.release();
    for (let i = 0; i < 5; i += 1) await new Promise((r) => setImmediate(r));
  }
  expect((await Promise.all(all)).map((e) => e?.metadata.name)).toEqual(Array.from({ length: 10 }, (_, i) => `e${i}`));
  expect(peak).toBeLessThanOrEqual(2);
  expect(fake.requests.every((r) => r.refs.length <= 3)).toBe(true);
  expect(fake.requests.length).toBe(4); // 3 + 3 + 3 + 1
  expect(metrics.summary('sync.read_batch_size')).toMatchObject({ count: 4, sum: 10 });
});

test('the same ref asked for twice is read for each asker, never answered from memory', async () => {
  const fake = fakeCatalog({ immediate: true });
  const reads = new CoalescedEntityReads(fake.catalog);
  await reads.getEntityByRef('component:default/a');
  await reads.getEntityByRef('component:default/a');
  expect(fake.requests).toHaveLength(2);
});

test('a ref Backstage refuses inside a batch fails only its own read: the batch is read again one by one', async () => {
  const fake = fakeCatalog({ immediate: true, rejectBatch: true, refused: 'component:default/bad' });
  const reads = new CoalescedEntityReads(fake.catalog, { maxConcurrentReads: 1 });
  const blocker = reads.getEntityByRef('component:default/first');
  const results = await Promise.allSettled(['component:default/ok', 'component:default/bad', 'component:default/fine'].map((ref) => reads.getEntityByRef(ref)));
  await blocker;
  expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(BackstageRequestError);
  expect(fake.requests.filter((r) => r.kind === 'by-refs')).toHaveLength(1);
  expect(fake.requests.filter((r) => r.kind === 'by-name').map((r) => r.refs[0])).toEqual(
    expect.arrayContaining(['component:default/ok', 'component:default/bad', 'component:default/fine']),
  );
});

test('a transient failure of a batch fails every read in it with that error (each message retries on its own)', async () => {
  const failure = new BackstageUnavailableError('Backstage POST /entities/by-refs still failing after 4 attempts (HTTP 503)', 503);
  const fake = fakeCatalog({ immediate: true, failing: failure });
  const reads = new CoalescedEntityReads(fake.catalog, { maxConcurrentReads: 1 });
  const results = await Promise.allSettled(['a', 'b', 'c'].map((n) => reads.getEntityByRef(`component:default/${n}`)));
  expect(results.map((r) => (r as PromiseRejectedResult).reason)).toEqual([failure, failure, failure]);
});

test("an aborted caller stops waiting at once; the batch goes on for the others", async () => {
  const fake = fakeCatalog();
  const reads = new CoalescedEntityReads(fake.catalog, { maxConcurrentReads: 1 });
  const controller = new AbortController();
  const blocker = reads.getEntityByRef('component:default/first');
  await until(() => fake.inFlight() === 1);
  const aborted = reads.getEntityByRef('component:default/a', { abortSignal: controller.signal });
  const other = reads.getEntityByRef('component:default/b');
  controller.abort();
  await expect(aborted).rejects.toBeInstanceOf(OperationAbortedError);
  fake.release();
  await blocker;
  await until(() => fake.inFlight() === 1);
  fake.release();
  await expect(other).resolves.toMatchObject({ metadata: { name: 'b' } });
  await expect(reads.getEntityByRef('component:default/c', { abortSignal: AbortSignal.abort() })).rejects.toBeInstanceOf(OperationAbortedError);
});
