/**
 * The sync engine: makes the mirror equal to the catalog.
 *
 * - `syncEntity(ref)` is level-triggered: it ignores what an event said and reads Backstage's current
 *   entity. It skips unchanged entities (equal `sourceEtag`), writes with optimistic concurrency (`IfMatch`
 *   on the `_etag` it read, create when absent) and starts over when another writer got there first, so
 *   the last successful writer always fetched after the previous write. A 404 from Backstage tombstones.
 * - `reconcile()` diffs the catalog's `uid/etag` projection against the mirror's index, fetches only new or
 *   changed entities (in batches), writes them with bounded concurrency, and tombstones
 *   what the catalog no longer has — unless the mass-deletion guard refuses.
 */
import type { Entity } from '@backstage/catalog-model';
import pLimit from 'p-limit';
import type { CatalogProjectionItem, CatalogReader } from './catalog-reader';
import {
  EntityStore,
  RequestChargeTracker,
  statusOf,
  type MirrorIndexItem,
  type WriteOperation,
} from '../platform/cosmos';
import { computeSyncHash, isTombstone, toEntityDocument, toTombstone, type EntityDocument } from '../model/documents';
import { ConcurrencyConflictError, CosmosOperationError, describeError, isTransient, OperationAbortedError } from '../platform/errors';
import { evaluateDeletionGuard, type DeletionGuardDecision } from './guard';
import { silentLogger, type Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { formatEntityRef, parseEntityRef, toDocumentId } from '../model/refs';
import { trackEvent } from '../platform/telemetry';

export type SyncOutcome = 'created' | 'updated' | 'unchanged' | 'tombstoned' | 'absent';

export interface SyncResult {
  entityRef: string;
  id: string;
  outcome: SyncOutcome;
  /** Optimistic-concurrency attempts used (1 = no conflict). */
  attempts: number;
  /** Whether Backstage was read (false when an event's etag already matched the mirror). */
  readBackstage: boolean;
  requestCharge: number;
}

export interface SyncEntityOptions {
  abortSignal?: AbortSignal;
  /** The etag an event carried; equal to the mirror's `sourceEtag` → done without reading Backstage. */
  knownEtag?: string;
  charge?: RequestChargeTracker;
}

export interface ReconcileOptions {
  /** Tombstone even when the mass-deletion guard refuses. */
  force?: boolean;
  abortSignal?: AbortSignal;
  onProgress?: (progress: ReconcileProgress) => void;
}

export interface ReconcileProgress {
  phase: 'catalog' | 'mirror' | 'write' | 'tombstone' | 'done';
  done: number;
  total: number;
}

export interface ReconcileResult {
  /** Entities the catalog returned. */
  seen: number;
  created: number;
  updated: number;
  unchanged: number;
  tombstoned: number;
  failed: number;
  /** Write operations sent to Cosmos (creates, replaces, tombstones; retries included). */
  writes: number;
  /** Request units this run consumed. */
  requestCharge: number;
  /** HTTP requests this run sent to Backstage (retries included). */
  backstageRequests: number;
  durationInMs: number;
  deletionGuard: DeletionGuardDecision & { pendingTombstones: number };
  /** Refs that failed, at most 100, for the operator. */
  failures: Array<{ entityRef: string; error: string }>;
}

export interface SyncEngineOptions {
  catalog: CatalogReader;
  store: EntityStore;
  logger?: Logger;
  metrics?: Metrics;
  tombstoneTtlInSeconds: number;
  /** Optimistic-concurrency attempts per entity before giving up. */
  maxAttempts: number;
  reconcile: {
    maxDeleteRatio: number;
    fetchBatchSize: number;
    concurrency: number;
    writeMaxRetries: number;
    /** Point writes in flight per batch. */
    writeConcurrency?: number;
    retryBaseDelayInMs?: number;
    retryMaxDelayInMs?: number;
  };
  now?: () => Date;
  /** The active trace, stamped on written documents (telemetry). */
  traceparent?: () => string | undefined;
}

const CONFLICT_STATUSES = new Set([404, 409, 412]);

export class SyncEngine {
  private readonly logger: Logger;
  private readonly now: () => Date;

  constructor(private readonly options: SyncEngineOptions) {
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? (() => new Date());
  }

  private trace(): string | undefined {
    return this.options.traceparent?.();
  }

  async syncEntity(ref: string, options: SyncEntityOptions = {}): Promise<SyncResult> {
    const name = parseEntityRef(ref);
    const id = toDocumentId(name);
    const entityRef = formatEntityRef(name);
    const { store, catalog, maxAttempts } = this.options;
    const charge = options.charge ?? new RequestChargeTracker();
    const before = charge.total;
    const call = { charge, ...(options.abortSignal && { abortSignal: options.abortSignal }) };
    const done = (outcome: SyncOutcome, attempts: number, readBackstage: boolean): SyncResult => {
      this.options.metrics?.increment('sync.entities', 1, { outcome, path: 'entity' });
      return { entityRef, id, outcome, attempts, readBackstage, requestCharge: charge.total - before };
    };

    for (let attempt = 1; attempt <= maxAttempts; attempt += 1) {
      const current = await store.read(id, call);
      if (attempt === 1 && options.knownEtag !== undefined && current && !isTombstone(current) && current.sourceEtag === options.knownEtag && isIntact(current)) {
        return done('unchanged', attempt, false);
      }
      const entity = await catalog.getEntityByRef(entityRef, options.abortSignal ? { abortSignal: options.abortSignal } : {});

      if (!entity) {
        if (!current || isTombstone(current)) return done('absent', attempt, true);
        try {
          await store.replace(toTombstone(current, this.options.tombstoneTtlInSeconds, this.now(), this.trace()), current._etag!, call);
          return done('tombstoned', attempt, true);
        } catch (error) {
          if (isConflict(error)) continue;
          throw error;
        }
      }

      // Same version and untouched since the sync wrote it: nothing to do. (A document someone edited in the
      // mirror no longer matches its syncHash and is rewritten from Backstage: drift repair.)
      if (current && !isTombstone(current) && isSameVersion(current, entity) && isIntact(current)) return done('unchanged', attempt, true);
      const doc = toEntityDocument(entity, this.now(), this.trace());
      try {
        if (current) await store.replace(doc, current._etag!, call);
        else await store.create(doc, call);
        return done(current && !isTombstone(current) ? 'updated' : 'created', attempt, true);
      } catch (error) {
        if (isConflict(error)) {
          this.logger.debug('Concurrent write detected; starting over', { entityRef, attempt });
          continue;
        }
        throw error;
      }
    }
    this.options.metrics?.increment('sync.conflicts_exhausted', 1);
    throw new ConcurrencyConflictError(entityRef, maxAttempts);
  }

  async reconcile(options: ReconcileOptions = {}): Promise<ReconcileResult> {
    const started = performance.now();
    const { catalog, store, reconcile: settings } = this.options;
    const abortSignal = options.abortSignal;
    const charge = new RequestChargeTracker();
    const call = { charge, ...(abortSignal && { abortSignal }) };
    const backstageBefore = catalog.requestCount;
    const progress = options.onProgress ?? (() => {});
    const result: ReconcileResult = {
      seen: 0,
      created: 0,
      updated: 0,
      unchanged: 0,
      tombstoned: 0,
      failed: 0,
      writes: 0,
      requestCharge: 0,
      backstageRequests: 0,
      durationInMs: 0,
      deletionGuard: { allowed: true, tripped: false, forced: false, pendingTombstones: 0 },
      failures: [],
    };
    this.logger.info('Reconcile started', { force: options.force === true });

    // 1 and 2, side by side (they are independent, so a run costs the slower of the two, not their sum):
    // what the catalog has — the cheap projection, never full entities — and what the mirror has.
    const inCatalog = new Map<string, CatalogProjectionItem>();
    const inMirror = new Map<string, MirrorIndexItem>();
    // If one stream fails, the other is stopped rather than left reading pages nobody will use.
    const streams = new AbortController();
    const streamSignal = abortSignal ? AbortSignal.any([abortSignal, streams.signal]) : streams.signal;
    await Promise.all([
      (async () => {
        for await (const page of catalog.streamProjection({ abortSignal: streamSignal })) {
          for (const item of page) inCatalog.set(item.id, item);
          progress({ phase: 'catalog', done: inCatalog.size, total: inCatalog.size });
        }
      })(),
      (async () => {
        for await (const page of store.streamIndex({ ...call, abortSignal: streamSignal })) {
          for (const item of page) inMirror.set(item.id, item);
          progress({ phase: 'mirror', done: inMirror.size, total: inMirror.size });
        }
      })(),
    ]).catch((error: unknown) => {
      streams.abort();
      throw error;
    });
    result.seen = inCatalog.size;

    // 3. The diff.
    const toSync: CatalogProjectionItem[] = [];
    for (const item of inCatalog.values()) {
      const mirrored = inMirror.get(item.id);
      if (mirrored && !mirrored.deleted && mirrored.sourceEtag === (item.etag ?? null) && mirrored.uid === (item.uid ?? null)) {
        result.unchanged += 1;
      } else {
        toSync.push(item);
      }
    }
    const live = [...inMirror.values()].filter((m) => !m.deleted);
    const toTombstone = live.filter((m) => !inCatalog.has(m.id));
    const guard = evaluateDeletionGuard({
      catalogCount: inCatalog.size,
      liveMirrorCount: live.length,
      deleteCount: toTombstone.length,
      maxDeleteRatio: settings.maxDeleteRatio,
      force: options.force === true,
    });
    result.deletionGuard = { ...guard, pendingTombstones: guard.allowed ? 0 : toTombstone.length };

    // 4. Fetch what is new or changed, in batches, and write it.
    const limit = pLimit(settings.concurrency);
    const batches = chunk(toSync, settings.fetchBatchSize);
    let written = 0;
    await Promise.all(
      batches.map((batch) =>
        limit(async () => {
          await this.reconcileBatch(batch, inMirror, result, call);
          written += batch.length;
          progress({ phase: 'write', done: written, total: toSync.length });
        }),
      ),
    );

    // 5. Tombstones, unless the guard refuses.
    if (guard.tripped) {
      const log = guard.allowed ? this.logger.warn : this.logger.error;
      log.call(this.logger, guard.allowed ? 'Mass-deletion guard overridden by force' : 'Mass-deletion guard refused to tombstone', {
        reason: guard.reason,
        pendingTombstones: toTombstone.length,
      });
      this.options.metrics?.increment('reconcile.guard_tripped', 1, { forced: guard.forced });
    }
    if (guard.allowed && toTombstone.length > 0) {
      let tombstoned = 0;
      await Promise.all(
        chunk(toTombstone, settings.fetchBatchSize).map((batch) =>
          limit(async () => {
            await this.tombstoneBatch(batch, result, call);
            tombstoned += batch.length;
            progress({ phase: 'tombstone', done: tombstoned, total: toTombstone.length });
          }),
        ),
      );
    }

    result.requestCharge = round(charge.total);
    result.writes = ['create', 'replace'].reduce((n, op) => n + charge.count(op), 0);
    result.backstageRequests = catalog.requestCount - backstageBefore;
    result.durationInMs = Math.round(performance.now() - started);
    progress({ phase: 'done', done: result.seen, total: result.seen });
    const m = this.options.metrics;
    m?.record('reconcile.duration', result.durationInMs);
    m?.increment('reconcile.runs', 1, { result: result.failed > 0 ? 'failures' : guard.tripped && !guard.allowed ? 'guarded' : 'ok' });
    trackEvent('ReconcileCompleted', {
      seen: result.seen,
      created: result.created,
      updated: result.updated,
      unchanged: result.unchanged,
      tombstoned: result.tombstoned,
      failed: result.failed,
      requestCharge: result.requestCharge,
      durationInMs: result.durationInMs,
      guardTripped: guard.tripped && !guard.allowed,
    });
    for (const outcome of ['created', 'updated', 'unchanged', 'tombstoned', 'failed'] as const) {
      if (result[outcome] > 0) m?.increment('sync.entities', result[outcome], { outcome, path: 'reconcile' });
    }
    const { failures, ...stats } = result;
    (result.failed > 0 ? this.logger.warn : this.logger.info).call(this.logger, 'Reconcile finished', {
      ...stats,
      ...(failures.length > 0 && { failures: failures.slice(0, 10) }),
    });
    return result;
  }

  private async reconcileBatch(
    batch: CatalogProjectionItem[],
    inMirror: Map<string, MirrorIndexItem>,
    result: ReconcileResult,
    call: { charge: RequestChargeTracker; abortSignal?: AbortSignal },
  ): Promise<void> {
    let entities: Array<Entity | undefined>;
    try {
      entities = await this.options.catalog.getEntitiesByRefs(
        batch.map((item) => item.entityRef),
        call.abortSignal ? { abortSignal: call.abortSignal } : {},
      );
    } catch (error) {
      if (!isTransient(error) || error instanceof OperationAbortedError) throw error;
      for (const item of batch) this.recordFailure(result, item.entityRef, error);
      return;
    }

    const operations: WriteOperation[] = [];
    const fallbacks: string[] = [];
    const revived: boolean[] = [];
    entities.forEach((entity, index) => {
      const item = batch[index]!;
      if (!entity) {
        // Gone between the projection and the fetch: let the level-triggered path decide.
        fallbacks.push(item.entityRef);
        return;
      }
      const doc = toEntityDocument(entity, this.now(), this.trace());
      const mirrored = inMirror.get(doc.id);
      if (mirrored && !mirrored.deleted && mirrored.sourceEtag === doc.sourceEtag && mirrored.uid === doc.uid) {
        result.unchanged += 1;
        return;
      }
      operations.push(mirrored ? { kind: 'replace', doc, ifMatch: mirrored._etag } : { kind: 'create', doc });
      revived.push(!mirrored || mirrored.deleted);
    });

    const writes = await this.writeOrFail(operations, result, call);
    writes.forEach((write, index) => {
      const operation = operations[index]!;
      if (write.statusCode >= 200 && write.statusCode < 300) {
        if (revived[index]) result.created += 1;
        else result.updated += 1;
      } else if (CONFLICT_STATUSES.has(write.statusCode)) {
        fallbacks.push(operation.doc.entityRef);
      } else {
        this.recordFailure(result, operation.doc.entityRef, write.error);
      }
    });
    await this.runFallbacks(fallbacks, result, call);
  }

  private async tombstoneBatch(
    batch: MirrorIndexItem[],
    result: ReconcileResult,
    call: { charge: RequestChargeTracker; abortSignal?: AbortSignal },
  ): Promise<void> {
    const now = this.now();
    const operations: WriteOperation[] = batch.map((m) => ({
      kind: 'replace',
      doc: toTombstone(m, this.options.tombstoneTtlInSeconds, now, this.trace()),
      ifMatch: m._etag,
    }));
    const writes = await this.writeOrFail(operations, result, call);
    const fallbacks: string[] = [];
    writes.forEach((write, index) => {
      const item = batch[index]!;
      if (write.statusCode >= 200 && write.statusCode < 300) result.tombstoned += 1;
      else if (CONFLICT_STATUSES.has(write.statusCode)) fallbacks.push(item.entityRef);
      else this.recordFailure(result, item.entityRef, write.error);
    });
    await this.runFallbacks(fallbacks, result, call);
  }

  /** Writes a batch; a whole-batch failure that is transient marks every operation failed instead of aborting the run. */
  private async writeOrFail(
    operations: WriteOperation[],
    result: ReconcileResult,
    call: { charge: RequestChargeTracker; abortSignal?: AbortSignal },
  ) {
    if (operations.length === 0) return [];
    const s = this.options.reconcile;
    try {
      return await this.options.store.writeMany(
        operations,
        { maxRetries: s.writeMaxRetries, baseDelayInMs: s.retryBaseDelayInMs ?? 500, maxDelayInMs: s.retryMaxDelayInMs ?? 30_000, concurrency: s.writeConcurrency ?? 16 },
        call,
      );
    } catch (error) {
      if (!isTransient(error)) throw error;
      return operations.map(() => ({ statusCode: statusOf((error as CosmosOperationError).cause) ?? 0, error: error as CosmosOperationError }));
    }
  }

  /** Entities whose batch write lost a race go through the single-entity path, which re-reads both sides. */
  private async runFallbacks(refs: string[], result: ReconcileResult, call: { charge: RequestChargeTracker; abortSignal?: AbortSignal }) {
    for (const entityRef of refs) {
      try {
        const outcome = (await this.syncEntity(entityRef, call)).outcome;
        if (outcome === 'absent') continue;
        result[outcome] += 1;
      } catch (error) {
        if (error instanceof OperationAbortedError) throw error;
        this.recordFailure(result, entityRef, error);
      }
    }
  }

  private recordFailure(result: ReconcileResult, entityRef: string, error: unknown): void {
    result.failed += 1;
    if (result.failures.length < 100) result.failures.push({ entityRef, error: describeError(error) });
    this.logger.warn('Entity failed to sync during reconcile', { entityRef, error });
  }
}

/** The document still holds exactly what the sync wrote. */
function isIntact(doc: EntityDocument): boolean {
  return computeSyncHash(doc as unknown as Record<string, unknown>) === doc.syncHash;
}

function isSameVersion(doc: { sourceEtag: string | null; uid: string | null }, entity: Entity): boolean {
  return doc.sourceEtag === (entity.metadata.etag ?? null) && doc.uid === (entity.metadata.uid ?? null);
}

function isConflict(error: unknown): boolean {
  return error instanceof CosmosOperationError && error.statusCode !== undefined && CONFLICT_STATUSES.has(error.statusCode);
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
