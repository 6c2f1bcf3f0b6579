/**
 * Dependency edges: one document per relation of a source entity in the `edges` container (partition key
 * `/source`), derived from the mirror's `entities` documents by the change-feed projection.
 *
 * Backstage already stores both directions of every relation (dependsOn/dependencyOf, …), so "what does X use"
 * and "what uses X" are both single-partition reads of X's edges.
 */
import type { Entity } from '@backstage/catalog-model';
import type { Container, ErrorResponse, JSONObject } from '@azure/cosmos';
import pLimit from 'p-limit';
import { retryDelay, sleep } from '../platform/backoff';
import { RequestChargeTracker, statusOf } from '../platform/cosmos';
import { CosmosOperationError, OperationAbortedError } from '../platform/errors';
import type { Metrics } from '../platform/metrics';
import { normalizeEntityRef, parseEntityRef, toDocumentId } from '../model/refs';

/** The relation types Backstage defines, in pairs. Others (from custom processors) are projected too. */
export const WELL_KNOWN_RELATIONS = [
  ['dependsOn', 'dependencyOf'],
  ['providesApi', 'apiProvidedBy'],
  ['consumesApi', 'apiConsumedBy'],
  ['ownedBy', 'ownerOf'],
  ['partOf', 'hasPart'],
  ['parentOf', 'childOf'],
  ['memberOf', 'hasMember'],
] as const;

export interface EdgeDocument {
  /** `<type>:<target id>` — unique within the source's partition. */
  id: string;
  /** The source entity's document id (partition key). */
  source: string;
  sourceRef: string;
  type: string;
  targetRef: string;
  /** The target entity's document id. */
  target: string;
  sourceKind: string;
  targetKind: string;
  updatedAt: string;
}

const RELATION_TYPE = /^[A-Za-z][A-Za-z0-9_.-]{0,62}$/;

/** The edges an entity's relations describe (deduplicated; relations with unusable types or refs skipped). */
export function deriveEdges(source: { id: string; entityRef: string; kind: string }, entity: Entity | undefined, now: Date): EdgeDocument[] {
  const edges = new Map<string, EdgeDocument>();
  for (const relation of entity?.relations ?? []) {
    const type = relation?.type;
    const targetRef = relation?.targetRef;
    if (typeof type !== 'string' || !RELATION_TYPE.test(type) || typeof targetRef !== 'string') continue;
    let target: string;
    let targetKind: string;
    try {
      const parts = parseEntityRef(targetRef);
      target = toDocumentId(parts);
      targetKind = parts.kind;
    } catch {
      continue;
    }
    const id = `${type}:${target}`;
    edges.set(id, {
      id,
      source: source.id,
      sourceRef: normalizeEntityRef(source.entityRef),
      type,
      targetRef: normalizeEntityRef(targetRef),
      target,
      sourceKind: source.kind.toLowerCase(),
      targetKind: targetKind.toLowerCase(),
      updatedAt: now.toISOString(),
    });
  }
  return [...edges.values()];
}

/** Whether `stored` already says what `desired` says (ignoring when it was written). */
export function sameEdge(stored: Pick<EdgeDocument, 'sourceRef' | 'targetRef' | 'type' | 'target' | 'sourceKind' | 'targetKind'>, desired: EdgeDocument): boolean {
  return (
    stored.sourceRef === desired.sourceRef &&
    stored.targetRef === desired.targetRef &&
    stored.type === desired.type &&
    stored.target === desired.target &&
    stored.sourceKind === desired.sourceKind &&
    stored.targetKind === desired.targetKind
  );
}

export interface EdgeDiff {
  upserts: EdgeDocument[];
  deletes: string[];
}

export function diffEdges(current: readonly EdgeDocument[], desired: readonly EdgeDocument[]): EdgeDiff {
  const stored = new Map(current.map((e) => [e.id, e]));
  const wanted = new Set(desired.map((e) => e.id));
  return {
    upserts: desired.filter((e) => {
      const existing = stored.get(e.id);
      return !existing || !sameEdge(existing, e);
    }),
    deletes: current.filter((e) => !wanted.has(e.id)).map((e) => e.id),
  };
}

