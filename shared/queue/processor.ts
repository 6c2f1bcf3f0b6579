/**
 * Processing one `entity-sync` queue message: the decision behind the `syncEntity` trigger.
 *
 * - success → complete;
 * - a transient failure (Backstage 429/5xx/timeouts, a 401 that survived a token refresh, Cosmos throttling,
 *   a lost optimistic-concurrency race) → a retry is **scheduled** with exponential backoff as a new message in
 *   the same session, carrying `attempt + 1`, and this message is completed — no hot redelivery; after
 *   `maxAttempts` → dead-letter with reason `RetriesExhausted`;
 * - a permanent failure (a message that does not follow the contract, an invalid ref, Backstage rejecting the
 *   request as malformed) → dead-letter at once with the reason;
 * - a maintenance command (subject `maintenance`, session `~maintenance`) → handed to {@link MaintenanceRuns};
 * - a batch message (subject `sync-batch`: a burst of events the intake queued together) → its entities synced as
 *   the reconcile syncs a batch ({@link Reconciler.syncMany}); those that failed are retried as a smaller batch with
 *   the same backoff, and after `maxAttempts` each goes on as a message of its own (its own retries, its own
 *   dead-letter) — so no entity of a batch is ever dropped. A batch that does not follow the contract is dead-lettered.
 * If even scheduling the retry fails, the handler throws and the host's redelivery (bounded by the queue's max
 * delivery count, then the dead-letter queue) takes over.
 */
import { randomUUID } from 'node:crypto';
import type { ServiceBusReceivedMessage } from '@azure/service-bus';
import { backoffDelay } from '../platform/backoff';
import { RequestChargeTracker } from '../platform/cosmos';
import { BackstageRequestError, describeError, InvalidEntityRefError, OperationAbortedError } from '../platform/errors';
import { SYNC_BATCH_SUBJECT, syncBatchBodySchema, syncMessageBodySchema, type SyncBatchBody, type SyncMessageBody } from '../intake/events';
import type { Logger } from '../platform/logger';
import { abortOnly, type OperationOptions } from '../platform/options';
import type { Metrics } from '../platform/metrics';
import type { QueueRetryConfig } from '../platform/config';
import { toServiceBusMessage, type EventQueue, type SyncMessageProperties } from './queue';
import { toDocumentId } from '../model/refs';
import type { SyncEngine, SyncOutcome, SyncResult } from '../sync/engine';
import type { Reconciler } from '../sync/reconcile';
import { MAINTENANCE_SUBJECT, type MaintenanceRuns, type RunCommandOutcome } from '../maintenance-runs/runs';
import { trackEvent } from '../platform/telemetry';

/** How the trigger settles the message it was given (the Functions SDK binding's message actions). */
export interface Settlement {
  complete(): Promise<void>;
  deadLetter(reason: string, description: string): Promise<void>;
}

export type MessageOutcome =
  | { action: 'completed'; outcome: SyncOutcome; attempt: number }
  | { action: 'batch-completed'; attempt: number; entities: number; failed: number; next?: 'retry-scheduled' | 'split' }
  | RunCommandOutcome
  | { action: 'retry-scheduled'; attempt: number; nextAttempt: number; delayInMs: number; error: string }
  | { action: 'dead-lettered'; attempt: number; reason: string; description: string };

export interface ProcessorOptions {
  engine: SyncEngine;
  queue: EventQueue;
  logger: Logger;
  metrics?: Metrics;
  retry: QueueRetryConfig;
  /** Runs the maintenance commands that share the queue (subject {@link MAINTENANCE_SUBJECT}, their own session). */
  maintenanceRuns?: Pick<MaintenanceRuns, 'execute'>;
  /** Syncs the entities of batch messages (subject {@link SYNC_BATCH_SUBJECT}). */
  batches?: Pick<Reconciler, 'syncMany'>;
  random?: () => number;
  now?: () => number;
}

/** Dead-letter reasons (the `DeadLetterReason` an operator sees). */
export const DeadLetterReason = {
  invalidMessage: 'InvalidMessage',
  invalidEntityRef: 'InvalidEntityRef',
  rejectedByBackstage: 'RejectedByBackstage',
  retriesExhausted: 'RetriesExhausted',
} as const;

export class SyncMessageProcessor {
  private readonly now: () => number;

  constructor(private readonly options: ProcessorOptions) {
    this.now = options.now ?? Date.now;
  }

