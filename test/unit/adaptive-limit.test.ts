import { AdaptiveLimit } from '../../shared/platform/adaptive-limit';

/** A task that finishes when the test says so, answering `throttled`. */
function gate() {
  const tasks: Array<{ finish: (throttled: boolean) => void }> = [];
  const start = () =>
    new Promise<boolean>((resolve) => {
      tasks.push({ finish: resolve });
    });
  return { tasks, start };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test('at most the limit in flight; the others start as running ones finish, in order', async () => {
  const limit = new AdaptiveLimit({ initial: 2, max: 2 });
  const { tasks, start } = gate();
  const started: number[] = [];
  const runs = [0, 1, 2, 3].map((i) =>
    limit.run(() => {
      started.push(i);
      return start();
    }, (throttled) => throttled),
  );
  await settle();
  expect(started).toEqual([0, 1]);
  expect(limit.running).toBe(2);
  tasks[0]!.finish(false);
  await settle();
  expect(started).toEqual([0, 1, 2]);
  tasks[1]!.finish(false);
  tasks[2]!.finish(false);
  await settle();
  expect(started).toEqual([0, 1, 2, 3]);
  tasks[3]!.finish(false);
  await expect(Promise.all(runs)).resolves.toEqual([false, false, false, false]);
  expect(limit.running).toBe(0);
});

test('a throttled answer halves the limit (not below 1); a window of unthrottled answers adds one, up to max', async () => {
  const limit = new AdaptiveLimit({ initial: 8, max: 10 });
  const answer = (throttled: boolean) => limit.run(async () => throttled, (t) => t);
  await answer(true);
  expect(limit.concurrency).toBe(4);
  await answer(true);
  await answer(true);
  await answer(true);
  expect(limit.concurrency).toBe(1);
  await answer(true);
  expect(limit.concurrency).toBe(1);
  // One unthrottled answer at 1 in flight is a window: 2; then two answers: 3; then three: 4.
  await answer(false);
  expect(limit.concurrency).toBe(2);
  await answer(false);
  expect(limit.concurrency).toBe(2);
  await answer(false);
  expect(limit.concurrency).toBe(3);
  for (let i = 0; i < 3; i += 1) await answer(false);
  expect(limit.concurrency).toBe(4);
  for (let i = 0; i < 100; i += 1) await answer(false);
  expect(limit.concurrency).toBe(10);
});

test('a lowered limit lets running tasks finish and starts no new one until fewer than the limit run', async () => {
  const limit = new AdaptiveLimit({ initial: 4, max: 4 });
  const { tasks, start } = gate();
  let started = 0;
  const runs = Array.from({ length: 6 }, () =>
    limit.run(() => {
      started += 1;
      return start();
    }, (throttled) => throttled),
  );
  await settle();
  expect(started).toBe(4);
  // Throttled: the limit drops to 2 while 3 still run, so nothing starts.
  tasks[0]!.finish(true);
  await settle();
  expect(limit.concurrency).toBe(2);
  expect(limit.running).toBe(3);
  expect(started).toBe(4);
  tasks[1]!.finish(false);
  await settle();
  expect(started).toBe(4);
  tasks[2]!.finish(false);
  await settle();
  // Two answers at a limit of 2 grew it to 3; one runs: two more start.
  expect(limit.concurrency).toBe(3);
  expect(started).toBe(6);
  for (const task of tasks.slice(3)) task.finish(false);
  await Promise.all(runs);
  expect(limit.running).toBe(0);
});

test('a task that throws releases its place and does not count as throttled', async () => {
  const limit = new AdaptiveLimit({ initial: 2, max: 4 });
  await expect(limit.run(() => Promise.reject(new Error('no answer')), () => true)).rejects.toThrow('no answer');
  expect(limit.running).toBe(0);
  expect(limit.concurrency).toBe(2);
});

test('options are checked', () => {
  expect(() => new AdaptiveLimit({ initial: 0, max: 4 })).toThrow(RangeError);
  expect(() => new AdaptiveLimit({ initial: 5, max: 4 })).toThrow(RangeError);
  expect(() => new AdaptiveLimit({ initial: 1, max: 1.5 })).toThrow(RangeError);
});
