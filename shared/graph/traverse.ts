/**
 * Dependency-graph queries: breadth-first from a root over the edges store, one batched query per level
 * (partition-key `IN` lists, chunked), a node cap, cycle detection on what was traversed, and targets that the
 * catalog does not have (looked up in the entity store). Rendering is in render.ts, cycles in cycles.ts.
 */
import type { EdgeStore } from '../edges/edge-store';
import type { EdgeDocument } from '../model/documents';
import { chunk, compareStrings as cmp } from '../platform/collections';
import { RequestChargeTracker } from '../platform/cosmos';
import type { OperationOptions } from '../platform/options';
import type { EntityStore } from '../sync/entity-store';
import { findCycles } from './cycles';

export type Direction = 'downstream' | 'upstream' | 'both';

/**
 * What "depends on" means by default: a component's own dependencies, and the providers of the APIs it consumes
 * (component —consumesApi→ API —apiProvidedBy→ component). Upstream is the mirror image.
 */
const DEFAULT_RELATIONS: Record<'downstream' | 'upstream', readonly string[]> = {
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
    private readonly edges: EdgeStore,
    private readonly entities: EntityStore,
    private readonly options: { chunkSize?: number } = {},
  ) {}

  /** Undefined when the root is unknown or tombstoned. */
  async traverse(query: GraphQuery, options: OperationOptions = {}): Promise<GraphResult | undefined> {
    const charge = new RequestChargeTracker();
    const call = { ...options, charge };
    const rootDoc = await this.entities.read(query.root, call);
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
      for (const sources of chunk(frontier, this.options.chunkSize ?? 100)) {
        found.push(...(await this.edges.edgesFrom(sources, relations, call)));
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
      for (const ids of chunk(discovered.map((n) => n.id), this.options.chunkSize ?? 100)) {
        for (const entity of await this.entities.findLive(ids, call)) known.set(entity.id, entity);
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
}
