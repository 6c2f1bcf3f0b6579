/**
 * Mirror versions → the `history` container: one record per version (record.ts), from two paths.
 *
 * - The write path ({@link HistoryRecorder.recordWritten}): the sync and the reconcile hand over each version they
 *   have just written, so every version is recorded — also the ones the change feed never shows (it delivers a
 *   document's latest version only, so two writes between two reads of the feed arrive as one). A writer that read
 *   the document it replaced hands that over too, and the record is built against it: no query; a version that
 *   created its document (the mirror had none, not even a tombstone) is `created`, also without one. A record that cannot
 *   be written is left to the other path (logged, counted as `history.write_failures`); the sync goes on.
 * - The change feed ({@link HistoryRecorder.recordBatch}, the recordHistory function): the backstop. A version
 *   already recorded costs one point read; any other is recorded. It records a new deployment's mirror as it is.
 *
 * - Idempotent: a record's id is its version's, so a replayed batch (a retry, a lease reset, a second delivery) or
 *   the second path records nothing new.
 * - A version without the document it replaced is built against the record before it in time (one single-partition
 *   query), so a version that arrives late still gets the right operation and diff.
 * - A document whose content does not match its `syncHash` was edited by someone other than the sync (the edge
 *   projection repairs it); it is no version of the entity and is not recorded, nor built against.
 * - On the feed, a failure that does not heal within a few retries fails the batch, so the host retries it without
 *   moving the checkpoint (the records already written are not written twice).
 */
import pLimit from 'p-limit';
import { computeSyncHash, isTombstone, type EntityDocument } from '../model/documents';
import { withRetries } from '../platform/backoff';
import { RequestChargeTracker, type StoreCallOptions } from '../platform/cosmos';
import { isTransient } from '../platform/errors';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { abortOnly, type OperationOptions } from '../platform/options';
import type { HistoryStore } from './history-store';
import { buildHistoryRecord, historyRecordId, type HistoryRecord, type PreviousRecord } from './record';

/**
 * The recordHistory trigger's `feedPollDelay`: the Functions host's default. It is the backstop of the write path,
 * which records each version as the sync writes it, so nothing waits on it; a shorter delay would only add idle polls
 * (docs/performance.md#the-change-feeds-poll-delay).
 */
export const HISTORY_FEED_POLL_DELAY_IN_MS = 5_000;

/** A version a writer has just put in the mirror, and what it replaced when the writer knows. */
export interface WrittenVersion {
  doc: EntityDocument;
  /**
   * The mirror document this write replaced (its `_etag` was the write's `IfMatch`); `null` when the write created
   * the document (the mirror had none, not even a tombstone); undefined when the writer did not read it.
   */
  replaced?: EntityDocument | null;
}

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

export interface RecordWrittenOptions extends OperationOptions {
  /** Write the records that need no query as batch requests (for hundreds at once). */
  bulk?: boolean;
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
  /** Write path only: versions whose record could not be written (left to the change feed). */
  failed: number;
  requestCharge: number;
}

export class HistoryRecorder {
  private readonly now: () => Date;

  constructor(private readonly options: HistoryRecorderOptions) {
    this.now = options.now ?? (() => new Date());
  }

  /**
   * The feed's batch: each version not yet recorded is recorded. Throws when one could not be (after a few retries),
   * so the host retries the batch.
   */
  async recordBatch(documents: readonly unknown[], options: OperationOptions = {}): Promise<HistoryBatchResult> {
    const versions = documents.filter(isVersion).map((doc) => ({ doc }));
    const result = await this.record(versions, 'feed', options);
    result.documents = documents.length;
    result.skipped = documents.length - versions.length;
    (options.logger ?? this.options.logger).info('History recorded', { operation: 'recordHistory', ...result });
    return result;
  }

  /**
   * The write path: records versions the caller has just written into the mirror (documents it built, so their hashes
   * hold; only what they replaced is checked). Never throws: a version whose record could not be written (after a few
   * retries) is logged and left to the change feed.
   */
  async recordWritten(versions: readonly WrittenVersion[], options: RecordWrittenOptions = {}): Promise<HistoryBatchResult> {
    return this.record(versions, 'write', options);
  }

