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
 * - a maintenance command (subject `maintenance`, session `~maintenance`) → handed to {@link MaintenanceRuns}.
 * If even scheduling the retry fails, the handler throws and the host's redelivery (bounded by the queue's max
 * delivery count, then the dead-letter queue) takes over.
 */
import { randomUUID } from 'node:crypto';
import type { ServiceBusReceivedMessage } from '@azure/service-bus';
import { backoffDelay } from '../platform/backoff';
import { RequestChargeTracker } from '../platform/cosmos';
import { BackstageRequestError, describeError, InvalidEntityRefError, OperationAbortedError } from '../platform/errors';
import { syncMessageBodySchema, type SyncMessageBody } from '../intake/events';
import type { Logger } from '../platform/logger';
import { abortOnly, type OperationOptions } from '../platform/options';
import type { Metrics } from '../platform/metrics';
import type { QueueRetryConfig } from '../platform/config';
import type { EventQueue } from './queue';
import type { SyncEngine, SyncOutcome, SyncResult } from '../sync/engine';
import { MAINTENANCE_SUBJECT, type MaintenanceRuns, type RunCommandOutcome } from '../maintenance-runs/runs';
import { trackEvent } from '../platform/telemetry';

/** How the trigger settles the message it was given (the Functions SDK binding's message actions). */
export interface Settlement {
  complete(): Promise<void>;
  deadLetter(reason: string, description: string): Promise<void>;
}

export type MessageOutcome =
  | { action: 'completed'; outcome: SyncOutcome; attempt: number }
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

    const parsed = syncMessageBodySchema.safeParse(message.body);
    if (!parsed.success) {
      const description = parsed.error.issues
        .slice(0, 5)
        .map((i) => `${i.path.join('.') || 'body'}: ${i.message}`)
        .join('; ');
      return this.deadLetter(settle, logger, attempt, DeadLetterReason.invalidMessage, `The message body does not follow the sync contract: ${description}`);
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
    const delayInMs = backoffDelay(attempt - 1, {
      baseDelayInMs: retry.baseDelayInMs,
      maxDelayInMs: retry.maxDelayInMs,
      ...(this.options.random && { random: this.options.random }),
    });
    await this.options.queue.scheduleRetry(
      message.messageId === undefined || message.messageId === '' ? randomUUID() : String(message.messageId),
      body,
      message.sessionId ?? '',
      { attempt: attempt + 1, ...(traceparent && { traceparent }), originalMessageId: originalId(message) },
      new Date(this.now() + delayInMs),
      abortOnly(call),
    );
    await settle.complete();
    this.options.metrics?.increment('sync.retries', 1);
    entityLogger.warn('Sync failed; retry scheduled', { operation: 'syncEntity', error, nextAttempt: attempt + 1, delayInMs });
    return { action: 'retry-scheduled', attempt, nextAttempt: attempt + 1, delayInMs, error: describeError(error) };
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

function originalId(message: ServiceBusReceivedMessage): string {
  const original = message.applicationProperties?.originalMessageId;
  return typeof original === 'string' ? original : String(message.messageId ?? '');
}
