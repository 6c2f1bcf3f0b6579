/**
 * Service Bus: the one client of the process (managed identity through `fullyQualifiedNamespace`; a connection
 * string only for the local broker, refused in production mode) and the `entity-sync` queue's sender.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { TokenCredential } from '@azure/core-auth';
import { ServiceBusClient, type ServiceBusMessage, type ServiceBusMessageBatch, type ServiceBusSender } from '@azure/service-bus';
import { withRetries } from '../platform/backoff';
import type { ServiceBusConfig } from '../platform/config';
import { noAnswerStatus, recordDependencyCall } from '../platform/dependencies';
import { OperationAbortedError, QueueUnavailableError } from '../platform/errors';
import type { Metrics } from '../platform/metrics';
import { abortOnly, withDeadline, type OperationOptions } from '../platform/options';
import { SYNC_BATCH_SUBJECT, type QueuedEvent, type SyncBatchBody, type SyncMessageBody } from '../intake/events';

/**
 * The client retries nothing itself: every operation goes through {@link serviceBusCall}, which retries what the SDK
 * marks retryable and so knows — and reports — how many retries each call took.
 */
export function createServiceBusClient(config: ServiceBusConfig, credential: TokenCredential): ServiceBusClient {
  const options = { retryOptions: { maxRetries: 0, timeoutInMs: config.sendTimeoutInMs } };
  if (config.connectionString) return new ServiceBusClient(config.connectionString, options);
  return new ServiceBusClient(config.fullyQualifiedNamespace!, credential, options);
}

/** Retries of one Service Bus operation, for errors the SDK marks retryable (busy, connection lost, timeouts). */
export const SERVICE_BUS_RETRY = { maxRetries: 3, baseDelayInMs: 200, maxDelayInMs: 2_000 } as const;

/**
 * One Service Bus operation with its retries and its telemetry: a `dependency.duration` measurement (dependency
 * `servicebus`) whose status is `ok` or the SDK's error code (`ServiceBusy`, `UnauthorizedAccess`, …).
 */
export async function serviceBusCall<T>(operation: string, metrics: Metrics | undefined, options: OperationOptions, call: () => Promise<T>): Promise<T> {
  const started = performance.now();
  let retries = 0;
  try {
    const result = await withRetries(call, {
      ...SERVICE_BUS_RETRY,
      ...abortOnly(options),
      shouldRetry: (error) => (error as { retryable?: unknown }).retryable === true,
      onRetry: () => (retries += 1),
    });
    recordDependencyCall(metrics, { dependency: 'servicebus', operation, status: 'ok', retries, durationInMs: performance.now() - started, success: true });
    return result;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const status = typeof code === 'string' && code !== 'GeneralError' ? code : noAnswerStatus(error, options.abortSignal?.aborted === true || error instanceof OperationAbortedError);
    recordDependencyCall(metrics, { dependency: 'servicebus', operation, status, retries, durationInMs: performance.now() - started, success: false });
    throw error;
  }
}

/** Application properties every sync message carries. */
export interface SyncMessageProperties {
  /** 1 for the first try; retries carry the next number. */
  attempt: number;
  /** W3C trace context of the request that produced the event. */
  traceparent?: string;
  /** Set on retries and replays: the message id this one continues. */
  originalMessageId?: string;
}

/** Service Bus's limit for a session id. */
export const MAX_SESSION_ID_LENGTH = 128;

/**
 * The session of an entity's messages: its document id — or, for the rare id longer than Service Bus allows
 * (63-character kind, namespace and name make 191), a prefix and a hash of the whole, so each entity still has
 * exactly one session. Ids that fit are returned unchanged, so applying it twice changes nothing.
 */
export function toSessionId(documentId: string): string {
  if (documentId.length <= MAX_SESSION_ID_LENGTH) return documentId;
  const hash = createHash('sha256').update(documentId).digest('hex').slice(0, 32);
  return `${documentId.slice(0, MAX_SESSION_ID_LENGTH - hash.length - 1)}~${hash}`;
}

/**
 * The id of the retry a message schedules: derived from the failing message's id and the next attempt, never
 * random. If settling the failing message fails after its retry was scheduled (a lost lock, a timeout), the message
 * is delivered again and schedules the same id — which duplicate detection drops — instead of forking a second
 * retry chain (each delivery forking again would multiply the messages by the delivery count at every attempt).
 * A dead-letter replay starts from a fresh message id, so its chain never collides with the old one.
 */
export function retryMessageId(failingMessageId: string, nextAttempt: number): string {
  const hash = createHash('sha256').update(`${failingMessageId}\n${nextAttempt}`).digest('hex').slice(0, 40);
  return `retry-${nextAttempt}-${hash}`;
}

function applicationProperties(properties: SyncMessageProperties): Record<string, string | number> {
  return {
    attempt: properties.attempt,
    ...(properties.traceparent && { traceparent: properties.traceparent }),
    ...(properties.originalMessageId && { originalMessageId: properties.originalMessageId }),
  };
}

export function toServiceBusMessage(event: QueuedEvent, properties: SyncMessageProperties): ServiceBusMessage {
  return {
    messageId: event.messageId,
    sessionId: toSessionId(event.sessionId),
    contentType: 'application/json',
    subject: event.body.type,
    body: event.body,
    applicationProperties: applicationProperties(properties),
  };
}

