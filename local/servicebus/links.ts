/**
 * The links and connections of the local Service Bus broker: the AMQP side of what clients attach and send.
 * It owns the client connections and their reply links; it answers attaches — a sender to a queue, to `$cbs`
 * or to an entity's `$management`, a receiver from a queue or its dead-letter queue (plain, a named session,
 * or the next available session with its attach held back until one is locked or the wait times out), or the
 * reply link of `$cbs` / `$management` — and refuses the ones Service Bus refuses, in the shape the SDK
 * recognises. It takes in what arrives on a sender: messages for a queue (single or batched), CBS `put-token`
 * (any token is accepted), and `$management` requests, which it hands to `management` and answers on the
 * request's reply link. Consumers, once attached, are `consumers`' business.
 */
import type { Connection, EventContext } from 'rhea';
import { BATCH_FORMAT, decodeBatch, unwrapString, unwrapValue } from './codec';
import { SESSION_FILTER, type Consumers } from './consumers';
import { onManagementRequest } from './management';
import type { Entity } from './queue-state';
import type { Message, Receiver, Sender } from './rhea-shim';

const MANAGEMENT_SUFFIX = '/$management';

export class Links {
  private readonly connections = new Set<Connection>();
  /** Per connection: reply-to address → the link responses go out on. */
  private readonly replyLinks = new WeakMap<Connection, Map<string, Sender>>();

  constructor(
    private readonly entities: ReadonlyMap<string, Entity>,
    private readonly consumers: Consumers,
  ) {}

  // ---------------------------------------------------------------------------------------------
  // Connections

  connectionOpened(connection: Connection): void {
    this.connections.add(connection);
    this.replyLinks.set(connection, new Map());
  }

  connectionGone(connection: Connection): void {
    stopHeartbeats(connection);
    if (!this.connections.delete(connection)) return;
    this.consumers.connectionGone(connection);
  }

  dropConnections(): void {
    for (const connection of [...this.connections]) {
      const socket = (connection as unknown as { socket?: { destroy(): void } }).socket;
      socket?.destroy();
      this.connectionGone(connection);
    }
  }