  async process(message: ServiceBusReceivedMessage, settle: Settlement, call: OperationOptions = {}): Promise<MessageOutcome> {
    if (message.subject === MAINTENANCE_SUBJECT && this.options.maintenanceRuns) return this.options.maintenanceRuns.execute(message, settle, call);
    const started = performance.now();
    const properties = message.applicationProperties ?? {};
    const attempt = positiveInteger(properties.attempt) ?? 1;
    const traceparent = typeof properties.traceparent === 'string' ? properties.traceparent : undefined;
    const logger = (call.logger ?? this.options.logger).child({ messageId: message.messageId, attempt });
    const metrics = this.options.metrics;
    if (message.subject === SYNC_BATCH_SUBJECT && this.options.batches) return this.processBatch(message, settle, { attempt, logger, ...(traceparent && { traceparent }) }, call);

    const parsed = syncMessageBodySchema.safeParse(message.body);
    if (!parsed.success) {
      return this.deadLetter(settle, logger, attempt, DeadLetterReason.invalidMessage, `The message body does not follow the sync contract: ${describeIssues(parsed.error)}`);
    }
    const body: SyncMessageBody = parsed.data;
    const entityLogger = logger.child({ entityRef: body.entityRef });
    const charge = new RequestChargeTracker();
    let result: SyncResult;
    try {
      result = await this.options.engine.syncEntity(body.entityRef, {
        charge,
        ...(body.type === 'upserted' && body.etag !== undefined && { knownEtag: body.etag }),
        ...abortOnly(call),
      });
    } catch (error) {
      return this.failed(error, message, body, settle, entityLogger, { attempt, ...(traceparent && { traceparent }) }, call);
    }
    // Outside the sync's failure handling: if settling fails (a lost lock), the message comes back and syncs again —
    // a no-op now — rather than being retried or dead-lettered as if the sync had failed.
    await settle.complete();
    const durationInMs = Math.round(performance.now() - started);
    const latencyInMs = this.now() - Date.parse(body.eventTime);
    entityLogger.info('Entity synced', {
      operation: 'syncEntity',
      outcome: result.outcome,
      durationInMs,
      requestCharge: Math.round(charge.total * 100) / 100,
      readBackstage: result.readBackstage,
    });
    metrics?.record('sync.duration', durationInMs, { outcome: result.outcome });
    trackEvent('EntitySynced', { entityRef: body.entityRef, outcome: result.outcome, attempt, durationInMs });
    if (result.outcome !== 'unchanged' && result.outcome !== 'absent' && result.outcome !== 'out-of-scope') metrics?.record('sync.latency', latencyInMs, { outcome: result.outcome });
    return { action: 'completed', outcome: result.outcome, attempt };
  }

  /** A failed sync: dead-letter what cannot heal, schedule a retry of the rest, give up after `maxAttempts`. */
  private async failed(
    error: unknown,
    message: ServiceBusReceivedMessage,
    body: SyncMessageBody,
    settle: Settlement,
    entityLogger: Logger,
    { attempt, traceparent }: { attempt: number; traceparent?: string },
    call: OperationOptions,
  ): Promise<MessageOutcome> {
    if (error instanceof InvalidEntityRefError) {
      return this.deadLetter(settle, entityLogger, attempt, DeadLetterReason.invalidEntityRef, error.message);
    }
    if (error instanceof BackstageRequestError) {
      return this.deadLetter(settle, entityLogger, attempt, DeadLetterReason.rejectedByBackstage, error.message);
    }
    // The invocation was cancelled (host shutdown): let the host abandon; the message comes back.
    if (error instanceof OperationAbortedError) throw error;
    // Everything else is worth another try later: transient failures by definition, a 401 that survived a
    // token refresh (trust may be fixed, keys may rotate), and unknown errors (bounded by maxAttempts).
    const { retry } = this.options;
    if (attempt >= retry.maxAttempts) {
      return this.deadLetter(
        settle,
        entityLogger,
        attempt,
        DeadLetterReason.retriesExhausted,
        `Gave up after ${attempt} attempts; last error: ${describeError(error)}`,
      );
    }
    const delayInMs = await this.scheduleNextAttempt(message, attempt, traceparent, (id, properties, at) =>
      this.options.queue.scheduleRetry(id, body, message.sessionId ?? '', properties, at, abortOnly(call)),
    );
    await settle.complete();
    this.options.metrics?.increment('sync.retries', 1);
    entityLogger.warn('Sync failed; retry scheduled', { operation: 'syncEntity', error, nextAttempt: attempt + 1, delayInMs });
    return { action: 'retry-scheduled', attempt, nextAttempt: attempt + 1, delayInMs, error: describeError(error) };
  }