export interface EdgeStoreOptions {
  metrics?: Metrics;
  retry: { maxRetries: number; baseDelayInMs: number; maxDelayInMs: number };
}

export class EdgeStore {
  constructor(
    readonly container: Container,
    private readonly options: EdgeStoreOptions,
  ) {}

  /** Every edge of one source: a single-partition query. */
  async edgesOf(source: string, call: { charge?: RequestChargeTracker; abortSignal?: AbortSignal } = {}): Promise<EdgeDocument[]> {
    try {
      const response = await this.container.items
        .query<EdgeDocument>(
          { query: 'SELECT * FROM c WHERE c.source = @source', parameters: [{ name: '@source', value: source }] },
          { partitionKey: source, ...(call.abortSignal && { abortSignal: call.abortSignal }) },
        )
        .fetchAll();
      this.charge('query', response.requestCharge, call.charge);
      return response.resources;
    } catch (error) {
      if (call.abortSignal?.aborted) throw new OperationAbortedError('Edge query aborted', error);
      throw new CosmosOperationError(`Cosmos DB query of the edges of ${source} failed: ${(error as Error).message}`, statusOf(error), error);
    }
  }

  /**
   * Applies a diff in the source's partition as concurrent point writes (upserts and deletes). A delete that finds
   * nothing (404) counts as done, so redelivery is harmless; 429s the SDK gave up on are retried with backoff.
   */
  async apply(source: string, diff: EdgeDiff, call: { charge?: RequestChargeTracker; abortSignal?: AbortSignal } = {}): Promise<void> {
    type Op = { kind: 'upsert'; edge: EdgeDocument } | { kind: 'delete'; id: string };
    let pending: Op[] = [...diff.upserts.map((edge) => ({ kind: 'upsert' as const, edge })), ...diff.deletes.map((id) => ({ kind: 'delete' as const, id }))];
    const { retry } = this.options;
    const limit = pLimit(8);
    const options = call.abortSignal ? { abortSignal: call.abortSignal } : {};
    for (let round = 0; pending.length > 0; round += 1) {
      const throttled: Op[] = [];
      let retryAfterInMs: number | undefined;
      await Promise.all(
        pending.map((op) =>
          limit(async () => {
            try {
              const response =
                op.kind === 'upsert'
                  ? await this.container.items.upsert(op.edge as unknown as JSONObject, options)
                  : await this.container.item(op.id, source).delete(options);
              this.charge(op.kind, response.requestCharge, call.charge);
            } catch (error) {
              const status = statusOf(error);
              this.charge(op.kind, Number((error as ErrorResponse)?.headers?.['x-ms-request-charge'] ?? 0), call.charge);
              if (op.kind === 'delete' && status === 404) return;
              if (call.abortSignal?.aborted) throw new OperationAbortedError('Edge write aborted', error);
              if (status === 429 && round < retry.maxRetries) {
                throttled.push(op);
                const after = (error as ErrorResponse).retryAfterInMs;
                if (typeof after === 'number') retryAfterInMs = Math.max(retryAfterInMs ?? 0, after);
                return;
              }
              throw new CosmosOperationError(`Writing edges of ${source} failed${status ? ` with ${status}` : ''}: ${(error as Error).message}`, status, error);
            }
          }),
        ),
      );
      if (throttled.length > 0) {
        this.options.metrics?.increment('cosmos.throttled', throttled.length, { operation: 'edges' });
        await sleep(retryDelay(round, retryAfterInMs, retry), call.abortSignal);
      }
      pending = throttled;
    }
  }

  private charge(operation: string, requestCharge: number | undefined, tracker?: RequestChargeTracker): void {
    tracker?.add(operation, requestCharge);
    this.options.metrics?.record('cosmos.request_charge', requestCharge ?? 0, { operation, container: this.container.id });
  }
}
