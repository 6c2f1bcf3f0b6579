/**
 * The sync scope: which catalog entities the mirror holds, and how much of each. Pure; see docs/sync-semantics.md.
 *
 * Two sources decide it:
 * - the settings (`SYNC_INCLUDE_KINDS`, `SYNC_EXCLUDE_KINDS`, `SYNC_INCLUDE_NAMESPACES`, `SYNC_EXCLUDE_NAMESPACES`,
 *   `SYNC_CATALOG_FILTER`), compiled into one Backstage filter predicate that the reconcile pushes into the catalog
 *   query (so excluded entities are never fetched) and that the event path evaluates on the entity it read;
 * - the entity's own annotations, set by its owner: {@link SCOPE_ANNOTATIONS}.
 *
 * The settings apply before the annotations: an entity the settings exclude is out of scope whatever it says.
 */
import type { Entity } from '@backstage/catalog-model';
import { evaluateFilterPredicate, type FilterPredicate, type FilterPredicateExpression } from '@backstage/filter-predicates';

/** The annotations an entity's owner sets to decide what of it leaves Backstage. Keys without dots, so they are catalog field paths. */
export const SCOPE_ANNOTATIONS = {
  /** `"true"`: the entity is not mirrored (and a mirrored copy is tombstoned). */
  exclude: 'backstage-cosmos-sync/exclude',
  /** `"true"`: only the envelope is mirrored — ref, kind, owner, relations; no spec, annotations, labels or text. */
  envelopeOnly: 'backstage-cosmos-sync/envelope-only',
  /** Comma-separated field paths left out of the mirrored entity, e.g. `spec.secrets, metadata.annotations.vault.io/path`. */
  omitFields: 'backstage-cosmos-sync/omit-fields',
} as const;

/** The catalog field paths that carry the annotations above (requested with the reconcile's projection). */
export const SCOPE_ANNOTATION_FIELDS: readonly string[] = Object.values(SCOPE_ANNOTATIONS).map((key) => `metadata.annotations.${key}`);

/** The scope annotations `entity` carries, as the projection would read them (`undefined` when it has none). */
export function scopeAnnotationsOf(entity: Entity): Record<string, string> | undefined {
  const all = entity.metadata.annotations;
  if (!all) return undefined;
  let found: Record<string, string> | undefined;
  for (const key of Object.values(SCOPE_ANNOTATIONS)) if (all[key] !== undefined) (found ??= {})[key] = all[key];
  return found;
}

/** Fields an owner cannot omit: without them the document is not a mirror of anything. */
const IDENTITY_PATHS = new Set(['apiversion', 'kind', 'metadata', 'metadata.name', 'metadata.namespace', 'metadata.uid']);

export interface SyncScopeSettings {
  /** Kinds to mirror (case-insensitive); empty = every kind. */
  includeKinds: readonly string[];
  excludeKinds: readonly string[];
  /** Namespaces to mirror (case-insensitive); empty = every namespace. */
  includeNamespaces: readonly string[];
  excludeNamespaces: readonly string[];
  /** A Backstage filter predicate every mirrored entity must match. */
  catalogFilter?: FilterPredicate;
}

/** Why an entity is not mirrored. */
export type ScopeExclusion = 'setting' | 'annotation';

/** How an in-scope entity is mirrored. */
export type Publication = { form: 'full' } | { form: 'envelope' } | { form: 'omit'; paths: string[] };

export type ScopeDecision = { inScope: true; publication: Publication } | { inScope: false; reason: ScopeExclusion };

export class SyncScope {
  /** The settings as one predicate; undefined when they select everything. */
  readonly predicate: FilterPredicate | undefined;
  private readonly kindRule: (value: string) => boolean;
  private readonly namespaceRule: (value: string) => boolean;

  constructor(private readonly settings: SyncScopeSettings = { includeKinds: [], excludeKinds: [], includeNamespaces: [], excludeNamespaces: [] }) {
    this.kindRule = listRule(settings.includeKinds, settings.excludeKinds);
    this.namespaceRule = listRule(settings.includeNamespaces, settings.excludeNamespaces);
    const parts: FilterPredicate[] = [
      ...listPredicates('kind', settings.includeKinds, settings.excludeKinds),
      ...listPredicates('metadata.namespace', settings.includeNamespaces, settings.excludeNamespaces),
      ...(settings.catalogFilter ? [settings.catalogFilter] : []),
    ];
    this.predicate = parts.length === 0 ? undefined : parts.length === 1 ? parts[0] : { $all: parts };
  }

