/** shared/sync/sync-dispatch.ts: how a reconcile's entities to sync reach the groups that fetch and write them. */
import pLimit from 'p-limit';
import { SyncDispatch, type SyncDispatchOptions } from '../../shared/sync/sync-dispatch';

/** A dispatch whose groups wait until released, recording what ran and how. */
function dispatch(over: Partial<SyncDispatchOptions<number>> = {}) {
  const started: Array<{ group: number[]; bulk: boolean; release: () => void; fail: (error: unknown) => void }> = [];
  const written: number[] = [];
  const d = new SyncDispatch<number>({
    bulkMin: 10,
    run: (group, bulk) =>
      new Promise<void>((resolve, reject) => {
        started.push({ group, bulk, release: resolve, fail: reject });
      }),
    limit: (bulk) => pLimit(bulk ? 2 : 1),
    groupSize: (bulk) => (bulk ? 4 : 3),
    onWritten: (done) => written.push(done),
    ...over,
  });
  return { d, started, written };
}
const tick = () => new Promise((resolve) => setImmediate(resolve));
const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

test('a run below bulkMin starts nothing until finish, then writes everything in ordinary groups', async () => {
  const { d, started } = dispatch();
  d.offer(range(0, 5));
  await tick();
  expect(started).toEqual([]);
  expect(d.isBulk).toBe(false);
  const finished = d.finish(range(5, 2));
  await tick();
  expect(started.map((s) => s.group)).toEqual([[0, 1, 2]]);
  started[0]!.release();
  await tick();
  started[1]!.release();
  await tick();
  started[2]!.release();
  await expect(finished).resolves.toEqual({ entities: 7, bulk: false });
  expect(started.map((s) => s.group)).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
  expect(started.every((s) => !s.bulk)).toBe(true);
});

test('once bulkMin entities are handed over, every full bulk group starts at once, the rest at finish', async () => {
  const { d, started, written } = dispatch();
  d.offer(range(0, 6));
  await tick();
  expect(started).toEqual([]);
  d.offer(range(6, 5)); // 11 ≥ 10: a bulk run; two full groups of 4, 3 left pending
  await tick();
  expect(d.isBulk).toBe(true);
  expect(started.map((s) => s.group)).toEqual([range(0, 4), range(4, 4)]);
  expect(started.every((s) => s.bulk)).toBe(true);
  const finished = d.finish([11]);
  started[0]!.release();
  await tick();
  expect(started.map((s) => s.group)[2]).toEqual([8, 9, 10, 11]);
  started[1]!.release();
  started[2]!.release();
  await expect(finished).resolves.toEqual({ entities: 12, bulk: true });
  expect(written).toEqual([4, 8, 12]);
});

test('bulkMin 0: never a bulk run', async () => {
  const { d, started } = dispatch({ bulkMin: 0 });
  d.offer(range(0, 50));
  await tick();
  expect(started).toEqual([]);
  expect(d.isBulk).toBe(false);
});

test('whenRoom waits while more than one group waits for a place to run', async () => {
  const { d, started } = dispatch();
  d.offer(range(0, 16)); // bulk: four groups, two run, two wait
  await tick();
  expect(started).toHaveLength(2);
  let roomy = false;
  const room = d.whenRoom().then(() => (roomy = true));
  await tick();
  expect(roomy).toBe(false);
  started[0]!.release(); // the third group runs: one waits
  await room;
  expect(roomy).toBe(true);
  await expect(d.whenRoom()).resolves.toBeUndefined();
});

test('a group that fails stops the dispatch: nothing starts after it, and finish throws its error', async () => {
  const failures: unknown[] = [];
  const { d, started } = dispatch({ onFailure: (error) => failures.push(error) });
  d.offer(range(0, 16));
  await tick();
  const boom = new Error('boom');
  started[0]!.fail(boom);
  await tick();
  expect(failures).toEqual([boom]);
  started[1]!.release();
  await expect(d.finish(range(16, 4))).rejects.toBe(boom);
  // The two groups that waited never ran, nor did the rest.
  expect(started).toHaveLength(2);
});

test('stop lets running groups finish, starts no other, and answers the first failure', async () => {
  const { d, started } = dispatch();
  d.offer(range(0, 16));
  await tick();
  const waiting = d.whenRoom();
  const stopped = d.stop();
  await waiting; // a stopped dispatch leaves nobody waiting
  started[0]!.release();
  started[1]!.release();
  await expect(stopped).resolves.toBeUndefined();
  expect(started).toHaveLength(2);
});
