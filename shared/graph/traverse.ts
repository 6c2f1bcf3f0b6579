/**
 * Dependency-graph queries over the `edges` container: breadth-first from a root, one batched query per level
 * (partition-key `IN` lists, chunked), a node cap, cycle detection on what was traversed, and targets that the
 * catalog does not have. Renders JSON, Mermaid or Graphviz DOT.
 */
import type { Container } from '@azure/cosmos';
import { RequestChargeTracker, statusOf } from '../platform/cosmos';
import type { EdgeDocument } from '../edges/edge-store';
import { CosmosOperationError } from '../platform/errors';
import type { EntityStore } from '../platform/cosmos';

export type Direction = 'downstream' | 'upstream' | 'both';

/**
 * What "depends on" means by default: a component's own dependencies, and the providers of the APIs it consumes
 * (component —consumesApi→ API —apiProvidedBy→ component). Upstream is the mirror image.
 */
export const DEFAULT_RELATIONS: Record<'downstream' | 'upstream', readonly string[]> = {
  downstream: ['dependsOn', 'consumesApi', 'apiProvidedBy'],
  upstream: ['dependencyOf', 'providesApi', 'apiConsumedBy'],
};

export interface GraphQuery {
  /** Document id of the root entity. */
  root: string;
  direction: Direction;
  depth: number;
  relations?: readonly string[];
  maxNodes: number;
}

export interface GraphNode {
  ref: string;
  kind: string;
  depth: number;
  /** The catalog has no such entity (a dangling relation); not expanded. */
  missing?: true;
}

export interface GraphEdge {
  source: string;
  type: string;
  target: string;
}

export interface GraphResult {
  root: string;
  direction: Direction;
  depth: number;
  relations: string[];
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** Each cycle as a ref path that starts and ends at the same entity. */
  cycles: string[][];
  /** Refs of relation targets the catalog does not have. */
  missing: string[];
  /** True when the node cap stopped the traversal early. */
  truncated: boolean;
  stats: { queries: number; requestCharge: number };
}

interface NodeState {
  id: string;
  ref: string;
  kind: string;
  depth: number;
  missing: boolean;
}

export class GraphService {
  constructor(
    private readonly edges: Container,
    private readonly entities: EntityStore,
    private readonly options: { chunkSize?: number } = {},
  ) {}

  /** Undefined when the root is unknown or tombstoned. */
  async traverse(query: GraphQuery, call: { abortSignal?: AbortSignal } = {}): Promise<GraphResult | undefined> {
    const charge = new RequestChargeTracker();
    const rootDoc = await this.entities.read(query.root, { charge, ...(call.abortSignal && { abortSignal: call.abortSignal }) });
    if (!rootDoc || rootDoc.deleted === true) return undefined;
    const relations = [
      ...new Set(
        query.relations && query.relations.length > 0
          ? query.relations
          : query.direction === 'both'
            ? [...DEFAULT_RELATIONS.downstream, ...DEFAULT_RELATIONS.upstream]
            : DEFAULT_RELATIONS[query.direction],
      ),
    ];

    const nodes = new Map<string, NodeState>([[rootDoc.id, { id: rootDoc.id, ref: rootDoc.entityRef, kind: rootDoc.kind, depth: 0, missing: false }]]);
    const edges = new Map<string, EdgeDocument>();
    let frontier = [rootDoc.id];
    let truncated = false;
    let queries = 1;

    for (let level = 1; level <= query.depth && frontier.length > 0; level += 1) {
      const found: EdgeDocument[] = [];
      for (const chunk of chunks(frontier, this.options.chunkSize ?? 100)) {
        found.push(...(await this.queryEdges(chunk, relations, charge, call.abortSignal)));
        queries += 1;
      }
      found.sort((a, b) => (a.source === b.source ? (a.type === b.type ? cmp(a.target, b.target) : cmp(a.type, b.type)) : cmp(a.source, b.source)));
      const discovered: NodeState[] = [];
      for (const edge of found) {
        if (!nodes.has(edge.target)) {
          if (nodes.size >= query.maxNodes) {
            truncated = true;
            continue;
          }
          const node = { id: edge.target, ref: edge.targetRef, kind: edge.targetKind, depth: level, missing: false };
          nodes.set(edge.target, node);
          discovered.push(node);
        }
        edges.set(`${edge.source}|${edge.type}|${edge.target}`, edge);
      }
      // Which of the new nodes the catalog actually has (and their refs in original casing).
      const known = new Map<string, { entityRef: string; kind: string }>();
      for (const chunk of chunks(discovered.map((n) => n.id), this.options.chunkSize ?? 100)) {
        for (const entity of await this.lookupEntities(chunk, charge, call.abortSignal)) known.set(entity.id, entity);
        queries += 1;
      }
      for (const node of discovered) {
        const entity = known.get(node.id);
        if (entity) {
          node.ref = entity.entityRef;
          node.kind = entity.kind;
        } else {
          node.missing = true;
        }
      }
      frontier = discovered.filter((n) => !n.missing).map((n) => n.id).sort(cmp);
    }

    const refOf = (id: string) => nodes.get(id)!.ref;
    const edgeList = [...edges.values()]
      .filter((e) => nodes.has(e.source) && nodes.has(e.target))
      .map((e) => ({ source: refOf(e.source), type: e.type, target: refOf(e.target), sourceId: e.source, targetId: e.target }));
    const ordered = [...nodes.values()].sort((a, b) => a.depth - b.depth || cmp(a.id, b.id));
    return {
      root: rootDoc.entityRef,
      direction: query.direction,
      depth: query.depth,
      relations,
      nodes: ordered.map((n) => ({ ref: n.ref, kind: n.kind, depth: n.depth, ...(n.missing && { missing: true as const }) })),
      edges: edgeList.map(({ source, type, target }) => ({ source, type, target })),
      cycles: findCycles(ordered.map((n) => n.id), edgeList.map((e) => [e.sourceId, e.targetId] as const)).map((cycle) => cycle.map(refOf)),
      missing: ordered.filter((n) => n.missing).map((n) => n.ref),
      truncated,
      stats: { queries, requestCharge: Math.round(charge.total * 100) / 100 },
    };
  }