/**
 * One message for several entities' events (subject {@link SYNC_BATCH_SUBJECT}), synced together. Its id is derived
 * from the events' message ids, so the same request sent again enqueues the same message and duplicate detection
 * drops it; its session is its own (`~batch:` and the same hash, which no entity id can take), so batches are synced
 * side by side and no entity's session waits for one.
 */
export function toSyncBatchMessage(events: readonly QueuedEvent[], properties: SyncMessageProperties): ServiceBusMessage {
  const hash = createHash('sha256').update(events.map((e) => e.messageId).sort().join('\n')).digest('hex').slice(0, 40);
  return batchMessage(`batch-${hash}`, `~batch:${hash}`, { entities: events.map((e) => e.body) }, properties);
}

function batchMessage(messageId: string, sessionId: string, body: SyncBatchBody, properties: SyncMessageProperties): ServiceBusMessage {
  return {
    messageId,
    sessionId,
    contentType: 'application/json',
    subject: SYNC_BATCH_SUBJECT,
    body,
    applicationProperties: applicationProperties(properties),
  };
}

export interface EventQueueOptions {
  sendTimeoutInMs: number;
  metrics?: Metrics;
}

export class EventQueue {
  constructor(
    readonly sender: ServiceBusSender,
    private readonly options: EventQueueOptions,
  ) {}

  /** The self-check's harmless call: an empty batch opens the sender link, which needs the right to send. Sends nothing. */
  async probe(options: OperationOptions = {}): Promise<void> {
    await this.sender.createMessageBatch(abortOnly(options));
  }

  /**
   * Sends the messages in as few batches as the size limit allows. Throws {@link QueueUnavailableError}
   * when the queue cannot be reached. (If a later batch fails after an earlier one was sent, the sender's
   * retry re-sends the same message ids and duplicate detection drops what already arrived.)
   */
  async enqueue(messages: ServiceBusMessage[], options: OperationOptions = {}): Promise<void> {
    try {
      await withDeadline(options.abortSignal, this.options.sendTimeoutInMs, async (abortSignal) => {
        const send = (batch: ServiceBusMessageBatch) => serviceBusCall('send', this.options.metrics, { abortSignal }, () => this.sender.sendMessages(batch, { abortSignal }));
        let batch = await this.sender.createMessageBatch({ abortSignal });
        for (const message of messages) {
          if (batch.tryAddMessage(message)) continue;
          if (batch.count === 0) throw new QueueUnavailableError(`message ${String(message.messageId)} is larger than the queue accepts`);
          await send(batch);
          batch = await this.sender.createMessageBatch({ abortSignal });
          if (!batch.tryAddMessage(message)) throw new QueueUnavailableError(`message ${String(message.messageId)} is larger than the queue accepts`);
        }
        if (batch.count > 0) await send(batch);
      });
    } catch (error) {
      if (options.abortSignal?.aborted) throw new OperationAbortedError('Enqueue aborted', error);
      if (error instanceof QueueUnavailableError) throw error;
      throw new QueueUnavailableError(`Could not send to Service Bus queue ${this.sender.entityPath}: ${(error as Error).message}`, error);
    }
  }

  /**
   * Asks for a sync of `entityRef` (drift repair). The message id names the drifted version, so one drifted
   * version seen twice by the change feed enqueues one re-sync.
   */
  async enqueueResync(entityRef: string, drifted: { id: string; etag: string | undefined }, options: OperationOptions = {}): Promise<void> {
    const messageId = `drift:${drifted.id}:${drifted.etag ?? randomUUID()}`.slice(0, 128);
    await this.enqueue(
      [
        toServiceBusMessage(
          {
            messageId,
            sessionId: drifted.id,
            body: { entityRef, type: 'upserted', eventId: messageId, eventTime: new Date().toISOString(), source: 'urn:backstage-cosmos-sync:drift-repair' },
          },
          { attempt: 1 },
        ),
      ],
      options,
    );
  }

  /**
   * Schedules the next attempt of a message in the same session, visible at `at`. Its id is derived from the
   * failing message's id and the attempt ({@link retryMessageId}), so a redelivered failing message cannot schedule
   * a second retry: duplicate detection drops it.
   */
  async scheduleRetry(
    failingMessageId: string,
    body: SyncMessageBody,
    sessionId: string,
    properties: SyncMessageProperties,
    at: Date,
    options: OperationOptions = {},
  ): Promise<void> {
    await this.schedule(toServiceBusMessage({ messageId: retryMessageId(failingMessageId, properties.attempt), sessionId, body }, properties), at, options);
  }

  /** The next attempt of a batch message, for the entities that failed (its id derived as {@link scheduleRetry}'s). */
  async scheduleBatchRetry(failingMessageId: string, body: SyncBatchBody, sessionId: string, properties: SyncMessageProperties, at: Date, options: OperationOptions = {}): Promise<void> {
    await this.schedule(batchMessage(retryMessageId(failingMessageId, properties.attempt), sessionId, body, properties), at, options);
  }

  private async schedule(message: ServiceBusMessage, at: Date, options: OperationOptions): Promise<void> {
    try {
      await withDeadline(options.abortSignal, this.options.sendTimeoutInMs, (abortSignal) =>
        serviceBusCall('schedule', this.options.metrics, { abortSignal }, () => this.sender.scheduleMessages(message, at, { abortSignal })),
      );
    } catch (error) {
      throw new QueueUnavailableError(`Could not schedule a retry on ${this.sender.entityPath}: ${(error as Error).message}`, error);
    }
  }
}