  private async record(versions: readonly WrittenVersion[], path: 'feed' | 'write', options: RecordWrittenOptions): Promise<HistoryBatchResult> {
    const logger = options.logger ?? this.options.logger;
    const charge = new RequestChargeTracker();
    const result: HistoryBatchResult = { documents: versions.length, recorded: 0, duplicates: 0, unchanged: 0, skipped: 0, failed: 0, requestCharge: 0 };
    // One entity's versions in the order given, one after the other; entities side by side.
    const byEntity = new Map<string, WrittenVersion[]>();
    for (const version of versions) byEntity.set(version.doc.id, [...(byEntity.get(version.doc.id) ?? []), version]);
    const call: StoreCallOptions = { ...abortOnly(options), charge, logger };
    const oneByOne = path === 'write' && options.bulk ? await this.recordInBulk(byEntity, result, call) : [...byEntity.values()];
    const limit = pLimit(this.options.concurrency ?? 16);
    await Promise.all(
      oneByOne.map((entityVersions) =>
        limit(async () => {
          for (const version of entityVersions) {
            let outcome: Outcome;
            try {
              outcome = await withRetries(() => this.recordVersion(version, path, call), {
                maxRetries: (this.options.attemptsPerDocument ?? 3) - 1,
                baseDelayInMs: this.options.retryBaseDelayInMs ?? 200,
                maxDelayInMs: 5_000,
                ...abortOnly(options),
                shouldRetry: (error) => isTransient(error),
              });
            } catch (error) {
              if (path === 'feed') throw error;
              // The feed records it (unless a later write reaches the feed first: then only this version is missing).
              logger.warn('History record not written; left to the change feed', { entityRef: version.doc.entityRef, version: historyRecordId(version.doc), error });
              this.options.metrics?.increment('history.write_failures');
              outcome = 'failed';
            }
            result[outcome] += 1;
            if (outcome === 'recorded') this.options.metrics?.increment('history.records', 1, { path });
          }
        }),
      ),
    );
    result.requestCharge = Math.round(charge.total * 100) / 100;
    if (result.duplicates) this.options.metrics?.increment('history.duplicates', result.duplicates, { path });
    return result;
  }

  /**
   * The write path's bulk form: the versions whose record needs no query (a create, or a replace whose writer handed
   * over what it replaced), one per entity, go in one bulk call; returns the entities left to record one by one.
   */
  private async recordInBulk(byEntity: Map<string, WrittenVersion[]>, result: HistoryBatchResult, call: StoreCallOptions): Promise<WrittenVersion[][]> {
    const rest: WrittenVersion[][] = [];
    const records: HistoryRecord[] = [];
    const versionOf: WrittenVersion[] = [];
    for (const entityVersions of byEntity.values()) {
      const version = entityVersions[0]!;
      // A create is built against nothing; a replace against what it replaced, when the writer handed it over.
      const previous = version.replaced ? asPrevious(version.replaced) : undefined;
      if (entityVersions.length > 1 || (version.replaced !== null && !previous)) {
        rest.push(entityVersions);
        continue;
      }
      const record = buildHistoryRecord(version.doc, previous, { now: this.now(), ttlInSeconds: this.options.retentionInSeconds });
      if (!record) {
        result.unchanged += 1;
        continue;
      }
      records.push(record);
      versionOf.push(version);
    }
    if (records.length === 0) return rest;
    const outcomes = await this.options.store.addMany(records, call);
    outcomes.forEach((outcome, index) => {
      if (outcome === true) {
        result.recorded += 1;
        this.options.metrics?.increment('history.records', 1, { path: 'write' });
      } else if (outcome === false) {
        result.duplicates += 1;
      } else {
        const version = versionOf[index]!;
        (call.logger ?? this.options.logger).warn('History record not written; left to the change feed', { entityRef: version.doc.entityRef, version: historyRecordId(version.doc), error: outcome });
        this.options.metrics?.increment('history.write_failures');
        result.failed += 1;
      }
    });
    return rest;
  }

  private async recordVersion({ doc, replaced }: WrittenVersion, path: 'feed' | 'write', options: StoreCallOptions): Promise<Outcome> {
    const { store } = this.options;
    // The feed mostly redelivers what the write path recorded: one point read settles it.
    if (path === 'feed' && (await store.has(doc.id, historyRecordId(doc), options))) return 'duplicates';
    // Created where the mirror had nothing: a first life, or one after the tombstone expired (`created` again).
    const previous = replaced === null ? undefined : ((replaced && asPrevious(replaced)) ?? (await store.previousOf(doc.id, doc.syncedAt, options)));
    const record = buildHistoryRecord(doc, previous, { now: this.now(), ttlInSeconds: this.options.retentionInSeconds });
    if (!record) return 'unchanged';
    return (await store.add(record, options)) ? 'recorded' : 'duplicates';
  }
}

type Outcome = 'recorded' | 'duplicates' | 'unchanged' | 'failed';

/**
 * The document a write replaced, as the record the new one is built against. Its content is the last record's;
 * its id is the last record's too, unless it rewrote that record's content unchanged (a stale `sourceEtag`), which
 * leaves no record of its own — then `previous` names that rewrite. Undefined for a document someone edited by hand,
 * which is no version of the entity.
 */
function asPrevious(doc: EntityDocument): PreviousRecord | undefined {
  if (!isVersion(doc)) return undefined;
  return {
    id: historyRecordId(doc),
    operation: isTombstone(doc) ? 'deleted' : 'updated',
    uid: doc.uid,
    syncHash: doc.syncHash,
    syncedAt: doc.syncedAt,
    ...(!isTombstone(doc) && { entity: doc.entity, ...(doc.publication && { publication: doc.publication }) }),
  };
}

/** A mirror document as the sync wrote it: identified, versioned, and its content matching its `syncHash`. */
function isVersion(doc: unknown): doc is EntityDocument {
  const candidate = doc as Partial<EntityDocument> | null;
  if (!candidate || typeof candidate.id !== 'string' || typeof candidate.syncedAt !== 'string' || typeof candidate.syncHash !== 'string') return false;
  return computeSyncHash(candidate) === candidate.syncHash;
}
