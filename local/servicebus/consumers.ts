/**
 * The consumers of the local Service Bus broker: the receivers attached to each entity and what they are
 * given. It owns, per entity, the consumer links (plain, or locked to one session) and the session receivers
 * still waiting for a session; it locks a session to its receiver and answers that receiver's attach with the
 * session filter and lock expiry, hands available messages to consumers as credit allows (drain included) with
 * lock tokens as delivery tags, settles the dispositions clients send for them, and lets go of a consumer's
 * session and message locks when its link or connection goes away. It is the link side of {@link QueueEvents}.
 */
import type { Connection, Delivery } from 'rhea';
import rhea from 'rhea';
import { lockTokenToTag, longBytes, outgoingMessage, randomTag, stringOrUndefined, tagToLockToken, toDotNetTicks } from './codec';
import { mergeApplicationProperties, type Entity, type QueueEvents, type SessionLock, type StoredMessage } from './queue-state';
import { outcomes, type Sender } from './rhea-shim';

export const SESSION_FILTER = 'com.microsoft:session-filter';

interface ConsumerLink {
  link: Sender;
  entity: Entity;
  receiveAndDelete: boolean;
  /** Set for session receivers. */
  sessionId?: string;
}

interface PendingSessionAccept {
  link: Sender;
  entity: Entity;
  receiveAndDelete: boolean;
  timer: NodeJS.Timeout;
}

/** The receivers attached to one entity. */
interface Attached {
  consumers: Set<ConsumerLink>;
  pendingAccepts: Set<PendingSessionAccept>;
}

type Outcome = 'accepted' | 'rejected' | 'modified' | 'released';

export class Consumers implements QueueEvents {
  private readonly attachedTo = new Map<Entity, Attached>();
  private closed = false;

  constructor(private readonly entities: ReadonlyMap<string, Entity>) {}

  /** The broker is stopping: deliver nothing more, and stop the timers of receivers waiting for a session. */
  stop(): void {
    this.closed = true;
    for (const entity of this.entities.values()) {
      for (const pending of this.attached(entity).pendingAccepts) clearTimeout(pending.timer);
    }
  }

  private attached(entity: Entity): Attached {
    let attached = this.attachedTo.get(entity);
    if (!attached) {
      attached = { consumers: new Set(), pendingAccepts: new Set() };
      this.attachedTo.set(entity, attached);
    }
    return attached;
  }

  // ---------------------------------------------------------------------------------------------
  // Consumers coming and going

  /** A receiver of an entity without sessions. */
  add(entity: Entity, sender: Sender, receiveAndDelete: boolean): void {
    this.attached(entity).consumers.add({ link: sender, entity, receiveAndDelete });
    this.pump(entity);
  }

  /** Locks `sessionId` to a session receiver and answers its attach with the session and the lock expiry. */
  lockSession(entity: Entity, sessionId: string, sender: Sender, receiveAndDelete: boolean): void {
    const { until } = entity.lockSession(sessionId, sender);
    sender.set_source({
      address: (sender.remote.attach.source as { address?: string } | undefined)?.address ?? entity.path,
      filter: { [SESSION_FILTER]: sessionId },
    });
    sender.local.attach.properties = {
      'com.microsoft:locked-until-utc': rhea.types.wrap_long(longBytes(toDotNetTicks(until))),
    };
    if (!sender.is_open()) sender.open();
    this.attached(entity).consumers.add({ link: sender, entity, receiveAndDelete, sessionId });
    this.pump(entity);
  }

  /** A receiver for the next available session waits until one has something to deliver, or `onTimeout`. */
  awaitSession(entity: Entity, sender: Sender, receiveAndDelete: boolean, timeoutInMs: number, onTimeout: () => void): void {
    const { pendingAccepts } = this.attached(entity);
    const pending: PendingSessionAccept = {
      link: sender,
      entity,
      receiveAndDelete,
      timer: setTimeout(() => {
        pendingAccepts.delete(pending);
        onTimeout();
      }, timeoutInMs),
    };
    pending.timer.unref();
    pendingAccepts.add(pending);
  }

  /** The session's lock ran out: its receiver is detached. */
  sessionLockLost(entity: Entity, sessionId: string, lock: SessionLock): void {
    if (!lock.link.is_closed()) {
      lock.link.close({ condition: 'com.microsoft:session-lock-lost', description: `The session lock for '${sessionId}' has expired` });
    }
    const { consumers } = this.attached(entity);
    for (const consumer of [...consumers]) if (consumer.link === lock.link) consumers.delete(consumer);
    this.pump(entity);
  }

  linkGone(sender: Sender): void {
    for (const entity of this.entities.values()) {
      for (const consumer of [...this.attached(entity).consumers]) if (consumer.link === sender) this.removeConsumer(consumer);
    }
  }

