/**
 * The `entities` change feed → the `history` container: one record per version the feed delivers (record.ts).
 *
 * - Idempotent: a record's id is its version's, so a replayed batch (a retry, a lease reset, a second delivery)
 *   records nothing new.
 * - Each version is built against the record before it in time (one single-partition query), so a version that
 *   arrives late still gets the right operation and diff.
 * - A document whose content does not match its `syncHash` was edited by someone other than the sync (the edge
 *   projection repairs it); it is no version of the entity and is not recorded.
 * - A failure that does not heal within a few retries fails the batch, so the host retries it without moving the
 *   checkpoint (the records already written are not written twice).
 *
 * What it cannot see: the change feed delivers each document's latest version, so two versions of one entity written
 * between two reads of the feed arrive as the later one (whose diff then spans both).
 */
import pLimit from 'p-limit';
import { computeSyncHash, type EntityDocument } from '../model/documents';
import { withRetries } from '../platform/backoff';
import { RequestChargeTracker, type StoreCallOptions } from '../platform/cosmos';
import { isTransient } from '../platform/errors';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { abortOnly, type OperationOptions } from '../platform/options';
import type { HistoryStore } from './history-store';
import { buildHistoryRecord } from './record';

export interface HistoryRecorderOptions {
  store: HistoryStore;
  logger: Logger;
  metrics?: Metrics;
  /** How long records are kept (HISTORY_RETENTION_DAYS). */
  retentionInSeconds: number;
  concurrency?: number;
  attemptsPerDocument?: number;
  retryBaseDelayInMs?: number;
  now?: () => Date;
}

export interface HistoryBatchResult {
  documents: number;
  recorded: number;
  /** Versions already recorded (a replay). */
  duplicates: number;
  /** Versions that are no change (a rewrite of the same content, a tombstone after a tombstone). */
  unchanged: number;
  /** Documents edited outside the sync, or not mirror documents at all. */
  skipped: number;
  requestCharge: number;
}

export class HistoryRecorder {
  private readonly now: () => Date;

  constructor(private readonly options: HistoryRecorderOptions) {
    this.now = options.now ?? (() => new Date());
  }

  async recordBatch(documents: readonly unknown[], options: OperationOptions = {}): Promise<HistoryBatchResult> {
    const logger = options.logger ?? this.options.logger;
    const charge = new RequestChargeTracker();
    const result: HistoryBatchResult = { documents: documents.length, recorded: 0, duplicates: 0, unchanged: 0, skipped: 0, requestCharge: 0 };
    // One entity's versions in feed order, one after the other; entities side by side.
    const byEntity = new Map<string, EntityDocument[]>();
    for (const doc of documents) {
      if (!isVersion(doc)) {
        result.skipped += 1;
        continue;
      }
      byEntity.set(doc.id, [...(byEntity.get(doc.id) ?? []), doc]);
    }
    const limit = pLimit(this.options.concurrency ?? 8);
    const call: StoreCallOptions = { ...abortOnly(options), charge, logger };
    await Promise.all(
      [...byEntity.values()].map((versions) =>
        limit(async () => {
          for (const doc of versions) {
            const outcome = await withRetries(() => this.recordVersion(doc, call), {
              maxRetries: (this.options.attemptsPerDocument ?? 3) - 1,
              baseDelayInMs: this.options.retryBaseDelayInMs ?? 200,
              maxDelayInMs: 5_000,
              ...abortOnly(options),
              shouldRetry: (error) => isTransient(error),
            });
            result[outcome] += 1;
            if (outcome === 'recorded') this.options.metrics?.increment('history.records');
          }
        }),
      ),
    );
    result.requestCharge = Math.round(charge.total * 100) / 100;
    if (result.duplicates) this.options.metrics?.increment('history.duplicates', result.duplicates);
    logger.info('History recorded', { operation: 'recordHistory', ...result });
    return result;
  }

  private async recordVersion(doc: EntityDocument, options: StoreCallOptions): Promise<'recorded' | 'duplicates' | 'unchanged'> {
    const { store } = this.options;
    const previous = await store.previousOf(doc.id, doc.syncedAt, options);
    const record = buildHistoryRecord(doc, previous, { now: this.now(), ttlInSeconds: this.options.retentionInSeconds });
    if (!record) return 'unchanged';
    return (await store.add(record, options)) ? 'recorded' : 'duplicates';
  }
}

/** A mirror document as the sync wrote it: identified, versioned, and its content matching its `syncHash`. */
function isVersion(doc: unknown): doc is EntityDocument {
  const candidate = doc as Partial<EntityDocument> | null;
  if (!candidate || typeof candidate.id !== 'string' || typeof candidate.syncedAt !== 'string' || typeof candidate.syncHash !== 'string') return false;
  return computeSyncHash(candidate) === candidate.syncHash;
}
