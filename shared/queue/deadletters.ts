/**
 * Operating the dead-letter queue of `entity-sync`: list what is there (with reasons) and replay it.
 *
 * Replay re-enqueues a fresh message (new id, attempt 1, `originalMessageId` kept) in the entity's session and
 * only then completes the dead letter, so a failure in between leaves a duplicate at worst — harmless, since
 * the sync is level-triggered — never a loss. A dead-lettered batch message (intake.ts) is replayed as one such
 * message per entity.
 */
import { randomUUID } from 'node:crypto';
import type { ServiceBusClient, ServiceBusReceivedMessage } from '@azure/service-bus';
import Long from 'long';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { abortOnly, type OperationOptions } from '../platform/options';
import { type EventQueue, serviceBusCall, toServiceBusMessage } from './queue';
import { syncBatchBodySchema, syncMessageBodySchema } from '../intake/events';
import { toDocumentId } from '../model/refs';

export interface DeadLetterEntry {
  sequenceNumber: string;
  messageId: string | undefined;
  sessionId: string | undefined;
  entityRef: string | undefined;
  reason: string | undefined;
  description: string | undefined;
  attempt: number | undefined;
  enqueuedTime: string | undefined;
  body: unknown;
}

export interface ReplayResult {
  replayed: Array<{ sequenceNumber: string; entityRef: string | undefined; newMessageId: string }>;
  /** Dead letters that were looked at but not replayed (not selected, or their body cannot be replayed). */
  skipped: Array<{ sequenceNumber: string; why: string }>;
}

export class DeadLetterAdmin {
  constructor(
    private readonly client: ServiceBusClient,
    private readonly queueName: string,
    private readonly queue: EventQueue,
    private readonly logger: Logger,
    private readonly metrics?: Metrics,
  ) {}

  /** The self-check's harmless call: a peek at one dead letter, which needs the right to receive. Settles nothing. */
  async probe(options: OperationOptions = {}): Promise<void> {
    const receiver = this.client.createReceiver(this.queueName, { subQueueType: 'deadLetter' });
    try {
      await serviceBusCall('peek', this.metrics, options, () => receiver.peekMessages(1, abortOnly(options)));
    } finally {
      await receiver.close();
    }
  }

  async list(options: { max: number; fromSequenceNumber?: number }): Promise<DeadLetterEntry[]> {
    const receiver = this.client.createReceiver(this.queueName, { subQueueType: 'deadLetter' });
    try {
      const messages = await serviceBusCall('peek', this.metrics, {}, () =>
        receiver.peekMessages(options.max, {
          ...(options.fromSequenceNumber !== undefined && { fromSequenceNumber: Long.fromNumber(options.fromSequenceNumber) }),
        }),
      );
      return messages.map(toEntry);
    } finally {
      await receiver.close();
    }
  }

  /** Replays up to `max` dead letters, or only those whose sequence numbers are given. */
  async replay(options: { max: number; sequenceNumbers?: string[]; abortSignal?: AbortSignal }): Promise<ReplayResult> {
    const wanted = options.sequenceNumbers ? new Set(options.sequenceNumbers) : undefined;
    const result: ReplayResult = { replayed: [], skipped: [] };
    const seen = new Set<string>();
    const receiver = this.client.createReceiver(this.queueName, { subQueueType: 'deadLetter' });
    try {
      // Dead letters not replayed are abandoned and come straight back; stop once a batch holds nothing new.
      for (;;) {
        const batch = await serviceBusCall('receive', this.metrics, {}, () => receiver.receiveMessages(50, { maxWaitTimeInMs: 1_000 }));
        const fresh = batch.filter((m) => !seen.has(String(m.sequenceNumber)));
        for (const message of batch) {
          const sequenceNumber = String(message.sequenceNumber);
          const isFresh = !seen.has(sequenceNumber);
          seen.add(sequenceNumber);
          const selected = isFresh && (wanted ? wanted.has(sequenceNumber) : result.replayed.length < options.max);
          if (!selected) {
            await this.settle('abandon', () => receiver.abandonMessage(message));
            continue;
          }
          const single = syncMessageBodySchema.safeParse(message.body);
          const batchBody = single.success ? undefined : syncBatchBodySchema.safeParse(message.body);
          const entities = single.success ? [single.data] : batchBody?.success ? batchBody.data.entities : undefined;
          if (!entities) {
            await this.settle('abandon', () => receiver.abandonMessage(message));
            result.skipped.push({ sequenceNumber, why: 'the body does not follow the sync contract; fix or remove it by hand' });
            continue;
          }
          const properties = message.applicationProperties ?? {};
          const replays = entities.map((entity) => ({ entity, newMessageId: randomUUID() }));
          await this.queue.enqueue(
            replays.map(({ entity, newMessageId }) =>
              toServiceBusMessage(
                // A single message keeps its session; a batch's entities go to their own.
                { messageId: newMessageId, sessionId: (single.success && message.sessionId) || toDocumentId(entity.entityRef), body: entity },
                {
                  attempt: 1,
                  originalMessageId: String(properties.originalMessageId ?? message.messageId),
                  ...(typeof properties.traceparent === 'string' && { traceparent: properties.traceparent }),
                },
              ),
            ),
            options.abortSignal ? { abortSignal: options.abortSignal } : {},
          );
          await this.settle('complete', () => receiver.completeMessage(message));
          for (const { entity, newMessageId } of replays) {
            result.replayed.push({ sequenceNumber, entityRef: entity.entityRef, newMessageId });
            this.logger.info('Dead letter replayed', { operation: 'replay', entityRef: entity.entityRef, sequenceNumber, newMessageId });
          }
        }
        const done = wanted ? [...wanted].every((n) => seen.has(n)) : result.replayed.length >= options.max;
        if (batch.length === 0 || fresh.length === 0 || done) break;
      }
      if (wanted) for (const n of wanted) if (!seen.has(n)) result.skipped.push({ sequenceNumber: n, why: 'no such dead letter' });
      return result;
    } finally {
      await receiver.close();
    }
  }

  private settle(operation: 'abandon' | 'complete', call: () => Promise<void>): Promise<void> {
    return serviceBusCall(operation, this.metrics, {}, call);
  }
}

function toEntry(message: ServiceBusReceivedMessage): DeadLetterEntry {
  const body = message.body as { entityRef?: unknown } | undefined;
  const attempt = Number(message.applicationProperties?.attempt);
  return {
    sequenceNumber: String(message.sequenceNumber),
    messageId: message.messageId === undefined ? undefined : String(message.messageId),
    sessionId: message.sessionId,
    entityRef: typeof body?.entityRef === 'string' ? body.entityRef : undefined,
    reason: message.deadLetterReason,
    description: message.deadLetterErrorDescription,
    attempt: Number.isInteger(attempt) ? attempt : undefined,
    enqueuedTime: message.enqueuedTimeUtc?.toISOString(),
    body: message.body,
  };
}

