/**
 * The reconcile: makes the whole mirror equal to the catalog. It streams the catalog's `uid/etag` projection and the
 * mirror's index side by side, fetches only new or changed entities (in batches), writes them with bounded
 * concurrency, and tombstones what the catalog no longer has — unless the mass-deletion guard refuses. Entities whose
 * batch write lost a race go through the single-entity sync (engine.ts), which reads both sides again.
 */
import type { Entity } from '@backstage/catalog-model';
import pLimit from 'p-limit';
import { toEntityDocument, toTombstone } from '../model/documents';
import { toDocumentId } from '../model/refs';
import { chunk } from '../platform/collections';
import { RequestChargeTracker, type StoreCallOptions, type WriteOutcome } from '../platform/cosmos';
import { describeError, isTransient, OperationAbortedError } from '../platform/errors';
import { silentLogger, type Logger } from '../platform/logger';
import { abortOnly, type OperationOptions } from '../platform/options';
import { trackEvent } from '../platform/telemetry';
import type { CallOptions as CatalogCallOptions, CatalogProjectionItem } from './catalog-reader';
import { CONFLICT_STATUSES, type MirrorWriterOptions, type SyncEngine } from './engine';
import type { MirrorIndexItem, WriteOperation } from './entity-store';
import { evaluateDeletionGuard, type DeletionGuardDecision } from './guard';
import { ProjectionDiff } from './projection-diff';
import { SyncDispatch } from './sync-dispatch';
import { decideByAnnotations, SyncScope } from './scope';

export interface ReconcileOptions extends OperationOptions {
  /** Tombstone even when the mass-deletion guard refuses. */
  force?: boolean;
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
  /** What the sync scope (scope.ts) left out or restricted in this run. */
  scope: ReconcileScopeCounts;
  /** Refs that failed, at most 100, for the operator. */
  failures: Array<{ entityRef: string; error: string }>;
}

export interface ReconcileScopeCounts {
  /** Catalog entities the scope settings leave out: counted by the catalog, never fetched (0 when the settings select everything). */
  excludedBySetting: number;
  /** Catalog entities their owners keep out with the exclude annotation. */
  excludedByAnnotation: number;
  /** Entities mirrored as their envelope only. */
  envelopeOnly: number;
  /** Entities mirrored without the fields their owners omitted. */
  fieldsOmitted: number;
  /** Mirrored entities that left the scope, by reason: tombstoned by this run, or pending when the guard refused. */
  leftScope: { setting: number; annotation: number };
}

export interface ReconcilerOptions extends MirrorWriterOptions {
  /** The single-entity sync, for entities whose batch write lost a race. */
  engine: SyncEngine;
  /** Largest share of the live mirror one run may tombstone, 0–1. */
  maxDeleteRatio: number;
  /** Refs per Backstage by-refs request and per write batch. */
  fetchBatchSize: number;
  /** Batches in flight. */
  concurrency: number;
  /** Point writes in flight per batch (default 16). */
  writeConcurrency?: number;
  /**
   * A run with at least this many entities to fetch and write (an initial load, a re-stitched catalog) writes them —
   * and their history records — as batch requests, {@link BULK_GROUP_SIZE} at a time; 0 = never (default 1 000).
   */
  bulkMinEntities?: number;
}

/**
 * Entities per bulk group: read in `fetchBatchSize` requests (or whole, in the catalog's stream), written as batch
 * requests of 100 (the entity store's bulk write: its documents, then their history records). Four groups are in
 * flight, so that reads overlap writes; their memory is bounded by the groups (entities read whole in the stream wait
 * at most a group or two ahead of them), whatever the catalog's size. The batch requests in flight are the store's to
 * pace (one limit per container, following throttling), not the groups'.
 */
export const BULK_GROUP_SIZE = 1000;
const BULK_GROUPS_IN_FLIGHT = 4;

/** One operation's context: its abort signal, logger, Cosmos DB charges and Backstage requests (its own, not the process's). */
type Call = StoreCallOptions & { charge: RequestChargeTracker; logger: Logger; backstage: { requests: number } };

/** The catalog reader's options for a call: its abort signal, and its requests counted on it. */
function catalogOptions(call: Call, abortSignal: AbortSignal | undefined = call.abortSignal): CatalogCallOptions {
  return { ...(abortSignal && { abortSignal }), onRequest: () => (call.backstage.requests += 1) };
}

