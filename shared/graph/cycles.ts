/**
 * Cycle finding for the graph API: the elementary cycles among the nodes a traversal reached. Pure.
 */
import { compareStrings as cmp } from '../platform/collections';

/**
 * Elementary cycles found by depth-first search: each back edge closes one cycle (the path on the stack from its
 * target to its source). Reported once per set of nodes in a canonical rotation; at most 20.
 */
export function findCycles(nodes: readonly string[], edges: ReadonlyArray<readonly [string, string]>): string[][] {
  const out = new Map<string, string[]>();
  const next = adjacency(nodes, edges);
  for (const list of next.values()) list.sort(cmp);
  const state = new Map<string, 'active' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, 'active');
    stack.push(node);
    for (const target of next.get(node) ?? []) {
      if (out.size >= 20) break;
      if (state.get(target) === 'active') {
        const cycle = stack.slice(stack.indexOf(target));
        const canonical = rotate(cycle);
        out.set(canonical.join('→'), [...canonical, canonical[0]!]);
      } else if (!state.has(target)) {
        visit(target);
      }
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of nodes) if (!state.has(node)) visit(node);
  return [...out.values()];
}

function adjacency(nodes: readonly string[], edges: ReadonlyArray<readonly [string, string]>): Map<string, string[]> {
  const map = new Map<string, string[]>(nodes.map((n) => [n, []]));
  for (const [from, to] of edges) {
    // An edge whose source is not among the nodes is not part of the graph asked about.
    const targets = map.get(from);
    if (targets && !targets.includes(to)) targets.push(to);
  }
  return map;
}

function rotate(cycle: string[]): string[] {
  let best = 0;
  for (let i = 1; i < cycle.length; i += 1) if (cmp(cycle[i]!, cycle[best]!) < 0) best = i;
  return [...cycle.slice(best), ...cycle.slice(0, best)];
}
