/**
 * The change-feed projection: for each changed `entities` document, make the source's edges equal its relations,
 * writing only the difference; repair drift; never let one bad document stop or silently vanish from the feed.
 *
 * - Live document → edges derived from `entity.relations`; tombstone → no edges. One single-partition query reads
 *   the current edges; only additions, changes and removals are written (an unchanged entity writes nothing, a
 *   redelivered batch writes nothing).
 * - Drift: a document whose content no longer matches its own `syncHash` was edited by someone other than the
 *   sync. It is not projected; a re-sync of its ref is enqueued, and the restored document comes back through the
 *   feed. The sync's own writes always match their hash.
 * - A document that fails `attemptsPerDocument` times (or cannot be understood at all) is recorded as a
 *   projection failure — listed and replayed through the admin API — and the rest of the batch goes on. Only if
 *   even recording fails does the batch fail, so the host retries it and the checkpoint stays put.
 */
import pLimit from 'p-limit';
import { computeSyncHash, type EntityDocument, type SystemProperties } from '../model/documents';
import { formatEntityRef, fromDocumentId } from '../model/refs';
import { withRetries } from '../platform/backoff';
import { RequestChargeTracker, type StoreCallOptions } from '../platform/cosmos';
import { describeError, isTransient } from '../platform/errors';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { abortOnly, type OperationOptions } from '../platform/options';
import { contextFrom, inSpan, SpanKind, trackEvent } from '../platform/telemetry';
import { deriveEdges, diffEdges } from './derive';
import type { EdgeStore } from './edge-store';
import type { ProjectionFailureStore } from './failure-store';

/**
 * How long the projection's change-feed trigger waits before polling an idle feed again (its `feedPollDelay`): the
 * projection's latency when changes are rare, traded against the polls that find nothing. Chosen from
 * `npm run bench:feed-poll` (docs/performance.md#the-change-feeds-poll-delay): mirror write → edges p95 ≈ 0.5 s, about
 * 7 000 idle polls an hour per lease; 1 s would leave the p95 at the edge of its 1 s goal, 2 s (before) twice over it.
 */
export const PROJECTION_FEED_POLL_DELAY_IN_MS = 500;

export interface ProjectorOptions {
  edges: EdgeStore;
  failures: ProjectionFailureStore;
  /** Enqueues a re-sync of an entity whose mirror document drifted. */
  resync: (entityRef: string, reason: { id: string; etag: string | undefined }, options: OperationOptions) => Promise<void>;
  /** The entity's current mirror document (for replays), or undefined when the mirror has none. */
  readDocument: (id: string, options: OperationOptions) => Promise<EntityDocument | undefined>;
  logger: Logger;
  metrics?: Metrics;
  attemptsPerDocument?: number;
  concurrency?: number;
  retryBaseDelayInMs?: number;
  now?: () => Date;
}

export type DocumentOutcome = 'projected' | 'unchanged' | 'drift' | 'failed';

export interface ProjectionResult {
  documents: number;
  projected: number;
  unchanged: number;
  drifted: number;
  failed: number;
  edgesAdded: number;
  edgesRemoved: number;
  requestCharge: number;
}

type FeedDocument = EntityDocument & SystemProperties & { _lsn?: number };

export class EdgeProjector {
  private readonly now: () => Date;

  constructor(private readonly options: ProjectorOptions) {
    this.now = options.now ?? (() => new Date());
  }

  async projectBatch(documents: readonly unknown[], options: OperationOptions = {}): Promise<ProjectionResult> {
    const logger = options.logger ?? this.options.logger;
    const charge = new RequestChargeTracker();
    const result: ProjectionResult = { documents: documents.length, projected: 0, unchanged: 0, drifted: 0, failed: 0, edgesAdded: 0, edgesRemoved: 0, requestCharge: 0 };
    // The latest version of each document is all that matters.
    const latest = new Map<string, unknown>();
    const unidentified: unknown[] = [];
    for (const doc of documents) {
      const id = (doc as { id?: unknown })?.id;
      if (typeof id === 'string' && id.length > 0) latest.set(id, doc);
      else unidentified.push(doc);
    }
    for (const doc of unidentified) {
      await this.options.failures.record({ id: `unidentified:${Date.now()}`, error: 'a change-feed document without an id', document: doc });
      result.failed += 1;
    }
    const limit = pLimit(this.options.concurrency ?? 8);
    await Promise.all(
      [...latest.entries()].map(([id, doc]) =>
        limit(async () => {
          const feedDoc = doc as FeedDocument;
          // Continue the trace of the sync that wrote the document.
          const outcome = await inSpan(
            'projectEdges',
            { kind: SpanKind.SERVER, parent: contextFrom(typeof feedDoc.traceparent === 'string' ? feedDoc.traceparent : undefined), attributes: { 'entity.id': id } },
            () => this.projectWithRetries(feedDoc, { ...abortOnly(options), charge, logger }),
          );
          if (outcome.kind === 'failed') result.failed += 1;
          else if (outcome.kind === 'drift') result.drifted += 1;
          else if (outcome.added + outcome.removed === 0) result.unchanged += 1;
          else {
            result.projected += 1;
            result.edgesAdded += outcome.added;
            result.edgesRemoved += outcome.removed;
          }
        }),
      ),
    );
    result.requestCharge = Math.round(charge.total * 100) / 100;
    const m = this.options.metrics;
    m?.increment('edges.added', result.edgesAdded);
    m?.increment('edges.removed', result.edgesRemoved);
    if (result.drifted) m?.increment('projection.drift', result.drifted);
    if (result.failed) m?.increment('projection.failed', result.failed);
    logger.info('Edges projected', { operation: 'projectEdges', ...result });
    return result;
  }