export class Reconciler {
  private readonly logger: Logger;
  private readonly now: () => Date;
  private readonly scope: SyncScope;

  constructor(private readonly options: ReconcilerOptions) {
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? (() => new Date());
    this.scope = options.scope ?? new SyncScope();
  }

  private trace(): string | undefined {
    return this.options.traceparent?.();
  }

  async reconcile(options: ReconcileOptions = {}): Promise<ReconcileResult> {
    const started = performance.now();
    const { catalog, store } = this.options;
    const settings = this.options;
    const abortSignal = options.abortSignal;
    const charge = new RequestChargeTracker();
    const logger = options.logger ?? this.logger;
    const call: Call = { charge, logger, backstage: { requests: 0 }, ...abortOnly(options) };
    const progress = options.onProgress ?? (() => {});
    const result = emptyResult();
    const scope = this.scope;
    const counts = result.scope;
    logger.info('Reconcile started', { force: options.force === true });

    // 1 and 2, side by side (they are independent, so a run costs the slower of the two, not their sum):
    // what the catalog has in scope — the cheap projection, filtered by the catalog itself when the settings narrow
    // the scope — and what the mirror has, diffed as they arrive (3): an entity the mirror holds as the catalog has
    // it is counted and dropped at once, so a run keeps only what differs.
    // (A restricted document's sourceEtag is a digest of what it publishes, never the catalog's etag, so restricted
    // entities are fetched every run and written only when what they publish changed.)
    const diff = new ProjectionDiff();
    const inMirror = diff.mirrored;
    const excludedByOwner = new Set<string>();
    let mirrorRead = 0;
    // If one stream fails, the other is stopped rather than left reading pages nobody will use.
    const streams = new AbortController();
    const streamSignal = abortSignal ? AbortSignal.any([abortSignal, streams.signal]) : streams.signal;

    // 5. Fetch what is new or changed, in batches, and write it: batch by batch after the deletion guard (4), or — for
    // many, an initial load or a re-stitched catalog — in bulk groups that start while the catalog still streams in:
    // once the mirror's index has been read whole, what the diff hands out is final, and the groups' reads and writes
    // overlap the rest of the stream instead of following it. (Writes never wait for the guard: it decides tombstones.)
    const limit = pLimit(settings.concurrency);
    const bulkMin = settings.bulkMinEntities ?? 1000;
    // Entities read whole in the stream, by id, until their group writes them (a group or two ahead: whenRoom).
    const prefetched = new Map<string, Entity>();
    const writes = new SyncDispatch<CatalogProjectionItem>({
      bulkMin,
      run: (group, bulk) => this.reconcileBatch(group, inMirror, result, call, bulk ? { bulk, fetchLimit: (fn) => limit(fn), prefetched } : { prefetched }),
      limit: (bulk) => (bulk ? pLimit(BULK_GROUPS_IN_FLIGHT) : limit),
      groupSize: (bulk) => (bulk ? BULK_GROUP_SIZE : settings.fetchBatchSize),
      onWritten: (done, total) => progress({ phase: 'write', done, total }),
      onFailure: () => streams.abort(),
      logger,
    });
    let mirrorComplete = false;
    // A bulk run that must fetch at least half of what it has seen reads the rest of the catalog whole, in the
    // stream (an initial load: every page after the first two at the default sizes), rather than its projection and
    // then its entities by ref: half the Backstage requests, and the catalog serializes each entity once, not twice.
    const readWhole = () => mirrorComplete && writes.isBulk && writes.handedOver * 2 >= diff.catalogCount;
    await Promise.all([
      (async () => {
        const stream = catalog.streamCatalog({ ...catalogOptions(call, streamSignal), ...(scope.predicate && { query: scope.predicate }), readWhole });
        for await (const page of stream) {
          for (const item of page.items) {
            result.seen += 1;
            const decision = decideByAnnotations(item.annotations);
            if (!decision.inScope) {
              counts.excludedByAnnotation += 1;
              excludedByOwner.add(item.id);
              continue;
            }
            if (decision.publication.form === 'envelope') counts.envelopeOnly += 1;
            if (decision.publication.form === 'omit') counts.fieldsOmitted += 1;
            diff.addCatalog(item);
          }
          progress({ phase: 'catalog', done: result.seen, total: result.seen });
          if (!mirrorComplete) continue;
          const toSync = diff.takeToSync();
          if (page.entities) {
            const read = new Map(page.items.map((item, index) => [item.id, page.entities![index]!]));
            for (const item of toSync) {
              const entity = read.get(item.id);
              if (entity) prefetched.set(item.id, entity);
            }
          }
          writes.offer(toSync);
          if (page.entities) await writes.whenRoom();
        }
      })(),
      (async () => {
        if (scope.predicate) counts.excludedBySetting = await catalog.countEntities({ $not: scope.predicate }, catalogOptions(call, streamSignal));
      })(),
      (async () => {
        for await (const page of store.streamIndex({ ...call, abortSignal: streamSignal })) {
          for (const item of page) diff.addMirror(item);
          mirrorRead += page.length;
          progress({ phase: 'mirror', done: mirrorRead, total: mirrorRead });
        }
        mirrorComplete = true;
        writes.offer(diff.completeMirror());
      })(),
    ]).catch(async (error: unknown) => {
      streams.abort();
      // Groups already writing finish (their writes are sound); none starts after this. A group's own failure is
      // what stopped the streams, and is the one to report.
      throw (await writes.stop()) ?? error;
    });

    result.unchanged = diff.unchanged;
    const toTombstone = await this.classifyDepartures(diff.departing(), excludedByOwner, counts, call);
    const guard = evaluateDeletionGuard({
      catalogCount: diff.catalogCount,
      liveMirrorCount: diff.liveMirrorCount,
      deleteCount: toTombstone.length,
      leftScope: counts.leftScope,
      maxDeleteRatio: settings.maxDeleteRatio,
      force: options.force === true,
    });
    result.deletionGuard = { ...guard, pendingTombstones: guard.allowed ? 0 : toTombstone.length };
    await writes.finish(diff.takeToSync());

    // 6. Tombstones, unless the guard refuses.
    if (guard.tripped) {
      const details = { reason: guard.reason, pendingTombstones: toTombstone.length };
      if (guard.allowed) logger.warn('Mass-deletion guard overridden by force', details);
      else logger.error('Mass-deletion guard refused to tombstone', details);
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
    result.backstageRequests = call.backstage.requests;
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
    for (const [reason, count] of [
      ['setting', counts.excludedBySetting],
      ['annotation', counts.excludedByAnnotation],
      ['envelope-only', counts.envelopeOnly],
      ['fields-omitted', counts.fieldsOmitted],
    ] as const) {
      m?.record('reconcile.scope', count, { reason });
    }
    const { failures, ...stats } = result;
    const summary = { ...stats, ...(failures.length > 0 && { failures: failures.slice(0, 10) }) };
    if (result.failed > 0) logger.warn('Reconcile finished', summary);
    else logger.info('Reconcile finished', summary);
    return result;
  }

  /**
   * The entities of a burst of events (a batch message, intake.ts), synced as the reconcile syncs a batch: the
   * mirror's index of them in one query first, then — for those whose event's etag the mirror does not hold already —
   * their full entities in one `by-refs` request per {@link ReconcilerOptions.fetchBatchSize}, and the writes with
   * `IfMatch` on what the index read (so nothing older than the mirror's version can be written, whatever else writes
   * the same entity meanwhile). Entities Backstage no longer has, or that left the scope, and writes that lost a race
   * go through the single-entity sync. Every ref is accounted for: in `failures` (all of them, unlike a reconcile's)
   * when it could not be synced.
   */
  async syncMany(items: ReadonlyArray<{ entityRef: string; etag?: string }>, options: ReconcileOptions = {}): Promise<ReconcileResult> {
    const started = performance.now();
    const charge = new RequestChargeTracker();
    const call: Call = { charge, logger: options.logger ?? this.logger, backstage: { requests: 0 }, ...abortOnly(options) };
    if (items.length > MAX_FAILURES_KEPT) throw new RangeError(`syncMany takes at most ${MAX_FAILURES_KEPT} entities (every failure is kept)`);
    const result = emptyResult();
    const wanted = new Map<string, { entityRef: string; etag?: string }>();
    for (const item of items) wanted.set(toDocumentId(item.entityRef), item);
    const inMirror = new Map((await this.options.store.indexOf([...wanted.keys()], call)).map((m) => [m.id, m]));
    const toSync: CatalogProjectionItem[] = [];
    for (const [id, item] of wanted) {
      result.seen += 1;
      const mirrored = inMirror.get(id);
      // The event named the version the mirror already holds: nothing to read.
      if (item.etag !== undefined && mirrored && !mirrored.deleted && mirrored.sourceEtag === item.etag) result.unchanged += 1;
      else toSync.push({ id, entityRef: item.entityRef, uid: undefined, etag: item.etag });
    }
    for (const batch of chunk(toSync, this.options.fetchBatchSize)) await this.reconcileBatch(batch, inMirror, result, call);
    result.requestCharge = round(charge.total);
    result.writes = ['create', 'replace'].reduce((n, op) => n + charge.count(op), 0);
    result.backstageRequests = call.backstage.requests;
    result.durationInMs = Math.round(performance.now() - started);
    for (const outcome of ['created', 'updated', 'unchanged', 'tombstoned', 'failed'] as const) {
      if (result[outcome] > 0) this.options.metrics?.increment('sync.entities', result[outcome], { outcome, path: 'batch' });
    }
    return result;
  }

  /**
   * Mirrored entities the in-scope catalog no longer has: deleted from the catalog, or out of the scope. The owner's
   * annotation is known from the projection; an entity the settings filtered out is told from a deleted one by asking
   * the catalog for those refs (one request per batch of departures, only when the settings narrow the scope). An
   * entity that is back in scope by then is left for the next run.
   */
  private async classifyDepartures(
    departing: MirrorIndexItem[],
    excludedByOwner: ReadonlySet<string>,
    counts: ReconcileScopeCounts,
    call: Call,
  ): Promise<MirrorIndexItem[]> {
    const out: MirrorIndexItem[] = [];
    const unknown: MirrorIndexItem[] = [];
    for (const item of departing) {
      if (excludedByOwner.has(item.id)) {
        counts.leftScope.annotation += 1;
        out.push(item);
      } else if (this.scope.restricted) {
        unknown.push(item);
      } else {
        out.push(item);
      }
    }
    for (const batch of chunk(unknown, this.options.fetchBatchSize)) {
      const entities = await this.options.catalog.getEntitiesByRefs(
        batch.map((item) => item.entityRef),
        catalogOptions(call),
      );
      entities.forEach((entity, index) => {
        const item = batch[index]!;
        if (!entity) return void out.push(item);
        const decision = this.scope.decide(entity);
        if (decision.inScope) return;
        counts.leftScope[decision.reason] += 1;
        out.push(item);
      });
    }
    return out;
  }

  /**
   * Fetches the batch's entities (one `by-refs` request per `fetchBatchSize`, under `fetchLimit` when given; those in
   * `prefetched` are taken from it instead) and writes those that changed — in bulk when told. A read that failed
   * transiently fails only its own entities.
   */
  private async reconcileBatch(
    batch: CatalogProjectionItem[],
    inMirror: ReadonlyMap<string, MirrorIndexItem>,
    result: ReconcileResult,
    call: Call,
    options: { bulk?: boolean; fetchLimit?: <T>(fn: () => Promise<T>) => Promise<T>; prefetched?: Map<string, Entity> } = {},
  ): Promise<void> {
    const fetchLimit = options.fetchLimit ?? (<T>(fn: () => Promise<T>) => fn());
    const entities = new Map<string, Entity | undefined>();
    const toFetch: CatalogProjectionItem[] = [];
    for (const item of batch) {
      const entity = options.prefetched?.get(item.id);
      if (entity) {
        entities.set(item.id, entity);
        options.prefetched!.delete(item.id);
      } else {
        toFetch.push(item);
      }
    }
    await Promise.all(
      chunk(toFetch, this.options.fetchBatchSize).map((part) =>
        fetchLimit(async () => {
          try {
            const fetched = await this.options.catalog.getEntitiesByRefs(
              part.map((item) => item.entityRef),
              catalogOptions(call),
            );
            part.forEach((item, index) => entities.set(item.id, fetched[index]));
          } catch (error) {
            if (!isTransient(error) || error instanceof OperationAbortedError) throw error;
            for (const item of part) this.recordFailure(result, item.entityRef, error, call.logger);
          }
        }),
      ),
    );

    const operations: WriteOperation[] = [];
    const fallbacks: string[] = [];
    const revived: boolean[] = [];
    for (const item of batch) {
      // A read that failed has no entry: its entities are counted as failed already.
      if (!entities.has(item.id)) continue;
      const entity = entities.get(item.id);
      if (!entity) {
        // Gone between the projection and the fetch: let the level-triggered path decide.
        fallbacks.push(item.entityRef);
        continue;
      }
      const decision = this.scope.decide(entity);
      if (!decision.inScope) {
        // Left the scope between the projection and the fetch: let the level-triggered path decide.
        fallbacks.push(item.entityRef);
        continue;
      }
      const doc = toEntityDocument(entity, this.now(), this.trace(), decision.publication);
      const mirrored = inMirror.get(doc.id);
      if (mirrored && !mirrored.deleted && mirrored.sourceEtag === doc.sourceEtag && mirrored.uid === doc.uid) {
        result.unchanged += 1;
        continue;
      }
      operations.push(mirrored ? { kind: 'replace', doc, ifMatch: mirrored._etag } : { kind: 'create', doc });
      revived.push(!mirrored || mirrored.deleted);
    }

    const writes = await this.write(operations, call, options.bulk === true);
    writes.forEach((write, index) => {
      const operation = operations[index]!;
      if (write.statusCode >= 200 && write.statusCode < 300) {
        if (revived[index]) result.created += 1;
        else result.updated += 1;
      } else if (CONFLICT_STATUSES.has(write.statusCode)) {
        fallbacks.push(operation.doc.entityRef);
      } else {
        this.recordFailure(result, operation.doc.entityRef, write.error, call.logger);
      }
    });
    await this.runFallbacks(fallbacks, result, call);
  }

  private async tombstoneBatch(
    batch: MirrorIndexItem[],
    result: ReconcileResult,
    call: Call,
  ): Promise<void> {
    const now = this.now();
    const operations: WriteOperation[] = batch.map((m) => ({
      kind: 'replace',
      doc: toTombstone(m, this.options.tombstoneTtlInSeconds, now, this.trace()),
      ifMatch: m._etag,
    }));
    const writes = await this.write(operations, call);
    const fallbacks: string[] = [];
    writes.forEach((write, index) => {
      const item = batch[index]!;
      if (write.statusCode >= 200 && write.statusCode < 300) result.tombstoned += 1;
      else if (CONFLICT_STATUSES.has(write.statusCode)) fallbacks.push(item.entityRef);
      else this.recordFailure(result, item.entityRef, write.error, call.logger);
    });
    await this.runFallbacks(fallbacks, result, call);
  }

  /**
   * Writes the batch, then records the versions that went in: a create as `created` (the mirror had no document), a
   * replace against the history (the index holds no content).
   */
  private async write(operations: WriteOperation[], call: Call, bulk = false): Promise<WriteOutcome[]> {
    if (operations.length === 0) return [];
    const writes = await this.options.store.writeMany(operations, { ...call, concurrency: this.options.writeConcurrency ?? 16, bulk });
    const written = operations
      .filter((_, index) => writes[index]!.statusCode >= 200 && writes[index]!.statusCode < 300)
      .map(({ kind, doc }) => (kind === 'create' ? { doc, replaced: null } : { doc }));
    if (this.options.history && written.length > 0) {
      const { requestCharge } = await this.options.history.recordWritten(written, { ...abortOnly(call), logger: call.logger, bulk });
      call.charge?.add('history', requestCharge);
    }
    return writes;
  }

  /** Entities whose batch write lost a race go through the single-entity path, which re-reads both sides. */
  private async runFallbacks(refs: string[], result: ReconcileResult, call: Call) {
    for (const entityRef of refs) {
      try {
        const outcome = (await this.options.engine.syncEntity(entityRef, call)).outcome;
        if (outcome === 'absent' || outcome === 'out-of-scope') continue;
        result[outcome] += 1;
      } catch (error) {
        if (error instanceof OperationAbortedError) throw error;
        this.recordFailure(result, entityRef, error, call.logger);
      }
    }
  }

  private recordFailure(result: ReconcileResult, entityRef: string, error: unknown, logger: Logger): void {
    result.failed += 1;
    if (result.failures.length < MAX_FAILURES_KEPT) result.failures.push({ entityRef, error: describeError(error) });
    logger.warn('Entity failed to sync during reconcile', { entityRef, error });
  }
}

/** Failures a result lists (a reconcile counts the rest); a {@link Reconciler.syncMany} batch fits whole. */
const MAX_FAILURES_KEPT = 100;

function emptyResult(): ReconcileResult {
  return {
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
    scope: { excludedBySetting: 0, excludedByAnnotation: 0, envelopeOnly: 0, fieldsOmitted: 0, leftScope: { setting: 0, annotation: 0 } },
    failures: [],
  };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