  private async queryEdges(sources: string[], relations: string[], charge: RequestChargeTracker, abortSignal?: AbortSignal): Promise<EdgeDocument[]> {
    const parameters = sources.map((value, i) => ({ name: `@s${i}`, value }));
    const query = {
      query: `SELECT * FROM c WHERE c.source IN (${parameters.map((p) => p.name).join(', ')}) AND ARRAY_CONTAINS(@types, c.type)`,
      parameters: [...parameters, { name: '@types', value: relations }],
    };
    try {
      const response = await this.edges.items.query<EdgeDocument>(query, abortSignal ? { abortSignal } : {}).fetchAll();
      charge.add('query', response.requestCharge);
      return response.resources;
    } catch (error) {
      throw new CosmosOperationError(`Cosmos DB edge query failed: ${(error as Error).message}`, statusOf(error), error);
    }
  }

  private async lookupEntities(ids: string[], charge: RequestChargeTracker, abortSignal?: AbortSignal) {
    const parameters = ids.map((value, i) => ({ name: `@i${i}`, value }));
    try {
      const response = await this.entities.container.items
        .query<{ id: string; entityRef: string; kind: string }>(
          {
            query: `SELECT c.id, c.entityRef, c.kind FROM c WHERE c.id IN (${parameters.map((p) => p.name).join(', ')}) AND NOT IS_DEFINED(c.deleted)`,
            parameters,
          },
          abortSignal ? { abortSignal } : {},
        )
        .fetchAll();
      charge.add('query', response.requestCharge);
      return response.resources;
    } catch (error) {
      throw new CosmosOperationError(`Cosmos DB entity lookup failed: ${(error as Error).message}`, statusOf(error), error);
    }
  }
}

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
  for (const [from, to] of edges) if (!map.get(from)!.includes(to)) map.get(from)!.push(to);
  return map;
}

function rotate(cycle: string[]): string[] {
  let best = 0;
  for (let i = 1; i < cycle.length; i += 1) if (cmp(cycle[i]!, cycle[best]!) < 0) best = i;
  return [...cycle.slice(best), ...cycle.slice(0, best)];
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Mermaid flowchart, left to right; missing targets dashed. */
export function toMermaid(result: GraphResult): string {
  const ids = new Map(result.nodes.map((n, i) => [n.ref, `n${i}`]));
  const lines = ['graph LR'];
  for (const node of result.nodes) lines.push(`  ${ids.get(node.ref)}["${node.ref}"]${node.missing ? ':::missing' : ''}`);
  for (const edge of result.edges) lines.push(`  ${ids.get(edge.source)} -->|${edge.type}| ${ids.get(edge.target)}`);
  if (result.nodes.some((n) => n.missing)) lines.push('  classDef missing stroke-dasharray: 5 5');
  return `${lines.join('\n')}\n`;
}

/** Graphviz DOT; missing targets dashed. */
export function toDot(result: GraphResult): string {
  const q = (s: string) => `"${s.replace(/["\\]/g, '\\$&')}"`;
  const lines = [`digraph ${q(result.root)} {`, '  rankdir=LR;', '  node [shape=box];'];
  for (const node of result.nodes) lines.push(`  ${q(node.ref)}${node.missing ? ' [style=dashed]' : ''};`);
  for (const edge of result.edges) lines.push(`  ${q(edge.source)} -> ${q(edge.target)} [label=${q(edge.type)}];`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
