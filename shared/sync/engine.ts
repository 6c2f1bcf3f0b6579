/**
 * The sync of one entity: makes its mirror document equal to what the catalog has now.
 *
 * Level-triggered: it ignores what an event said and reads Backstage's current entity. It skips unchanged entities
 * (equal `sourceEtag` and `uid`, document intact), writes with optimistic concurrency (`IfMatch` on the `_etag` it
 * read, create when absent) and starts over when another writer got there first, so the last successful writer
 * always fetched after the previous write. A 404 from Backstage tombstones. The whole-catalog diff is reconcile.ts.
 */
import { computeSyncHash, isTombstone, toEntityDocument, toTombstone, type EntityDocument, type LiveEntityDocument } from '../model/documents';
import { formatEntityRef, parseEntityRef, toDocumentId } from '../model/refs';
import { RequestChargeTracker, type StoreCallOptions } from '../platform/cosmos';
import { ConcurrencyConflictError, CosmosOperationError } from '../platform/errors';
import { silentLogger, type Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { abortOnly, type OperationOptions } from '../platform/options';
import type { WrittenVersion } from '../history/history-recorder';
import type { CatalogReader } from './catalog-reader';
import type { EntityReads } from './entity-reads';
import type { EntityStore } from './entity-store';
import { SyncScope, type ScopeExclusion } from './scope';

/** `out-of-scope`: the sync scope excludes the entity (scope.ts); the mirror was left as it was. */
export type SyncOutcome = 'created' | 'updated' | 'unchanged' | 'tombstoned' | 'absent' | 'out-of-scope';

export interface SyncResult {
  entityRef: string;
  id: string;
  outcome: SyncOutcome;
  /** Optimistic-concurrency attempts used (1 = no conflict). */
  attempts: number;
  /** Whether Backstage was read (false when an event's etag already matched the mirror). */
  readBackstage: boolean;
  requestCharge: number;
  /** Why the scope excluded the entity: with `out-of-scope`, and with `tombstoned` when its owner's annotation did. */
  scope?: ScopeExclusion;
}

export interface SyncEntityOptions extends StoreCallOptions {
  /** The etag an event carried; equal to the mirror's `sourceEtag` → done without reading Backstage. */
  knownEtag?: string;
}

/** What the sync and the reconcile share: where entities come from and go to, and how documents are stamped. */
export interface MirrorWriterOptions {
  catalog: CatalogReader;
  store: EntityStore;
  logger?: Logger;
  metrics?: Metrics;
  tombstoneTtlInSeconds: number;
  now?: () => Date;
  /** The active trace, stamped on written documents (telemetry). */
  traceparent?: () => string | undefined;
  /** What is mirrored, and how much of each entity; everything, whole, by default. */
  scope?: SyncScope;
  /** Where each version written is recorded (the entity history); none by default. */
  history?: VersionHistory;
}

/** The entity history's write path (history/history-recorder.ts): told of each version once it is in the mirror. */
export interface VersionHistory {
  /** Never throws: a version it could not record is left to the change feed. */
  recordWritten(versions: readonly WrittenVersion[], options?: OperationOptions & { bulk?: boolean }): Promise<{ requestCharge: number }>;
}

export interface SyncEngineOptions extends MirrorWriterOptions {
  /** Optimistic-concurrency attempts per entity before giving up. */
  maxAttempts: number;
  /** Where single entities are read from; `catalog` itself by default (the runtime coalesces them: entity-reads.ts). */
  reads?: EntityReads;
}

/** Cosmos statuses that mean another writer got there first: read both sides again. */
export const CONFLICT_STATUSES: ReadonlySet<number> = new Set([404, 409, 412]);

export class SyncEngine {
  private readonly logger: Logger;
  private readonly now: () => Date;
  private readonly scope: SyncScope;

  constructor(private readonly options: SyncEngineOptions) {
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? (() => new Date());
    this.scope = options.scope ?? new SyncScope();
  }

  async syncEntity(ref: string, options: SyncEntityOptions = {}): Promise<SyncResult> {
    const name = parseEntityRef(ref);
    const id = toDocumentId(name);
    const entityRef = formatEntityRef(name);
    const { store, maxAttempts } = this.options;
    const reads = this.options.reads ?? this.options.catalog;
    const charge = options.charge ?? new RequestChargeTracker();
    const before = charge.total;
    const call: StoreCallOptions = { ...abortOnly(options), charge };
    const logger = options.logger ?? this.logger;
    const trace = this.options.traceparent?.();
    const done = (outcome: SyncOutcome, attempts: number, readBackstage: boolean, scope?: ScopeExclusion): SyncResult => {
      this.options.metrics?.increment('sync.entities', 1, { outcome, path: 'entity', ...(scope && { scope }) });
      return { entityRef, id, outcome, attempts, readBackstage, requestCharge: charge.total - before, ...(scope && { scope }) };
    };

    // Kinds and namespaces the settings exclude are decided from the ref alone: Backstage is not asked. A mirrored
    // copy stays until the reconcile, which narrows the mirror to a changed scope under the mass-deletion guard.
    if (!this.scope.includesRef(name)) return done('out-of-scope', 0, false, 'setting');

    for (let attempt = 1; attempt <= maxAttempts; attempt += 1) {
      const current = await store.read(id, call);
      if (attempt === 1 && options.knownEtag !== undefined && current && !isTombstone(current) && current.sourceEtag === options.knownEtag && isIntact(current)) {
        return done('unchanged', attempt, false);
      }
      const entity = await reads.getEntityByRef(entityRef, abortOnly(options));
      const decision = entity ? this.scope.decide(entity) : undefined;
      if (decision && !decision.inScope && decision.reason === 'setting') return done('out-of-scope', attempt, true, 'setting');

      // Gone from the catalog, or its owner took it out of the mirror: tombstoned alike.
      if (!entity || !decision?.inScope) {
        const reason = decision && !decision.inScope ? decision.reason : undefined;
        if (!current || isTombstone(current)) return reason ? done('out-of-scope', attempt, true, reason) : done('absent', attempt, true);
        try {
          const tombstone = toTombstone(current, this.options.tombstoneTtlInSeconds, this.now(), trace);
          await store.replace(tombstone, current._etag!, call);
          await this.recordHistory({ doc: tombstone, replaced: current }, call, logger);
          return done('tombstoned', attempt, true, reason);
        } catch (error) {
          if (isConflict(error)) continue;
          throw error;
        }
      }

      // Same version and untouched since the sync wrote it: nothing to do. (A document someone edited in the
      // mirror no longer matches its syncHash and is rewritten from Backstage: drift repair.)
      const doc = toEntityDocument(entity, this.now(), trace, decision.publication);
      if (current && !isTombstone(current) && isSameVersion(current, doc) && isIntact(current)) return done('unchanged', attempt, true);
      try {
        if (current) await store.replace(doc, current._etag!, call);
        else await store.create(doc, call);
        await this.recordHistory({ doc, replaced: current ?? null }, call, logger);
        return done(current && !isTombstone(current) ? 'updated' : 'created', attempt, true);
      } catch (error) {
        if (isConflict(error)) {
          logger.debug('Concurrent write detected; starting over', { entityRef, attempt });
          continue;
        }
        throw error;
      }
    }
    this.options.metrics?.increment('sync.conflicts_exhausted', 1);
    throw new ConcurrencyConflictError(entityRef, maxAttempts);
  }

  /** The version just written goes into the history, built against the document it replaced (no query). */
  private async recordHistory(version: WrittenVersion, call: StoreCallOptions, logger: Logger): Promise<void> {
    if (!this.options.history) return;
    const { requestCharge } = await this.options.history.recordWritten([version], { ...abortOnly(call), logger });
    call.charge?.add('history', requestCharge);
  }
}

/** The document still holds exactly what the sync wrote. */
function isIntact(doc: EntityDocument): boolean {
  return computeSyncHash(doc as unknown as Record<string, unknown>) === doc.syncHash;
}

/** The mirror holds this version of what the catalog publishes (its etag, or a restricted document's digest). */
function isSameVersion(doc: { sourceEtag: string | null; uid: string | null }, next: LiveEntityDocument): boolean {
  return doc.sourceEtag === next.sourceEtag && doc.uid === next.uid;
}

function isConflict(error: unknown): boolean {
  return error instanceof CosmosOperationError && error.statusCode !== undefined && CONFLICT_STATUSES.has(error.statusCode);
}