  /** Whether the settings may select entities at all (false: everything is in scope by setting). */
  get restricted(): boolean {
    return this.predicate !== undefined;
  }

  /** The settings' verdict that needs only the ref: kind and namespace. (A catalog filter needs the entity.) */
  includesRef(name: { kind: string; namespace: string }): boolean {
    return this.kindRule(name.kind) && this.namespaceRule(name.namespace);
  }

  /** The whole verdict on an entity as the catalog returned it (whole, or a projection with the annotation fields). */
  decide(entity: Entity): ScopeDecision {
    const name = { kind: entity.kind, namespace: entity.metadata.namespace ?? 'default' };
    if (!this.includesRef(name)) return { inScope: false, reason: 'setting' };
    if (this.settings.catalogFilter && !evaluateFilterPredicate(this.settings.catalogFilter, entity)) return { inScope: false, reason: 'setting' };
    return decideByAnnotations(entity.metadata.annotations);
  }
}

/** The owner's verdict, from the entity's annotations alone. */
export function decideByAnnotations(annotations: Readonly<Record<string, string>> = {}): ScopeDecision {
  if (isTrue(annotations[SCOPE_ANNOTATIONS.exclude])) return { inScope: false, reason: 'annotation' };
  if (isTrue(annotations[SCOPE_ANNOTATIONS.envelopeOnly])) return { inScope: true, publication: { form: 'envelope' } };
  const paths = parseOmitFields(annotations[SCOPE_ANNOTATIONS.omitFields]);
  if (paths.length > 0) return { inScope: true, publication: { form: 'omit', paths } };
  return { inScope: true, publication: { form: 'full' } };
}

/** `backstage-cosmos-sync/omit-fields` → its paths, without the identity fields no document can do without. */
export function parseOmitFields(value: string | undefined): string[] {
  if (!value) return [];
  const paths = value
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0 && !IDENTITY_PATHS.has(p.toLowerCase()));
  return [...new Set(paths)];
}

/**
 * The entity as the owner lets it leave Backstage. Envelope: identity, relations and `metadata.uid`, nothing else (the
 * owner is in the relations, `ownedBy`). Omit: the entity without the given paths. Both drop `metadata.etag`: the
 * catalog computes it as a hash of the whole entity, so it would confirm guesses of what was withheld.
 */
export function publishedEntity(entity: Entity, publication: Publication): Entity {
  if (publication.form === 'full') return entity;
  if (publication.form === 'envelope') {
    const { name, namespace, uid } = entity.metadata;
    return {
      apiVersion: entity.apiVersion,
      kind: entity.kind,
      metadata: { name, ...(namespace !== undefined && { namespace }), ...(uid !== undefined && { uid }) },
      ...(entity.relations && { relations: entity.relations }),
    };
  }
  const copy = structuredClone(entity) as unknown as Record<string, unknown>;
  for (const path of publication.paths) omitPath(copy, path);
  delete (copy.metadata as Record<string, unknown>).etag;
  return copy as unknown as Entity;
}

/**
 * Deletes every value at `path` (dot-separated, case-insensitive keys, like catalog filters). Keys may themselves
 * contain dots (annotation names such as `vault.io/path`): each key that is a prefix of the path is followed. Arrays
 * are not traversed.
 */
export function omitPath(target: Record<string, unknown>, path: string): void {
  const lower = path.toLowerCase();
  for (const key of Object.keys(target)) {
    const k = key.toLowerCase();
    if (k === lower) {
      delete target[key];
    } else if (lower.startsWith(`${k}.`)) {
      const child = target[key];
      if (child !== null && typeof child === 'object' && !Array.isArray(child)) omitPath(child as Record<string, unknown>, path.slice(key.length + 1));
    }
  }
}

function isTrue(value: string | undefined): boolean {
  return value?.trim().toLowerCase() === 'true';
}

function listRule(include: readonly string[], exclude: readonly string[]): (value: string) => boolean {
  const inc = new Set(include.map((v) => v.toLowerCase()));
  const exc = new Set(exclude.map((v) => v.toLowerCase()));
  return (value) => {
    const v = value.toLowerCase();
    return (inc.size === 0 || inc.has(v)) && !exc.has(v);
  };
}

function listPredicates(path: string, include: readonly string[], exclude: readonly string[]): FilterPredicate[] {
  const matches = (values: readonly string[]) => ({ [path]: { $in: [...values] } }) as FilterPredicateExpression;
  const out: FilterPredicate[] = [];
  if (include.length > 0) out.push(matches(include));
  if (exclude.length > 0) out.push({ $not: matches(exclude) });
  return out;
}