  connectionGone(connection: Connection): void {
    for (const entity of this.entities.values()) {
      const { consumers, pendingAccepts } = this.attached(entity);
      for (const consumer of [...consumers]) if (consumer.link.connection === connection) this.removeConsumer(consumer);
      for (const pending of [...pendingAccepts]) {
        if (pending.link.connection === connection) {
          clearTimeout(pending.timer);
          pendingAccepts.delete(pending);
        }
      }
    }
  }

  private removeConsumer(consumer: ConsumerLink): void {
    const { entity } = consumer;
    this.attached(entity).consumers.delete(consumer);
    if (consumer.sessionId !== undefined) entity.releaseSessionLock(consumer.sessionId, consumer.link);
    entity.releaseLocksOf(consumer.link);
    this.pump(entity);
  }

  // ---------------------------------------------------------------------------------------------
  // Delivery

  onSendable(sender: Sender): void {
    for (const entity of this.entities.values()) {
      for (const consumer of this.attached(entity).consumers) {
        if (consumer.link === sender) {
          this.pump(entity);
          return;
        }
      }
    }
  }

  /** Hands available messages to consumers with credit, in sequence order (per session for sessions). */
  pump(entity: Entity): void {
    if (this.closed) return;
    const now = Date.now();
    entity.expireMessages(now);
    this.servePendingAccepts(entity);
    for (const consumer of this.attached(entity).consumers) {
      const link = consumer.link;
      if (link.is_closed()) continue;
      while (link.sendable()) {
        const next = entity.nextFor(consumer.sessionId, now);
        if (!next) break;
        this.deliver(entity, consumer, next, now);
      }
      if (link.credit > 0 && (link as unknown as { _draining?: boolean })._draining) link.set_drained(true);
    }
  }

  private servePendingAccepts(entity: Entity): void {
    const { pendingAccepts } = this.attached(entity);
    for (const pending of [...pendingAccepts]) {
      if (pending.link.is_closed()) {
        clearTimeout(pending.timer);
        pendingAccepts.delete(pending);
        continue;
      }
      const sessionId = entity.nextAvailableSession();
      if (sessionId === undefined) return;
      clearTimeout(pending.timer);
      pendingAccepts.delete(pending);
      this.lockSession(entity, sessionId, pending.link, pending.receiveAndDelete);
    }
  }

  private deliver(entity: Entity, consumer: ConsumerLink, message: StoredMessage, now: number): void {
    const previousDeliveries = message.deliveries;
    message.deliveries += 1;
    if (consumer.receiveAndDelete) {
      entity.messages.delete(message.sequenceNumber);
      consumer.link.send(outgoingMessage(message, previousDeliveries, undefined), randomTag());
      return;
    }
    const lock = entity.lockForDelivery(message, consumer.link, consumer.sessionId, now);
    lock.delivery = consumer.link.send(outgoingMessage(message, previousDeliveries, lock.until), lockTokenToTag(lock.token));
  }

  // ---------------------------------------------------------------------------------------------
  // Settlement

  onDisposition(sender: Sender, delivery: Delivery, outcome: Outcome): void {
    const entity = [...this.entities.values()].find((e) => [...this.attached(e).consumers].some((c) => c.link === sender));
    const token = tagToLockToken(delivery.tag as Buffer);
    const message = entity?.locks.get(token);
    if (!entity || !message || message.lock?.link !== sender) {
      delivery.update(true, outcomes.rejected({ error: lockLost() }).described());
      return;
    }
    const state = (delivery as unknown as { remote_state?: Record<string, unknown> }).remote_state ?? {};
    switch (outcome) {
      case 'accepted':
        entity.complete(message);
        break;
      case 'rejected': {
        const error = (state.error ?? {}) as { condition?: string; info?: Record<string, unknown> };
        if (error.condition === 'com.microsoft:dead-letter') {
          const { DeadLetterReason, DeadLetterErrorDescription, ...properties } = error.info ?? {};
          entity.moveToDeadLetter(message, stringOrUndefined(DeadLetterReason), stringOrUndefined(DeadLetterErrorDescription), properties);
        } else {
          entity.unlock(message, { countAsFailure: true });
        }
        break;
      }
      case 'modified': {
        const annotations = (state.message_annotations ?? undefined) as Record<string, unknown> | undefined;
        if (annotations) mergeApplicationProperties(message, annotations);
        if (state.undeliverable_here) entity.unlock(message, { countAsFailure: false, deferred: true });
        else entity.unlock(message, { countAsFailure: state.delivery_failed !== false });
        break;
      }
      case 'released':
        entity.unlock(message, { countAsFailure: false });
        break;
    }
    delivery.update(true, outcomes.accepted().described());
    this.pump(entity);
  }
}

function lockLost() {
  return {
    condition: 'com.microsoft:message-lock-lost',
    description: 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.',
  };
}
