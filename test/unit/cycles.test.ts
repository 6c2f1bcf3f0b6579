import fc from 'fast-check';
import { findCycles } from '../../shared/graph/cycles';

type Edge = readonly [string, string];

/** Cycles in a comparable order (the function promises no order between cycles). */
const sorted = (cycles: string[][]) => cycles.map((c) => c.join(' ')).sort();

/** Whether the graph has any cycle, by Kahn's algorithm (independent of the code under test). */
function hasCycle(nodes: readonly string[], edges: readonly Edge[]): boolean {
  const indegree = new Map(nodes.map((n) => [n, 0]));
  const unique = [...new Set(edges.map(([a, b]) => `${a}\u0000${b}`))].map((k) => k.split('\u0000') as [string, string]);
  for (const [, to] of unique) indegree.set(to, indegree.get(to)! + 1);
  const ready = nodes.filter((n) => indegree.get(n) === 0);
  let removed = 0;
  while (ready.length > 0) {
    const node = ready.pop()!;
    removed += 1;
    for (const [from, to] of unique) {
      if (from !== node) continue;
      indegree.set(to, indegree.get(to)! - 1);
      if (indegree.get(to) === 0) ready.push(to);
    }
  }
  return removed < nodes.length;
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

test('a self loop is a cycle of one node', () => {
  expect(findCycles(['a', 'b'], [['a', 'b'], ['b', 'b']])).toEqual([['b', 'b']]);
});

test('an acyclic graph has no cycles', () => {
  expect(findCycles([], [])).toEqual([]);
  expect(findCycles(['a'], [])).toEqual([]);
  // A diamond: d is reached twice, but never while it is on the path.
  expect(findCycles(['a', 'b', 'c', 'd'], [['a', 'b'], ['a', 'c'], ['b', 'd'], ['c', 'd']])).toEqual([]);
});

test('two cycles sharing a node are both found', () => {
  const twoLoops: Edge[] = [['a', 'b'], ['b', 'a'], ['a', 'c'], ['c', 'a']];
  expect(sorted(findCycles(['a', 'b', 'c'], twoLoops))).toEqual(['a b a', 'a c a']);
  const figureEight: Edge[] = [['a', 'b'], ['b', 'c'], ['c', 'a'], ['c', 'd'], ['d', 'e'], ['e', 'c']];
  expect(sorted(findCycles(['a', 'b', 'c', 'd', 'e'], figureEight))).toEqual(['a b c a', 'c d e c']);
});

test('a cycle starts at its smallest node whatever the order of the input', () => {
  const edges: Edge[] = [['c', 'a'], ['a', 'd'], ['d', 'b'], ['b', 'c']];
  for (const nodes of permutations(['a', 'b', 'c', 'd'])) {
    for (const order of [edges, [...edges].reverse()]) {
      expect(findCycles(nodes, order)).toEqual([['a', 'd', 'b', 'c', 'a']]);
    }
  }
});

test('smallest by code unit, not by locale', () => {
  expect(findCycles(['x', 'Y'], [['x', 'Y'], ['Y', 'x']])).toEqual([['Y', 'x', 'Y']]);
});

test('each cycle is reported once, also when edges repeat', () => {
  expect(findCycles(['a', 'b'], [['a', 'b'], ['b', 'a'], ['a', 'b'], ['b', 'a']])).toEqual([['a', 'b', 'a']]);
});

test('at most 20 cycles', () => {
  const nodes = Array.from({ length: 30 }, (_, i) => `n${String(i).padStart(2, '0')}`);
  const selfLoops = findCycles(nodes, nodes.map((n) => [n, n] as const));
  expect(selfLoops).toHaveLength(20);
  expect(new Set(selfLoops.map((c) => c.join(' '))).size).toBe(20);
  const pairs = nodes.flatMap((n, i) => (i % 2 === 0 ? [[n, nodes[i + 1]!] as const, [nodes[i + 1]!, n] as const] : []));
  expect(findCycles(nodes, pairs)).toHaveLength(15);
  const chained = nodes.map((n, i) => [n, nodes[(i + 1) % nodes.length]!] as const).concat(nodes.map((n) => [n, n] as const));
  expect(findCycles(nodes, chained)).toHaveLength(20);
});

describe('properties', () => {
  const letters = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
  const graphs = fc
    .uniqueArray(fc.constantFrom(...letters), { minLength: 1, maxLength: letters.length })
    .chain((nodes) => fc.tuple(fc.constant(nodes), fc.array(fc.tuple(fc.constantFrom(...nodes), fc.constantFrom(...nodes)), { maxLength: 16 })));

  test('every reported cycle is a real, elementary, closed path in a canonical rotation, reported once', () => {
    fc.assert(
      fc.property(graphs, ([nodes, edges]) => {
        const present = new Set(edges.map(([a, b]) => `${a}>${b}`));
        const cycles = findCycles(nodes, edges);
        expect(cycles.length).toBeLessThanOrEqual(20);
        expect(new Set(cycles.map((c) => c.join(' '))).size).toBe(cycles.length);
        for (const cycle of cycles) {
          expect(cycle.length).toBeGreaterThanOrEqual(2);
          expect(cycle[cycle.length - 1]).toBe(cycle[0]);
          const open = cycle.slice(0, -1);
          expect(new Set(open).size).toBe(open.length);
          expect(open.every((n) => n >= cycle[0]!)).toBe(true);
          for (let i = 0; i + 1 < cycle.length; i += 1) expect(present.has(`${cycle[i]}>${cycle[i + 1]}`)).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });

  test('cycles are found exactly when the graph has one', () => {
    fc.assert(
      fc.property(graphs, ([nodes, edges]) => {
        expect(findCycles(nodes, edges).length > 0).toBe(hasCycle(nodes, edges));
      }),
      { numRuns: 200 },
    );
  });

  test('the order of the edges does not matter', () => {
    const withShuffle = graphs.chain(([nodes, edges]) =>
      fc.tuple(fc.constant(nodes), fc.constant(edges), fc.shuffledSubarray(edges, { minLength: edges.length, maxLength: edges.length })),
    );
    fc.assert(
      fc.property(withShuffle, ([nodes, edges, shuffled]) => {
        expect(findCycles(nodes, shuffled)).toEqual(findCycles(nodes, edges));
      }),
      { numRuns: 200 },
    );
  });
});

test('edges from outside the given nodes are ignored, not a crash', () => {
  expect(findCycles(['a'], [['b', 'a'], ['a', 'a']])).toEqual([['a', 'a']]);
});