  /** Projects one document now, from what the caller read (e.g. a replay); throws on failure. */
  async projectDocument(doc: FeedDocument, options: StoreCallOptions = {}): Promise<{ kind: 'projected' | 'drift'; added: number; removed: number }> {
    const logger = options.logger ?? this.options.logger;
    const id = doc.id;
    if (typeof doc.syncHash !== 'string' || computeSyncHash(doc as unknown as Record<string, unknown>) !== doc.syncHash) {
      const entityRef = refOf(doc);
      await this.options.resync(entityRef, { id, etag: doc._etag }, options);
      logger.warn('Mirror document drifted from what the sync wrote; re-sync enqueued', { operation: 'projectEdges', entityRef, id });
      trackEvent('DriftDetected', { entityRef });
      return { kind: 'drift', added: 0, removed: 0 };
    }
    const desired = doc.deleted === true ? [] : deriveEdges({ id, entityRef: doc.entityRef, kind: doc.kind }, doc.entity, this.now());
    const diff = diffEdges(await this.options.edges.edgesOf(id, options), desired);
    if (diff.upserts.length + diff.deletes.length > 0) {
      await this.options.edges.apply(id, diff, options);
      logger.debug('Edges of entity projected', { entityRef: doc.entityRef, added: diff.upserts.length, removed: diff.deletes.length });
    }
    return { kind: 'projected', added: diff.upserts.length, removed: diff.deletes.length };
  }

  /**
   * Projects recorded failures again from the entities' current mirror documents (a document that is gone has no
   * edges left to fix) and removes each record that succeeds. The admin replay endpoint and the scheduled maintenance
   * both use it, so a projection that failed during an outage is repaired without an operator.
   */
  async replayFailures(
    options: OperationOptions & { ids?: readonly string[]; max?: number } = {},
  ): Promise<{ replayed: string[]; failed: Array<{ id: string; error: string }> }> {
    const { failures } = this.options;
    const call = { ...abortOnly(options), ...(options.logger && { logger: options.logger }) };
    const targets = options.ids ?? (await failures.list(options.max ?? 100, call)).map((f) => f.id);
    const replayed: string[] = [];
    const failed: Array<{ id: string; error: string }> = [];
    for (const id of targets) {
      try {
        const doc = await this.options.readDocument(id, call);
        if (doc) await this.projectDocument(doc, call);
        await failures.remove(id, call);
        replayed.push(id);
      } catch (error) {
        failed.push({ id, error: describeError(error) });
      }
    }
    return { replayed, failed };
  }

  /** Projects one document, retrying transient failures; records it as a failure when they do not heal. */
  private async projectWithRetries(doc: FeedDocument, options: StoreCallOptions & { logger: Logger }) {
    const attempts = this.options.attemptsPerDocument ?? 3;
    try {
      return await withRetries(() => this.projectDocument(doc, options), {
        maxRetries: attempts - 1,
        baseDelayInMs: this.options.retryBaseDelayInMs ?? 200,
        maxDelayInMs: 5_000,
        ...abortOnly(options),
        // Errors that cannot heal (a document we cannot understand) are not retried.
        shouldRetry: (error) => isTransient(error),
      });
    } catch (error) {
      if (options.abortSignal?.aborted) throw error;
      await this.options.failures.record({ id: doc.id, entityRef: safeRef(doc), error: describeError(error), lsn: doc._lsn, etag: doc._etag }, options);
      options.logger.error('Projection of a document failed; recorded for replay', { operation: 'projectEdges', id: doc.id, error });
      return { kind: 'failed' as const, added: 0, removed: 0 };
    }
  }
}

function refOf(doc: FeedDocument): string {
  if (typeof doc.entityRef === 'string' && doc.entityRef.length > 0) return doc.entityRef;
  return formatEntityRef(fromDocumentId(doc.id));
}

function safeRef(doc: FeedDocument): string | undefined {
  try {
    return refOf(doc);
  } catch {
    return undefined;
  }
}
