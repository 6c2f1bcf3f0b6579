/**
 * The state of one messaging entity of the local Service Bus broker — a queue or its dead-letter sub-queue —
 * and the rules that change it: stored messages and their sequence numbers, duplicate detection, message
 * locks and their expiry (redelivery, max delivery count → dead-letter queue), scheduled messages, deferral,
 * dead-lettering, message time-to-live, and per-session state and session locks. Locks remember the link a
 * message or session is locked to, but this file does no AMQP link handling: when messages may have become
 * deliverable, or a session lock is lost, it tells the link layer through {@link QueueEvents}.
 */
import { randomUUID } from 'node:crypto';
import type { Delivery } from 'rhea';
import { stringOrUndefined, toMillis, unwrapValue } from './codec';
import type { QueueOptions } from './config';
import { outcomes, type Message, type Sender } from './rhea-shim';

type MessageState = 'active' | 'deferred' | 'scheduled';

export interface StoredMessage {
  sequenceNumber: number;
  /** The message as the client sent it (broker annotations are added on the way out). */
  message: Message;
  messageId: string;
  sessionId: string | undefined;
  enqueuedAt: number;
  /** When it becomes visible (scheduled messages). */
  availableAt: number;
  expiresAt: number;
  state: MessageState;
  /** Deliveries so far (AMQP header delivery-count on the wire = deliveries before this one). */
  deliveries: number;
  lock: MessageLock | undefined;
  deadLetterSource?: string;
}

interface MessageLock {
  token: string;
  until: number;
  timer: NodeJS.Timeout;
  /** The link it was delivered on (undefined for deferred messages received through $management). */
  link: Sender | undefined;
  delivery: Delivery | undefined;
}

export interface SessionLock {
  link: Sender;
  until: number;
  timer: NodeJS.Timeout;
}

export interface EntityStats {
  active: number;
  scheduled: number;
  deferred: number;
  locked: number;
  deadLettered: number;
  /** Messages ever accepted into the entity (duplicates excluded). */
  enqueued: number;
  duplicatesDropped: number;
}

/** What an entity asks of the link layer. */
export interface QueueEvents {
  /** Hand available messages to the entity's consumers with credit. */
  pump(entity: Entity): void;
  /** A session lock ran out (its messages' locks are already released): detach the session's receiver. */
  sessionLockLost(entity: Entity, sessionId: string, lock: SessionLock): void;
}

export class Entity {
  readonly messages = new Map<number, StoredMessage>();
  readonly locks = new Map<string, StoredMessage>();
  readonly sessionLocks = new Map<string, SessionLock>();
  readonly sessionStates = new Map<string, Buffer | null>();
  readonly duplicates = new Map<string, number>();
  /** Activation timers of scheduled messages. */
  private readonly scheduledTimers = new Set<NodeJS.Timeout>();
  nextSequenceNumber = 1;
  enqueued = 0;
  duplicatesDropped = 0;
  deadLetter: Entity | undefined;

  constructor(
    readonly path: string,
    readonly options: QueueOptions,
    readonly isDeadLetterQueue: boolean,
    private readonly events: QueueEvents,
  ) {}

  get sessionful(): boolean {
    return this.options.requiresSession && !this.isDeadLetterQueue;
  }

  /** Counts for tests and diagnostics. */
  stats(): EntityStats {
    const all = [...this.messages.values()];
    return {
      active: all.filter((m) => m.state === 'active').length,
      scheduled: all.filter((m) => m.state === 'scheduled').length,
      deferred: all.filter((m) => m.state === 'deferred').length,
      locked: all.filter((m) => m.lock).length,
      deadLettered: this.deadLetter?.messages.size ?? 0,
      enqueued: this.enqueued,
      duplicatesDropped: this.duplicatesDropped,
    };
  }

  /** Asks the link layer to hand available messages to consumers. */
  pump(): void {
    this.events.pump(this);
  }

  /** Stops every timer the entity runs (the broker is stopping). */
  clearTimers(): void {
    for (const message of this.messages.values()) if (message.lock) clearTimeout(message.lock.timer);
    for (const lock of this.sessionLocks.values()) clearTimeout(lock.timer);
    for (const timer of this.scheduledTimers) clearTimeout(timer);
  }

  // ---------------------------------------------------------------------------------------------
  // Incoming messages