  private resolve(address: string | undefined): { entity?: Entity; management: boolean; cbs: boolean; path: string } {
    let path = (address ?? '').replace(/^amqps?:\/\/[^/]+\//i, '').replace(/^\/+/, '');
    if (path === '$cbs') return { management: false, cbs: true, path };
    const management = path.toLowerCase().endsWith(MANAGEMENT_SUFFIX);
    if (management) path = path.slice(0, -MANAGEMENT_SUFFIX.length);
    return { entity: this.entities.get(path.toLowerCase()), management, cbs: false, path };
  }

  // ---------------------------------------------------------------------------------------------
  // Attach

  /** The client attached a sender: to a queue, to `$cbs`, or to an entity's `$management`. */
  onIncomingLink(receiver: Receiver): void {
    echoTermini(receiver);
    const target = (receiver.remote.attach as { target?: { address?: string } }).target?.address;
    const { entity, management, cbs, path } = this.resolve(target);
    if (!cbs && !entity) return notFound(receiver, path);
    if (entity?.isDeadLetterQueue && !management) {
      receiver.close({ condition: 'amqp:not-allowed', description: 'Cannot send to a dead-letter queue' });
      return;
    }
    receiver.local.attach.max_message_size = entity?.options.maxMessageSizeInBytes ?? 1024 * 1024;
    receiver.add_credit(1000);
  }

  /** The client attached a receiver: from a queue (or its DLQ), or the reply link of `$cbs` / `$management`. */
  onOutgoingLink(sender: Sender): void {
    const attach = sender.remote.attach as {
      source?: { address?: string; filter?: Record<string, unknown> };
      target?: { address?: string };
      snd_settle_mode?: number;
      properties?: Record<string, unknown>;
    };
    echoTermini(sender);
    const { entity, management, cbs, path } = this.resolve(attach.source?.address);
    if (cbs || management) {
      // Responses go to the link whose target is the request's reply-to; the SDK's CBS link has no target,
      // so also remember the link by the node it reads from.
      const links = this.replyLinks.get(sender.connection);
      const replyTo = attach.target?.address;
      if (replyTo) links?.set(replyTo, sender);
      links?.set(`source:${cbs ? '$cbs' : entity?.path}`, sender);
      if (!cbs && !entity) notFound(sender, path);
      return;
    }
    if (!entity) return notFound(sender, path);
    const receiveAndDelete = attach.snd_settle_mode === 1;
    const filter = attach.source?.filter;
    const wantsSession = filter !== undefined && SESSION_FILTER in filter;
    if (!entity.sessionful) {
      if (wantsSession) {
        sender.close({ condition: 'amqp:not-allowed', description: `${entity.path} does not require sessions` });
        return;
      }
      this.consumers.add(entity, sender, receiveAndDelete);
      return;
    }
    if (!wantsSession) {
      sender.close({
        condition: 'amqp:not-allowed',
        description: `It is not possible for an entity that requires sessions to create a non-sessionful message receiver (${entity.path})`,
      });
      return;
    }
    const requested = unwrapString(filter[SESSION_FILTER]);
    if (requested !== undefined) {
      const lock = entity.sessionLocks.get(requested);
      if (lock && lock.until > Date.now() && !lock.link.is_closed()) {
        refuseSession(sender, entity, {
          condition: 'com.microsoft:session-cannot-be-locked',
          description: `The requested session '${requested}' cannot be accepted. It may be locked by another receiver.`,
        });
        return;
      }
      this.consumers.lockSession(entity, requested, sender, receiveAndDelete);
      return;
    }
    // Next available session: answer the attach when a session has something to deliver, or time out.
    const available = entity.nextAvailableSession();
    if (available !== undefined) {
      this.consumers.lockSession(entity, available, sender, receiveAndDelete);
      return;
    }
    deferAttach(sender);
    const timeoutInMs = Math.max(1, Number(unwrapValue(attach.properties?.['com.microsoft:timeout']) ?? 60_000));
    this.consumers.awaitSession(entity, sender, receiveAndDelete, timeoutInMs, () => {
      if (sender.is_closed()) return;
      sender.open();
      refuseSession(sender, entity, { condition: 'com.microsoft:timeout', description: 'No session became available before the timeout' });
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Incoming messages

  onMessage(ctx: EventContext): void {
    const receiver = ctx.receiver as unknown as Receiver;
    const delivery = ctx.delivery!;
    const target = (receiver.remote.attach as { target?: { address?: string } }).target?.address;
    const { entity, management, cbs } = this.resolve(target);
    try {
      if (cbs) {
        this.reply(ctx, '$cbs', { 'status-code': 202, 'status-description': 'Accepted' });
        delivery.accept();
        return;
      }
      if (management) {
        delivery.accept();
        onManagementRequest(entity!, ctx.message as unknown as Message, (properties, body) => this.reply(ctx, entity!.path, properties, body));
        return;
      }
      // rhea decodes format-0 messages; a batch (0x80013700) arrives as raw bytes: one data section per message.
      const messages = delivery.format === BATCH_FORMAT ? decodeBatch(ctx.message as unknown as Buffer) : [ctx.message as unknown as Message];
      for (const message of messages) {
        const problem = entity!.validateIncoming(message);
        if (problem) {
          delivery.reject(problem);
          return;
        }
      }
      for (const message of messages) entity!.enqueue(message);
      delivery.accept();
      this.consumers.pump(entity!);
    } catch (error) {
      delivery.reject({ condition: 'amqp:internal-error', description: (error as Error).message });
    }
  }

  private reply(ctx: EventContext, node: string, properties: Record<string, unknown>, body?: unknown): void {
    const request = ctx.message as unknown as Message;
    const replyTo = request.reply_to;
    const links = this.replyLinks.get(ctx.connection);
    const link = (typeof replyTo === 'string' && replyTo ? links?.get(replyTo) : undefined) ?? links?.get(`source:${node}`);
    if (!link || link.is_closed()) return;
    link.send({
      correlation_id: request.message_id,
      to: replyTo,
      application_properties: properties,
      ...(body !== undefined && { body }),
    });
  }
}

// -------------------------------------------------------------------------------------------------
// Helpers

/** Answers an attach with the client's own source and target, as a broker does. */
function echoTermini(link: Sender | Receiver): void {
  const { source, target } = link.remote.attach as { source?: { address?: string; filter?: unknown }; target?: { address?: string } };
  if (source) link.set_source({ address: source.address, ...(source.filter ? { filter: source.filter } : {}) });
  if (target) link.set_target({ address: target.address });
}

/**
 * Service Bus refuses a session receiver by answering the attach without a session filter, then detaching
 * with the reason; the SDK recognises exactly that shape.
 */
function refuseSession(link: Sender, entity: Entity, error: { condition: string; description: string }): void {
  link.set_source({ address: entity.path });
  link.close(error);
}

/** rhea keeps a server connection's heartbeat timers running after its socket dies; stop them. */
function stopHeartbeats(connection: Connection): void {
  const timers = connection as unknown as { heartbeat_out?: NodeJS.Timeout; heartbeat_in?: NodeJS.Timeout; abort_idle?: NodeJS.Timeout };
  for (const key of ['heartbeat_out', 'heartbeat_in', 'abort_idle'] as const) {
    if (timers[key]) clearTimeout(timers[key]);
    timers[key] = undefined;
  }
}

function notFound(link: Sender | Receiver, path: string): void {
  link.close({ condition: 'amqp:not-found', description: `The messaging entity '${path}' could not be found.` });
}

/**
 * rhea answers an attach immediately; a receiver waiting for "the next available session" must not get
 * its attach until a session is locked for it (or the wait times out). Undo the automatic open; the
 * broker calls `open()` later.
 */
function deferAttach(link: Sender): void {
  const state = (link as unknown as { state: { local_open: boolean; open_requests: number } }).state;
  state.local_open = false;
  state.open_requests = 0;
}