  /** A batch message: its entities synced together; what failed goes on (see the class comment). */
  private async processBatch(
    message: ServiceBusReceivedMessage,
    settle: Settlement,
    { attempt, logger, traceparent }: { attempt: number; logger: Logger; traceparent?: string },
    call: OperationOptions,
  ): Promise<MessageOutcome> {
    const parsed = syncBatchBodySchema.safeParse(message.body);
    if (!parsed.success) {
      return this.deadLetter(settle, logger, attempt, DeadLetterReason.invalidMessage, `The batch message body does not follow the sync contract: ${describeIssues(parsed.error)}`);
    }
    const body = parsed.data;
    const started = performance.now();
    // By document id: a failure may name the entity as the catalog spells it, not as the event did.
    let failedIds: Set<string>;
    let lastError: string;
    try {
      const result = await this.options.batches!.syncMany(body.entities, { ...abortOnly(call), logger });
      failedIds = new Set(result.failures.map((f) => toDocumentId(f.entityRef)));
      lastError = result.failures[0]?.error ?? '';
      logger.info('Batch synced', {
        operation: 'syncEntity',
        entities: body.entities.length,
        created: result.created,
        updated: result.updated,
        unchanged: result.unchanged,
        tombstoned: result.tombstoned,
        failed: result.failed,
        backstageRequests: result.backstageRequests,
        durationInMs: Math.round(performance.now() - started),
      });
    } catch (error) {
      // The invocation was cancelled (host shutdown): let the host abandon; the message comes back.
      if (error instanceof OperationAbortedError) throw error;
      failedIds = new Set(body.entities.map((e) => toDocumentId(e.entityRef)));
      lastError = describeError(error);
      logger.warn('Batch sync failed', { operation: 'syncEntity', entities: body.entities.length, error });
    }
    this.options.metrics?.record('sync.batch_size', body.entities.length);
    if (failedIds.size === 0) {
      await settle.complete();
      return { action: 'batch-completed', attempt, entities: body.entities.length, failed: 0 };
    }
    const failed: SyncBatchBody = { entities: body.entities.filter((e) => failedIds.has(toDocumentId(e.entityRef))) };
    if (attempt < this.options.retry.maxAttempts) {
      const delayInMs = await this.scheduleNextAttempt(message, attempt, traceparent, (id, properties, at) =>
        this.options.queue.scheduleBatchRetry(id, failed, message.sessionId ?? '', properties, at, abortOnly(call)),
      );
      await settle.complete();
      this.options.metrics?.increment('sync.retries', 1);
      logger.warn('Batch sync failed for some entities; retry of those scheduled', { operation: 'syncEntity', failed: failed.entities.length, nextAttempt: attempt + 1, delayInMs, error: lastError });
      return { action: 'batch-completed', attempt, entities: body.entities.length, failed: failed.entities.length, next: 'retry-scheduled' };
    }
    // Out of batch attempts: each entity goes on alone, with its own retries and, in the end, its own dead letter.
    const messageId = messageIdOf(message);
    await this.options.queue.enqueue(
      failed.entities.map((entity) =>
        toServiceBusMessage({ messageId: `${messageId}:${toDocumentId(entity.entityRef)}`.slice(0, 128), sessionId: toDocumentId(entity.entityRef), body: entity }, { attempt: 1, ...(traceparent && { traceparent }) }),
      ),
      abortOnly(call),
    );
    await settle.complete();
    logger.warn('Batch sync failed for some entities after every attempt; each queued on its own', { operation: 'syncEntity', failed: failed.entities.length, error: lastError });
    return { action: 'batch-completed', attempt, entities: body.entities.length, failed: failed.entities.length, next: 'split' };
  }

  /**
   * Schedules the attempt after `attempt` (exponential backoff with jitter) through `schedule`, with the properties a
   * retry carries; answers the delay.
   */
  private async scheduleNextAttempt(
    message: ServiceBusReceivedMessage,
    attempt: number,
    traceparent: string | undefined,
    schedule: (failingMessageId: string, properties: SyncMessageProperties, at: Date) => Promise<void>,
  ): Promise<number> {
    const { retry } = this.options;
    const delayInMs = backoffDelay(attempt - 1, { baseDelayInMs: retry.baseDelayInMs, maxDelayInMs: retry.maxDelayInMs, ...(this.options.random && { random: this.options.random }) });
    await schedule(messageIdOf(message), { attempt: attempt + 1, ...(traceparent && { traceparent }), originalMessageId: originalId(message) }, new Date(this.now() + delayInMs));
    return delayInMs;
  }

  private async deadLetter(settle: Settlement, logger: Logger, attempt: number, reason: string, description: string): Promise<MessageOutcome> {
    const trimmed = description.slice(0, 4000);
    await settle.deadLetter(reason, trimmed);
    this.options.metrics?.increment('sync.dead_letters', 1, { reason });
    trackEvent('MessageDeadLettered', { reason, attempt });
    logger.error('Message dead-lettered', { operation: 'syncEntity', reason, description: trimmed });
    return { action: 'dead-lettered', attempt, reason, description: trimmed };
  }
}

function positiveInteger(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** The message's id (what retries derive theirs from); a random one for a message sent without. */
function messageIdOf(message: ServiceBusReceivedMessage): string {
  return message.messageId === undefined || message.messageId === '' ? randomUUID() : String(message.messageId);
}

function originalId(message: ServiceBusReceivedMessage): string {
  const original = message.applicationProperties?.originalMessageId;
  return typeof original === 'string' ? original : String(message.messageId ?? '');
}

/** A dead-letter description of why a body failed its schema: its first five issues, each with where it is. */
function describeIssues(error: { issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }> }): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.map(String).join('.') || 'body'}: ${i.message}`)
    .join('; ');
}
