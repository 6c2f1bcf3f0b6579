import { evaluateDeletionGuard } from '../../shared/sync/guard';

const base = { maxDeleteRatio: 0.2 };

test('nothing to delete is always allowed', () => {
  expect(evaluateDeletionGuard({ ...base, catalogCount: 0, liveMirrorCount: 0, deleteCount: 0 })).toEqual({ allowed: true, tripped: false, forced: false });
});

test('an empty catalog never tombstones the mirror', () => {
  const decision = evaluateDeletionGuard({ ...base, catalogCount: 0, liveMirrorCount: 3, deleteCount: 3 });
  expect(decision).toMatchObject({ allowed: false, tripped: true });
  expect(decision.reason).toMatch(/catalog returned no entities/);
  // Even when the ratio would allow it.
  expect(evaluateDeletionGuard({ maxDeleteRatio: 1, catalogCount: 0, liveMirrorCount: 3, deleteCount: 3 }).allowed).toBe(false);
});

test.each([
  [100, 20, true], // exactly the limit
  [100, 21, false],
  [1000, 199, true],
  [5, 1, true], // 20 %
  [4, 1, false], // 25 %
  [1, 1, false],
])('%i live, %i to delete → allowed %s', (live, remove, allowed) => {
  expect(evaluateDeletionGuard({ ...base, catalogCount: live - remove, liveMirrorCount: live, deleteCount: remove }).allowed).toBe(allowed);
});

test('the reason gives the numbers', () => {
  expect(evaluateDeletionGuard({ ...base, catalogCount: 70, liveMirrorCount: 100, deleteCount: 30 }).reason).toBe(
    'would tombstone 30 of 100 mirrored entities (30 %), more than the allowed 20 %',
  );
});

test('force overrides, and says so', () => {
  expect(evaluateDeletionGuard({ ...base, catalogCount: 0, liveMirrorCount: 10, deleteCount: 10, force: true })).toMatchObject({
    allowed: true,
    tripped: true,
    forced: true,
  });
});

test('a ratio of 0 forbids any deletion; 1 allows all but the empty catalog', () => {
  expect(evaluateDeletionGuard({ maxDeleteRatio: 0, catalogCount: 99, liveMirrorCount: 100, deleteCount: 1 }).allowed).toBe(false);
  expect(evaluateDeletionGuard({ maxDeleteRatio: 1, catalogCount: 1, liveMirrorCount: 100, deleteCount: 99 }).allowed).toBe(true);
});
