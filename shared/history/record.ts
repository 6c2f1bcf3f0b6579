/**
 * One record per version of a mirrored entity, in the `history` container (partition key `/entityId`): what the
 * mirror held, the operation that made it, when, the trace that carried it, and an RFC 6902 JSON Patch against the
 * version before. Built by history-recorder.ts, on the sync's write path and from the `entities` change feed. Pure.
 *
 * A record's id is its version's: `<syncedAt>~<syncHash>` — the same document version delivered twice (a replay, a
 * lease reset) yields the same id, so a create records it once; and ids sort by time within an entity's partition.
 */
import type { Entity } from '@backstage/catalog-model';
import { createPatch, type Operation } from 'rfc6902';
import { isDeepStrictEqual } from 'node:util';
import type { EntityDocument, LiveEntityDocument } from '../model/documents';

export type HistoryOperation = 'created' | 'updated' | 'deleted' | 'recreated';

export interface HistoryRecord {
  /** `<syncedAt>~<syncHash>`: one version, one id. */
  id: string;
  /** The mirror document's id (lower-cased `kind:namespace:name`): the partition key. */
  entityId: string;
  entityRef: string;
  kind: string;
  namespace: string;
  name: string;
  /** Backstage `metadata.uid` of this life of the entity (null for a tombstone of an entity never seen live here). */
  uid: string | null;
  operation: HistoryOperation;
  /** When the sync wrote this version into the mirror. */
  syncedAt: string;
  syncHash: string;
  /** The trace of the sync that wrote it (W3C trace id), to find it in Application Insights. */
  traceId?: string;
  /** The entity as mirrored — restricted as the mirror document was (`publication`). Absent for `deleted`. */
  entity?: Entity;
  publication?: 'envelope' | 'omit-fields';
  /**
   * RFC 6902 JSON Patch from the previous record's entity to this one's: on `updated`, and on `recreated` when the
   * new life replaced the old without a deletion in between. A `created` record, or one after a `deleted`, has the
   * whole entity and no diff.
   */
  diff?: Operation[];
  /** The id of the record before this one, when there is one. */
  previous?: string;
  recordedAt: string;
  /** Seconds until Cosmos DB removes the record (HISTORY_RETENTION_DAYS). */
  ttl: number;
}

/** The fields of the previous record that a new one is built against. */
export type PreviousRecord = Pick<HistoryRecord, 'id' | 'operation' | 'uid' | 'syncHash' | 'entity' | 'publication' | 'syncedAt'>;

/**
 * The version holds what the previous one held: the same life, the same entity, published alike. (The sync writes
 * such a version when only what it keeps about the entity changed, e.g. a stale `sourceEtag`; `syncHash` covers
 * `syncedAt` and so never matches between two writes.)
 */
function isSameContent(previous: PreviousRecord, doc: LiveEntityDocument): boolean {
  return previous.uid === doc.uid && previous.publication === doc.publication && isDeepStrictEqual(previous.entity, doc.entity);
}

/** The id of the record of a mirror document version. */
export function historyRecordId(doc: Pick<EntityDocument, 'syncedAt' | 'syncHash'>): string {
  return `${doc.syncedAt}~${doc.syncHash}`;
}

/** The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`). */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  const match = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(traceparent ?? '');
  return match?.[1];
}

/**
 * The record of `doc` given the record before it, or undefined when the version is no change in the entity's history
 * (a tombstone after a tombstone, or a rewrite of the same content).
 */
export function buildHistoryRecord(doc: EntityDocument, previous: PreviousRecord | undefined, options: { now: Date; ttlInSeconds: number }): HistoryRecord | undefined {
  const identity = {
    id: historyRecordId(doc),
    entityId: doc.id,
    entityRef: doc.entityRef,
    kind: doc.kind,
    namespace: doc.namespace,
    name: doc.name,
    syncedAt: doc.syncedAt,
    syncHash: doc.syncHash,
    ...(traceIdOf(doc.traceparent) && { traceId: traceIdOf(doc.traceparent) }),
    ...(previous && { previous: previous.id }),
    recordedAt: options.now.toISOString(),
    ttl: options.ttlInSeconds,
  };
  if (doc.deleted) {
    if (previous?.operation === 'deleted') return undefined;
    return { ...identity, uid: previous?.uid ?? doc.uid, operation: 'deleted' };
  }
  if (previous && previous.operation !== 'deleted' && isSameContent(previous, doc)) return undefined;
  const operation: HistoryOperation = !previous ? 'created' : previous.operation === 'deleted' || previous.uid !== doc.uid ? 'recreated' : 'updated';
  const before = previous?.operation === 'deleted' ? undefined : previous?.entity;
  const diff = before ? createPatch(before, doc.entity) : undefined;
  return {
    ...identity,
    uid: doc.uid,
    operation,
    entity: doc.entity,
    ...(doc.publication && { publication: doc.publication }),
    ...(diff && { diff }),
  };
}