  validateIncoming(message: Message): { condition: string; description: string } | undefined {
    try {
      stringOrUndefined(message.group_id);
    } catch (error) {
      return { condition: 'com.microsoft:argument-error', description: `The SessionId (group-id) is not valid: ${error instanceof Error ? error.message : String(error)}` };
    }
    if (this.sessionful && (message.group_id === undefined || message.group_id === null || message.group_id === '')) {
      return {
        condition: 'com.microsoft:argument-error',
        description: `The SessionId was not set on a message, and it cannot be sent to the entity '${this.path}'. Entities that have session support enabled can only receive messages that have the SessionId set.`,
      };
    }
    const encodedSize = outcomes.encode(message).length;
    if (encodedSize > this.options.maxMessageSizeInBytes) {
      return { condition: 'amqp:link:message-size-exceeded', description: `Message of ${encodedSize} bytes exceeds ${this.options.maxMessageSizeInBytes}` };
    }
    return undefined;
  }

  /** Stores a message sent by a client. Returns its sequence number (undefined when dropped as a duplicate). */
  enqueue(incoming: Message, scheduledAt?: number): number | undefined {
    const now = Date.now();
    const message: Message = { ...incoming };
    if (message.message_id === undefined || message.message_id === null || message.message_id === '') {
      message.message_id = randomUUID().replace(/-/g, '');
    }
    const messageId = String(message.message_id);
    if (this.options.requiresDuplicateDetection) {
      for (const [id, until] of this.duplicates) if (until <= now) this.duplicates.delete(id);
      if (this.duplicates.has(messageId)) {
        this.duplicatesDropped += 1;
        return undefined;
      }
      this.duplicates.set(messageId, now + this.options.duplicateDetectionWindowInMs);
    }
    const annotations = { ...((message.message_annotations ?? {}) as Record<string, unknown>) };
    const annotated = unwrapValue(annotations['x-opt-scheduled-enqueue-time']);
    const availableAt = scheduledAt ?? (annotated !== undefined ? toMillis(annotated) : now);
    message.message_annotations = annotations;
    const ttl = message.ttl !== undefined ? Number(message.ttl) : this.options.defaultMessageTimeToLiveInMs;
    const stored: StoredMessage = {
      sequenceNumber: this.nextSequenceNumber++,
      message,
      messageId,
      sessionId: stringOrUndefined(message.group_id),
      enqueuedAt: now,
      availableAt,
      expiresAt: Math.min(availableAt + Math.min(ttl, this.options.defaultMessageTimeToLiveInMs), 8.64e15),
      state: availableAt > now ? 'scheduled' : 'active',
      deliveries: 0,
      lock: undefined,
    };
    this.messages.set(stored.sequenceNumber, stored);
    this.enqueued += 1;
    if (stored.state === 'scheduled') this.scheduleActivation(stored);
    return stored.sequenceNumber;
  }

  private scheduleActivation(message: StoredMessage): void {
    const timer = setTimeout(() => {
      this.scheduledTimers.delete(timer);
      if (this.messages.get(message.sequenceNumber) === message && message.state === 'scheduled') {
        message.state = 'active';
        this.pump();
      }
    }, Math.max(0, message.availableAt - Date.now()));
    timer.unref();
    this.scheduledTimers.add(timer);
  }

  // ---------------------------------------------------------------------------------------------
  // Selecting and locking messages for delivery

  /** The next message for a consumer (of `sessionId`, for a session receiver), in sequence order. */
  nextFor(sessionId: string | undefined, now: number): StoredMessage | undefined {
    for (const message of this.messages.values()) {
      if (sessionId !== undefined && message.sessionId !== sessionId) continue;
      if (sessionId !== undefined && message.state === 'active' && message.lock && message.availableAt <= now) {
        // Sessions deliver in order; a locked earlier message does not block later ones in the same session
        // (Service Bus prefetches within a session), so keep looking.
        continue;
      }
      if (isDeliverable(message, now)) return message;
    }
    return undefined;
  }

  /** A session with a deliverable message and no live lock, if any. */
  nextAvailableSession(): string | undefined {
    const now = Date.now();
    for (const message of this.messages.values()) {
      if (message.sessionId === undefined || !isDeliverable(message, now)) continue;
      const lock = this.sessionLocks.get(message.sessionId);
      if (!lock || lock.until <= now || lock.link.is_closed()) return message.sessionId;
    }
    return undefined;
  }

  /** Locks a message delivered on `link` (until its session's lock ends, for a session receiver). */
  lockForDelivery(message: StoredMessage, link: Sender, sessionId: string | undefined, now: number): MessageLock {
    const token = randomUUID();
    const sessionLock = sessionId !== undefined ? this.sessionLocks.get(sessionId) : undefined;
    const until = sessionLock ? sessionLock.until : now + this.options.lockDurationInMs;
    const lock: MessageLock = {
      token,
      until,
      link,
      delivery: undefined,
      timer: setTimeout(() => this.lockExpired(message), Math.max(0, until - now)),
    };
    lock.timer.unref();
    message.lock = lock;
    this.locks.set(token, message);
    return lock;
  }

