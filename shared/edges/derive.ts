/**
 * Edge derivation: what an entity's relations become in the `edges` container, and the difference between the edges
 * stored and the edges wanted. Pure functions; the projection (projector.ts) applies them.
 *
 * Backstage already stores both directions of every relation (dependsOn/dependencyOf, …), so "what does X use"
 * and "what uses X" are both single-partition reads of X's edges.
 */
import type { Entity } from '@backstage/catalog-model';
import type { EdgeDocument } from '../model/documents';
import { normalizeEntityRef, parseEntityRef, toDocumentId } from '../model/refs';

/** What a relation type may look like (Backstage's own are camelCase words). */
export const RELATION_TYPE = /^[A-Za-z][A-Za-z0-9_.-]{0,62}$/;

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
