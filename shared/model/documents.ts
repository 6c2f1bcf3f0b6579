/**
 * The mirror's document shapes (Cosmos container `entities`, partition key `/id`) and the pure functions
 * that build them. See docs/data-model.md.
 */
import { createHash } from 'node:crypto';
import type { Entity } from '@backstage/catalog-model';
import { configure } from 'safe-stable-stringify';
import { publishedEntity, type Publication } from '../sync/scope';
import { entityNameOf, formatEntityRef, toDocumentId } from './refs';

const stableStringify = configure({ deterministic: true, bigint: false, circularValue: Error });

/** What identifies a mirrored entity; every document shape carries it. */
export interface EntityIdentity {
  /** Lower-cased `kind:namespace:name`. */
  id: string;
  /** `kind:namespace/name` in the entity's own casing. */
  entityRef: string;
  kind: string;
  namespace: string;
  name: string;
  /** Backstage `metadata.uid`. */
  uid: string | null;
}

/** A live entity in the mirror. */
export interface LiveEntityDocument extends EntityIdentity {
  sourceEtag: string | null;
  entity: Entity;
  syncHash: string;
  syncedAt: string;
  /** The W3C trace of the sync that wrote it, so the edge projection continues the same trace. */
  traceparent?: string;
  /**
   * Set when the entity's owner restricted what is mirrored (docs/sync-semantics.md): `envelope` — identity, owner and
   * relations only; `omit-fields` — without `omittedFields`. Absent for a whole entity. A restricted document's
   * `sourceEtag` is a digest of what it holds, never the catalog's etag (a hash of the whole entity).
   */
  publication?: 'envelope' | 'omit-fields';
  omittedFields?: string[];
  /** The envelope's owner (`spec.owner`), the one field of `spec` an envelope keeps. */
  owner?: string;
  deleted?: false;
}

/** An entity Backstage no longer has. Readers ignore it; Cosmos TTL removes it later. */
export interface TombstoneDocument extends EntityIdentity {
  sourceEtag: null;
  deleted: true;
  deletedAt: string;
  ttl: number;
  syncHash: string;
  syncedAt: string;
  traceparent?: string;
}

export type EntityDocument = LiveEntityDocument | TombstoneDocument;

/** Cosmos system properties that come back on reads. */
export interface SystemProperties {
  _etag?: string;
  _ts?: number;
  _rid?: string;
  _self?: string;
}

export function isTombstone(doc: EntityDocument | undefined): doc is TombstoneDocument {
  return doc?.deleted === true;
}

/**
 * The mirror document for a Backstage entity as the catalog returned it, published as its owner allows (whole by
 * default). Nothing withheld reaches the document, its `sourceEtag` or its `syncHash`.
 */
export function toEntityDocument(entity: Entity, now: Date = new Date(), traceparent?: string, publication: Publication = { form: 'full' }): LiveEntityDocument {
  const name = entityNameOf(entity);
  const published = publishedEntity(entity, publication);
  const owner = publication.form === 'envelope' && typeof entity.spec?.owner === 'string' ? entity.spec.owner : undefined;
  const withoutHash = {
    id: toDocumentId(name),
    entityRef: formatEntityRef(name),
    kind: name.kind,
    namespace: name.namespace,
    name: name.name,
    uid: entity.metadata.uid ?? null,
    sourceEtag: publication.form === 'full' ? (entity.metadata.etag ?? null) : publishedDigest(published),
    entity: published,
    syncedAt: now.toISOString(),
    ...(traceparent && { traceparent }),
    ...(publication.form === 'envelope' && { publication: 'envelope' as const, ...(owner !== undefined && { owner }) }),
    ...(publication.form === 'omit' && { publication: 'omit-fields' as const, omittedFields: publication.paths }),
  };
  return { ...withoutHash, syncHash: computeSyncHash(withoutHash) };
}

/** A restricted document's change marker: a digest of exactly what it publishes (`sha256:` + base64url). */
function publishedDigest(published: Entity): string {
  return `sha256:${createHash('sha256').update(stableStringify(published) ?? '').digest('base64url')}`;
}

/** The tombstone that replaces `previous` when Backstage no longer has the entity. */
export function toTombstone(
  previous: EntityIdentity,
  ttlInSeconds: number,
  now: Date = new Date(),
  traceparent?: string,
): TombstoneDocument {
  const withoutHash = {
    id: previous.id,
    entityRef: previous.entityRef,
    kind: previous.kind,
    namespace: previous.namespace,
    name: previous.name,
    uid: previous.uid,
    sourceEtag: null,
    deleted: true as const,
    deletedAt: now.toISOString(),
    ttl: ttlInSeconds,
    syncedAt: now.toISOString(),
    ...(traceparent && { traceparent }),
  };
  return { ...withoutHash, syncHash: computeSyncHash(withoutHash) };
}

/**
 * SHA-256 over the canonical JSON of what the sync wrote: every field except `syncHash` itself and
 * Cosmos system properties (`_etag`, `_ts`, …). A document whose content no longer matches its hash was
 * changed by someone other than the sync (drift).
 */
export function computeSyncHash(doc: Record<string, unknown>): string {
  const content: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(doc)) {
    if (key === 'syncHash' || key.startsWith('_')) continue;
    content[key] = value;
  }
  return createHash('sha256').update(stableStringify(content) ?? '').digest('base64url');
}

/** Strips Cosmos system properties from a read document. */
export function withoutSystemProperties<T extends object>(doc: T & SystemProperties): T {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(doc)) if (!key.startsWith('_')) out[key] = value;
  return out as T;
}

/**
 * An entity authored in Cosmos DB (container `authored`, partition key `/id`, ids as in `entities`): what the
 * Backstage entity provider turns into a catalog entity. See docs/authoring.md.
 */
export interface AuthoredDocument {
  id: string;
  entityRef: string;
  kind: string;
  namespace: string;
  name: string;
  /** The entity as its author wrote it: `apiVersion`, `kind`, `metadata`, `spec` — never `relations` or `status`. */
  entity?: Entity;
  /** Who wrote this version: the token's subject and client (or the Cosmos principal, for direct writes). */
  authoredBy: { subject: string; clientId?: string; issuer?: string };
  updatedAt: string;
  /** Soft deletion, so that a delete is on the change feed; Cosmos removes the document after `ttl` seconds. */
  deleted?: true;
  ttl?: number;
}

/**
 * One relation of a source entity, in the `edges` container (partition key `/source`): derived from the mirror's
 * `entities` documents by the change-feed projection.
 */
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