  lockExpired(message: StoredMessage): void {
    if (!message.lock || this.messages.get(message.sequenceNumber) !== message) return;
    this.unlock(message, { countAsFailure: true });
    this.pump();
  }

  deferredLockExpired(message: StoredMessage): void {
    if (!message.lock) return;
    this.locks.delete(message.lock.token);
    message.lock = undefined;
  }

  /** Messages delivered on the link and not settled are released (their delivery still counts). */
  releaseLocksOf(link: Sender): void {
    for (const message of [...this.locks.values()]) {
      if (message.lock?.link === link) this.unlock(message, { countAsFailure: true });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Sessions

  lockSession(sessionId: string, link: Sender): SessionLock {
    const until = Date.now() + this.options.lockDurationInMs;
    const lock: SessionLock = { link, until, timer: setTimeout(() => this.sessionLockExpired(sessionId, lock), this.options.lockDurationInMs) };
    lock.timer.unref();
    this.sessionLocks.set(sessionId, lock);
    return lock;
  }

  sessionLockExpired(sessionId: string, lock: SessionLock): void {
    if (this.sessionLocks.get(sessionId) !== lock) return;
    clearTimeout(lock.timer);
    this.sessionLocks.delete(sessionId);
    // Every message delivered in the session loses its lock with it.
    for (const message of [...this.locks.values()]) {
      if (message.sessionId === sessionId) this.lockExpired(message);
    }
    this.events.sessionLockLost(this, sessionId, lock);
  }

  /** The session's receiver went away: its session lock (if still held by that link) is released. */
  releaseSessionLock(sessionId: string, link: Sender): void {
    const lock = this.sessionLocks.get(sessionId);
    if (lock && lock.link === link) {
      clearTimeout(lock.timer);
      this.sessionLocks.delete(sessionId);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Settlement, dead-lettering, expiry

  complete(message: StoredMessage): void {
    if (message.lock) {
      clearTimeout(message.lock.timer);
      this.locks.delete(message.lock.token);
    }
    this.messages.delete(message.sequenceNumber);
  }

  /** Releases a message's lock; a failed delivery beyond the max count moves it to the dead-letter queue. */
  unlock(message: StoredMessage, options: { countAsFailure: boolean; deferred?: boolean }): void {
    if (message.lock) {
      clearTimeout(message.lock.timer);
      this.locks.delete(message.lock.token);
      message.lock = undefined;
    }
    if (options.deferred) {
      message.state = 'deferred';
      return;
    }
    if (options.countAsFailure && message.deliveries >= this.options.maxDeliveryCount && !this.isDeadLetterQueue) {
      this.moveToDeadLetter(message, 'MaxDeliveryCountExceeded', `Message could not be consumed after ${this.options.maxDeliveryCount} delivery attempts.`);
    }
  }

  moveToDeadLetter(message: StoredMessage, reason?: string, description?: string, properties?: Record<string, unknown>): void {
    this.messages.delete(message.sequenceNumber);
    if (message.lock) {
      clearTimeout(message.lock.timer);
      this.locks.delete(message.lock.token);
    }
    const dlq = this.deadLetter;
    if (!dlq) return; // dead-lettering from the dead-letter queue completes the message
    const applicationProperties = { ...((message.message.application_properties ?? {}) as Record<string, unknown>), ...properties };
    if (reason !== undefined) applicationProperties.DeadLetterReason = reason;
    if (description !== undefined) applicationProperties.DeadLetterErrorDescription = description;
    const moved: StoredMessage = {
      ...message,
      sequenceNumber: dlq.nextSequenceNumber++,
      message: { ...message.message, application_properties: applicationProperties },
      state: 'active',
      availableAt: Date.now(),
      expiresAt: 8.64e15,
      lock: undefined,
      deadLetterSource: this.path,
    };
    dlq.messages.set(moved.sequenceNumber, moved);
    dlq.enqueued += 1;
    dlq.pump();
  }

  expireMessages(now: number): void {
    for (const message of [...this.messages.values()]) {
      if (message.expiresAt > now || message.lock) continue;
      if (this.options.deadLetteringOnMessageExpiration && !this.isDeadLetterQueue) {
        this.moveToDeadLetter(message, 'TTLExpiredException', 'The message expired and was dead lettered.');
      } else {
        this.messages.delete(message.sequenceNumber);
      }
    }
  }
}

function isDeliverable(message: StoredMessage, now: number): boolean {
  return message.state === 'active' && message.lock === undefined && message.availableAt <= now;
}

export function mergeApplicationProperties(message: StoredMessage, properties: Record<string, unknown>): void {
  message.message = {
    ...message.message,
    application_properties: { ...((message.message.application_properties ?? {}) as Record<string, unknown>), ...properties },
  };
}
