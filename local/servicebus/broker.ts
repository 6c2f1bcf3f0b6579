/**
 * A local Service Bus broker: an AMQP 1.0 server (on `rhea`) that the real `@azure/service-bus` SDK works
 * against, connected with the official emulator's connection-string form (`…;UseDevelopmentEmulator=true;`,
 * plain TCP).
 *
 * What it implements — what this project and its tests use:
 * - SASL ANONYMOUS and CBS `put-token` (any token is accepted: it is a stand-in, not a security boundary);
 * - queues with a dead-letter sub-queue (`<queue>/$DeadLetterQueue`), declared up front (Config.json shape);
 * - send, single and batched (message format 0x80013700), with `max_message_size` and message ids assigned
 *   when the client sends none;
 * - peek-lock and receive-and-delete receivers with credit and drain; complete / abandon / dead-letter / defer
 *   as link dispositions (answered with settled dispositions, `com.microsoft:message-lock-lost` when the lock
 *   is gone) and through `$management` update-disposition;
 * - lock duration, lock renewal, lock expiry → redelivery, max delivery count → dead-letter queue;
 * - scheduled messages (the `x-opt-scheduled-enqueue-time` annotation and `$management` schedule/cancel);
 * - duplicate detection by `message-id` within the queue's window;
 * - sessions: accept a named session or the next available one, one receiver per session, session lock and
 *   its renewal, session state, messages of a session delivered in order;
 * - message time-to-live (expired messages are dropped or dead-lettered);
 * - `$management`: peek, renew-lock, schedule, cancel, receive-by-sequence-number (deferred), update-disposition,
 *   get/set session state, renew-session-lock.
 *
 * What it does not do: TLS, topics and subscriptions, rules, transactions, partitioned entities, auto-forward,
 * quotas, authorization. State is in memory only. See docs/local-stand-ins.md.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import rhea, { type Connection, type Container, type Delivery, type EventContext } from 'rhea';
import { QUEUE_DEFAULTS, type QueueOptions } from './config';

// rhea's typings cover less than its API; these describe the parts the broker uses.
/* eslint-disable @typescript-eslint/no-explicit-any */
type Message = Record<string, any>;
interface LinkBase {
  connection: Connection;
  set_source(fields: Record<string, unknown>): void;
  set_target(fields: Record<string, unknown>): void;
  local: { attach: Record<string, any> };
  remote: { attach: Record<string, any> };
  is_open(): boolean;
  is_closed(): boolean;
  open(): void;
  close(error?: { condition: string; description: string }): void;
}
interface Sender extends LinkBase {
  credit: number;
  sendable(): boolean;
  set_drained(drained: boolean): void;
  send(message: Message, tag?: Buffer): Delivery;
}
interface Receiver extends LinkBase {
  add_credit(credit: number): void;
}
const outcomes = rhea.message as unknown as {
  accepted(): { described(): unknown };
  rejected(fields: { error: { condition: string; description: string } }): { described(): unknown };
  encode(message: Message): Buffer;
  decode(buffer: Buffer): Message;
};

export const EMULATOR_KEY_NAME = 'RootManageSharedAccessKey';
export const EMULATOR_KEY = 'SAS_KEY_VALUE';
const BATCH_FORMAT = 0x80013700;
const DEAD_LETTER_SUFFIX = '/$DeadLetterQueue';
const MANAGEMENT_SUFFIX = '/$management';
const SESSION_FILTER = 'com.microsoft:session-filter';

type MessageState = 'active' | 'deferred' | 'scheduled';

interface StoredMessage {
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

interface SessionLock {
  link: Sender;
  until: number;
  timer: NodeJS.Timeout;
}

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

class Entity {
  readonly messages = new Map<number, StoredMessage>();
  readonly locks = new Map<string, StoredMessage>();
  readonly consumers = new Set<ConsumerLink>();
  readonly sessionLocks = new Map<string, SessionLock>();
  readonly sessionStates = new Map<string, Buffer | null>();
  readonly duplicates = new Map<string, number>();
  readonly pendingAccepts = new Set<PendingSessionAccept>();
  nextSequenceNumber = 1;
  enqueued = 0;
  duplicatesDropped = 0;
  deadLetter: Entity | undefined;

  constructor(
    readonly path: string,
    readonly options: QueueOptions,
    readonly isDeadLetterQueue: boolean,
  ) {}

  get sessionful(): boolean {
    return this.options.requiresSession && !this.isDeadLetterQueue;
  }
}

export interface LocalServiceBusOptions {
  queues: Array<Partial<QueueOptions> & { name: string }>;
  port?: number;
  host?: string;
}

export class LocalServiceBus {
  private readonly entities = new Map<string, Entity>();
  private readonly connections = new Set<Connection>();
  /** Per connection: reply-to address → the link responses go out on. */
  private readonly replyLinks = new WeakMap<Connection, Map<string, Sender>>();
  private container: Container;
  private listener: ReturnType<Container['listen']> | undefined;
  private closed = false;
  port = 0;
  host = '127.0.0.1';

  private constructor(options: LocalServiceBusOptions) {
    for (const queue of options.queues) {
      const full: QueueOptions = { ...QUEUE_DEFAULTS, ...queue };
      const main = new Entity(queue.name.toLowerCase(), full, false);
      main.deadLetter = new Entity(`${main.path}${DEAD_LETTER_SUFFIX.toLowerCase()}`, full, true);
      this.entities.set(main.path, main);
      this.entities.set(main.deadLetter.path, main.deadLetter);
    }
    this.container = rhea.create_container({
      id: 'local-servicebus',
      // We settle and decide outcomes ourselves.
      autoaccept: false,
      autosettle: false,
      treat_modified_as_released: false,
    } as never);
    this.container.sasl_server_mechanisms.enable_anonymous();
    this.wire();
  }

  static async start(options: LocalServiceBusOptions): Promise<LocalServiceBus> {
    const broker = new LocalServiceBus(options);
    await broker.listen(options.port ?? 0, options.host ?? '127.0.0.1');
    return broker;
  }

  /** The official emulator's connection-string form, pointing at this broker. */
  get connectionString(): string {
    return `Endpoint=sb://${this.host}:${this.port};SharedAccessKeyName=${EMULATOR_KEY_NAME};SharedAccessKey=${EMULATOR_KEY};UseDevelopmentEmulator=true;`;
  }

  /** Counts for tests and diagnostics. */
  stats(queue: string): EntityStats {
    const entity = this.entity(queue);
    const all = [...entity.messages.values()];
    return {
      active: all.filter((m) => m.state === 'active').length,
      scheduled: all.filter((m) => m.state === 'scheduled').length,
      deferred: all.filter((m) => m.state === 'deferred').length,
      locked: all.filter((m) => m.lock).length,
      deadLettered: entity.deadLetter?.messages.size ?? 0,
      enqueued: entity.enqueued,
      duplicatesDropped: entity.duplicatesDropped,
    };
  }

  /** Fault injection: every lock on `queue` is lost now (messages become available again). */
  expireLocks(queue: string): void {
    const entity = this.entity(queue);
    for (const message of [...entity.locks.values()]) this.lockExpired(entity, message);
    for (const [sessionId, lock] of [...entity.sessionLocks]) this.sessionLockExpired(entity, sessionId, lock);
  }

  /** Fault injection: drops every client connection (as a broker restart would); state is kept. */
  dropConnections(): void {
    for (const connection of [...this.connections]) {
      const socket = (connection as unknown as { socket?: { destroy(): void } }).socket;
      socket?.destroy();
      this.connectionGone(connection);
    }
  }

  async stop(): Promise<void> {
    this.closed = true;
    this.dropConnections();
    for (const entity of this.entities.values()) {
      for (const message of entity.messages.values()) if (message.lock) clearTimeout(message.lock.timer);
      for (const lock of entity.sessionLocks.values()) clearTimeout(lock.timer);
      for (const pending of entity.pendingAccepts) clearTimeout(pending.timer);
      for (const timer of this.scheduledTimers.get(entity) ?? []) clearTimeout(timer);
    }
    await new Promise<void>((resolve) => {
      if (!this.listener) return resolve();
      this.listener.close(() => resolve());
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Wiring

  private async listen(port: number, host: string): Promise<void> {
    this.host = host;
    this.listener = this.container.listen({ port, host });
    await new Promise<void>((resolve, reject) => {
      this.listener!.once('listening', () => resolve());
      this.listener!.once('error', reject);
    });
    this.port = (this.listener.address() as AddressInfo).port;
  }

  private wire(): void {
    const c = this.container;
    c.on('connection_open', (ctx: EventContext) => {
      this.connections.add(ctx.connection);
      this.replyLinks.set(ctx.connection, new Map());
    });
    const forget = (ctx: EventContext) => this.connectionGone(ctx.connection);
    c.on('connection_close', forget);
    c.on('disconnected', forget);
    c.on('connection_error', forget);
    c.on('receiver_open', (ctx: EventContext) => this.onIncomingLink((ctx.receiver as unknown as Receiver)));
    c.on('sender_open', (ctx: EventContext) => this.onOutgoingLink((ctx.sender as unknown as Sender)));
    c.on('message', (ctx: EventContext) => this.onMessage(ctx));
    c.on('sendable', (ctx: EventContext) => this.onSendable((ctx.sender as unknown as Sender)));
    c.on('sender_draining', (ctx: EventContext) => this.onSendable((ctx.sender as unknown as Sender)));
    c.on('sender_close', (ctx: EventContext) => this.outgoingLinkGone((ctx.sender as unknown as Sender)));
    c.on('sender_error', (ctx: EventContext) => this.outgoingLinkGone((ctx.sender as unknown as Sender)));
    for (const outcome of ['accepted', 'rejected', 'modified', 'released'] as const) {
      c.on(outcome, (ctx: EventContext) => this.onDisposition((ctx.sender as unknown as Sender), ctx.delivery!, outcome));
    }
    c.on('error', () => undefined);
    c.on('protocol_error', () => undefined);
  }

  private connectionGone(connection: Connection): void {
    stopHeartbeats(connection);
    if (!this.connections.delete(connection)) return;
    for (const entity of this.entities.values()) {
      for (const consumer of [...entity.consumers]) if (consumer.link.connection === connection) this.removeConsumer(consumer);
      for (const pending of [...entity.pendingAccepts]) {
        if (pending.link.connection === connection) {
          clearTimeout(pending.timer);
          entity.pendingAccepts.delete(pending);
        }
      }
    }
  }

  private resolve(address: string | undefined): { entity?: Entity; management: boolean; cbs: boolean; path: string } {
    let path = (address ?? '').replace(/^amqps?:\/\/[^/]+\//i, '').replace(/^\/+/, '');
    if (path === '$cbs') return { management: false, cbs: true, path };
    const management = path.toLowerCase().endsWith(MANAGEMENT_SUFFIX);
    if (management) path = path.slice(0, -MANAGEMENT_SUFFIX.length);
    return { entity: this.entities.get(path.toLowerCase()), management, cbs: false, path };
  }

  private entity(name: string): Entity {
    const entity = this.entities.get(name.toLowerCase());
    if (!entity) throw new Error(`No queue ${name}`);
    return entity;
  }

  // ---------------------------------------------------------------------------------------------
  // Links

  /** The client attached a sender: to a queue, to `$cbs`, or to an entity's `$management`. */
  private onIncomingLink(receiver: Receiver): void {
    echoTermini(receiver);
    const target = (receiver.remote.attach as { target?: { address?: string } }).target?.address;
    const { entity, management, cbs, path } = this.resolve(target);
    if (!cbs && !entity) return notFound(receiver, path);
    if (entity?.isDeadLetterQueue && !management) {
      receiver.close({ condition: 'amqp:not-allowed', description: 'Cannot send to a dead-letter queue' });
      return;
    }
    (receiver.local.attach as Record<string, unknown>).max_message_size = entity?.options.maxMessageSizeInBytes ?? 1024 * 1024;
    receiver.add_credit(1000);
  }

  /** The client attached a receiver: from a queue (or its DLQ), or the reply link of `$cbs` / `$management`. */
  private onOutgoingLink(sender: Sender): void {
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
      entity.consumers.add({ link: sender, entity, receiveAndDelete });
      this.pump(entity);
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
      this.lockSession(entity, requested, sender, receiveAndDelete);
      return;
    }
    // Next available session: answer the attach when a session has something to deliver, or time out.
    const available = this.nextAvailableSession(entity);
    if (available !== undefined) {
      this.lockSession(entity, available, sender, receiveAndDelete);
      return;
    }
    deferAttach(sender);
    const timeoutInMs = Math.max(1, Number(unwrapValue(attach.properties?.['com.microsoft:timeout']) ?? 60_000));
    const pending: PendingSessionAccept = {
      link: sender,
      entity,
      receiveAndDelete,
      timer: setTimeout(() => {
        entity.pendingAccepts.delete(pending);
        if (sender.is_closed()) return;
        sender.open();
        refuseSession(sender, entity, { condition: 'com.microsoft:timeout', description: 'No session became available before the timeout' });
      }, timeoutInMs),
    };
    pending.timer.unref();
    entity.pendingAccepts.add(pending);
  }

  private lockSession(entity: Entity, sessionId: string, sender: Sender, receiveAndDelete: boolean): void {
    const until = Date.now() + entity.options.lockDurationInMs;
    const lock: SessionLock = { link: sender, until, timer: setTimeout(() => this.sessionLockExpired(entity, sessionId, lock), entity.options.lockDurationInMs) };
    lock.timer.unref();
    entity.sessionLocks.set(sessionId, lock);
    sender.set_source({
      address: (sender.remote.attach.source as { address?: string } | undefined)?.address ?? entity.path,
      filter: { [SESSION_FILTER]: sessionId },
    });
    (sender.local.attach as Record<string, unknown>).properties = {
      'com.microsoft:locked-until-utc': rhea.types.wrap_long(longBytes(toDotNetTicks(until)) as never),
    };
    if (!sender.is_open()) sender.open();
    entity.consumers.add({ link: sender, entity, receiveAndDelete, sessionId });
    this.pump(entity);
  }

  private nextAvailableSession(entity: Entity): string | undefined {
    const now = Date.now();
    for (const message of entity.messages.values()) {
      if (message.sessionId === undefined || !this.isDeliverable(message, now)) continue;
      const lock = entity.sessionLocks.get(message.sessionId);
      if (!lock || lock.until <= now || lock.link.is_closed()) return message.sessionId;
    }
    return undefined;
  }

  private sessionLockExpired(entity: Entity, sessionId: string, lock: SessionLock): void {
    if (entity.sessionLocks.get(sessionId) !== lock) return;
    clearTimeout(lock.timer);
    entity.sessionLocks.delete(sessionId);
    // Every message delivered in the session loses its lock with it.
    for (const message of [...entity.locks.values()]) {
      if (message.sessionId === sessionId) this.lockExpired(entity, message);
    }
    if (!lock.link.is_closed()) {
      lock.link.close({ condition: 'com.microsoft:session-lock-lost', description: `The session lock for '${sessionId}' has expired` });
    }
    for (const consumer of [...entity.consumers]) if (consumer.link === lock.link) entity.consumers.delete(consumer);
    this.pump(entity);
  }

  private outgoingLinkGone(sender: Sender): void {
    for (const entity of this.entities.values()) {
      for (const consumer of [...entity.consumers]) if (consumer.link === sender) this.removeConsumer(consumer);
    }
  }

  private removeConsumer(consumer: ConsumerLink): void {
    const { entity } = consumer;
    entity.consumers.delete(consumer);
    if (consumer.sessionId !== undefined) {
      const lock = entity.sessionLocks.get(consumer.sessionId);
      if (lock && lock.link === consumer.link) {
        clearTimeout(lock.timer);
        entity.sessionLocks.delete(consumer.sessionId);
      }
    }
    // Messages delivered on the link and not settled are released (their delivery still counts).
    for (const message of [...entity.locks.values()]) {
      if (message.lock?.link === consumer.link) this.unlock(entity, message, { countAsFailure: true });
    }
    this.pump(entity);
  }

  // ---------------------------------------------------------------------------------------------
  // Incoming messages

  private onMessage(ctx: EventContext): void {
    const receiver = (ctx.receiver as unknown as Receiver);
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
        this.onManagementRequest(ctx, entity!);
        return;
      }
      // rhea decodes format-0 messages; a batch (0x80013700) arrives as raw bytes: one data section per message.
      const messages = delivery.format === BATCH_FORMAT ? decodeBatch(ctx.message as unknown as Buffer) : [ctx.message as Message];
      for (const message of messages) {
        const problem = this.validateIncoming(entity!, message);
        if (problem) {
          delivery.reject(problem);
          return;
        }
      }
      for (const message of messages) this.enqueue(entity!, message);
      delivery.accept();
      this.pump(entity!);
    } catch (error) {
      delivery.reject({ condition: 'amqp:internal-error', description: (error as Error).message });
    }
  }

  private validateIncoming(entity: Entity, message: Message): { condition: string; description: string } | undefined {
    if (entity.sessionful && (message.group_id === undefined || message.group_id === null || message.group_id === '')) {
      return {
        condition: 'com.microsoft:argument-error',
        description: `The SessionId was not set on a message, and it cannot be sent to the entity '${entity.path}'. Entities that have session support enabled can only receive messages that have the SessionId set.`,
      };
    }
    const encodedSize = outcomes.encode(message).length;
    if (encodedSize > entity.options.maxMessageSizeInBytes) {
      return { condition: 'amqp:link:message-size-exceeded', description: `Message of ${encodedSize} bytes exceeds ${entity.options.maxMessageSizeInBytes}` };
    }
    return undefined;
  }

  /** Stores a message sent by a client. Returns its sequence number (undefined when dropped as a duplicate). */
  private enqueue(entity: Entity, incoming: Message, scheduledAt?: number): number | undefined {
    const now = Date.now();
    const message: Message = { ...incoming };
    if (message.message_id === undefined || message.message_id === null || message.message_id === '') {
      message.message_id = randomUUID().replace(/-/g, '');
    }
    const messageId = String(message.message_id);
    if (entity.options.requiresDuplicateDetection) {
      for (const [id, until] of entity.duplicates) if (until <= now) entity.duplicates.delete(id);
      if (entity.duplicates.has(messageId)) {
        entity.duplicatesDropped += 1;
        return undefined;
      }
      entity.duplicates.set(messageId, now + entity.options.duplicateDetectionWindowInMs);
    }
    const annotations = { ...(message.message_annotations ?? {}) } as Record<string, unknown>;
    const annotated = unwrapValue(annotations['x-opt-scheduled-enqueue-time']);
    const availableAt = scheduledAt ?? (annotated !== undefined ? toMillis(annotated) : now);
    message.message_annotations = annotations;
    const ttl = message.ttl !== undefined ? Number(message.ttl) : entity.options.defaultMessageTimeToLiveInMs;
    const stored: StoredMessage = {
      sequenceNumber: entity.nextSequenceNumber++,
      message,
      messageId,
      sessionId: message.group_id === undefined || message.group_id === null ? undefined : String(message.group_id),
      enqueuedAt: now,
      availableAt,
      expiresAt: Math.min(availableAt + Math.min(ttl, entity.options.defaultMessageTimeToLiveInMs), 8.64e15),
      state: availableAt > now ? 'scheduled' : 'active',
      deliveries: 0,
      lock: undefined,
    };
    entity.messages.set(stored.sequenceNumber, stored);
    entity.enqueued += 1;
    if (stored.state === 'scheduled') this.scheduleActivation(entity, stored);
    return stored.sequenceNumber;
  }

  private readonly scheduledTimers = new Map<Entity, Set<NodeJS.Timeout>>();

  private scheduleActivation(entity: Entity, message: StoredMessage): void {
    const timers = this.scheduledTimers.get(entity) ?? new Set<NodeJS.Timeout>();
    this.scheduledTimers.set(entity, timers);
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (entity.messages.get(message.sequenceNumber) === message && message.state === 'scheduled') {
        message.state = 'active';
        this.pump(entity);
      }
    }, Math.max(0, message.availableAt - Date.now()));
    timer.unref();
    timers.add(timer);
  }

  // ---------------------------------------------------------------------------------------------
  // Delivery

  private onSendable(sender: Sender): void {
    for (const entity of this.entities.values()) {
      for (const consumer of entity.consumers) {
        if (consumer.link === sender) {
          this.pump(entity);
          return;
        }
      }
    }
  }

  private isDeliverable(message: StoredMessage, now: number): boolean {
    return message.state === 'active' && message.lock === undefined && message.availableAt <= now;
  }

  /** Hands available messages to consumers with credit, in sequence order (per session for sessions). */
  private pump(entity: Entity): void {
    if (this.closed) return;
    const now = Date.now();
    this.expireMessages(entity, now);
    this.servePendingAccepts(entity);
    for (const consumer of entity.consumers) {
      const link = consumer.link;
      if (link.is_closed()) continue;
      while (link.sendable()) {
        const next = this.nextFor(entity, consumer, now);
        if (!next) break;
        this.deliver(entity, consumer, next, now);
      }
      if (link.credit > 0 && (link as unknown as { _draining?: boolean })._draining) link.set_drained(true);
    }
  }

  private nextFor(entity: Entity, consumer: ConsumerLink, now: number): StoredMessage | undefined {
    for (const message of entity.messages.values()) {
      if (consumer.sessionId !== undefined && message.sessionId !== consumer.sessionId) continue;
      if (consumer.sessionId !== undefined && message.state === 'active' && message.lock && message.availableAt <= now) {
        // Sessions deliver in order; a locked earlier message does not block later ones in the same session
        // (Service Bus prefetches within a session), so keep looking.
        continue;
      }
      if (this.isDeliverable(message, now)) return message;
    }
    return undefined;
  }

  private servePendingAccepts(entity: Entity): void {
    for (const pending of [...entity.pendingAccepts]) {
      if (pending.link.is_closed()) {
        clearTimeout(pending.timer);
        entity.pendingAccepts.delete(pending);
        continue;
      }
      const sessionId = this.nextAvailableSession(entity);
      if (sessionId === undefined) return;
      clearTimeout(pending.timer);
      entity.pendingAccepts.delete(pending);
      this.lockSession(entity, sessionId, pending.link, pending.receiveAndDelete);
    }
  }

  private deliver(entity: Entity, consumer: ConsumerLink, message: StoredMessage, now: number): void {
    const previousDeliveries = message.deliveries;
    message.deliveries += 1;
    if (consumer.receiveAndDelete) {
      entity.messages.delete(message.sequenceNumber);
      consumer.link.send(this.outgoing(entity, message, previousDeliveries, undefined), randomTag());
      return;
    }
    const token = randomUUID();
    const sessionLock = consumer.sessionId !== undefined ? entity.sessionLocks.get(consumer.sessionId) : undefined;
    const until = sessionLock ? sessionLock.until : now + entity.options.lockDurationInMs;
    const lock: MessageLock = {
      token,
      until,
      link: consumer.link,
      delivery: undefined,
      timer: setTimeout(() => this.lockExpired(entity, message), Math.max(0, until - now)),
    };
    lock.timer.unref();
    message.lock = lock;
    entity.locks.set(token, message);
    lock.delivery = consumer.link.send(this.outgoing(entity, message, previousDeliveries, until), lockTokenToTag(token));
  }

  /** The message as it goes out: the client's message plus the broker's annotations. */
  private outgoing(entity: Entity, message: StoredMessage, previousDeliveries: number, lockedUntil: number | undefined): Message {
    const annotations: Record<string, unknown> = {
      ...(message.message.message_annotations ?? {}),
      'x-opt-sequence-number': rhea.types.wrap_long(message.sequenceNumber),
      'x-opt-enqueue-sequence-number': rhea.types.wrap_long(message.sequenceNumber),
      'x-opt-enqueued-time': rhea.types.wrap_timestamp(message.enqueuedAt),
      'x-opt-message-state': rhea.types.wrap_int(message.state === 'active' ? 0 : message.state === 'deferred' ? 1 : 2),
    };
    if (lockedUntil !== undefined) annotations['x-opt-locked-until'] = rhea.types.wrap_timestamp(lockedUntil);
    if (message.deadLetterSource) annotations['x-opt-deadletter-source'] = message.deadLetterSource;
    void entity;
    return {
      ...message.message,
      delivery_count: previousDeliveries,
      message_annotations: annotations,
    } as Message;
  }

  private lockExpired(entity: Entity, message: StoredMessage): void {
    if (!message.lock || entity.messages.get(message.sequenceNumber) !== message) return;
    this.unlock(entity, message, { countAsFailure: true });
    this.pump(entity);
  }

  /** Releases a message's lock; a failed delivery beyond the max count moves it to the dead-letter queue. */
  private unlock(entity: Entity, message: StoredMessage, options: { countAsFailure: boolean; deferred?: boolean }): void {
    if (message.lock) {
      clearTimeout(message.lock.timer);
      entity.locks.delete(message.lock.token);
      message.lock = undefined;
    }
    if (options.deferred) {
      message.state = 'deferred';
      return;
    }
    if (options.countAsFailure && message.deliveries >= entity.options.maxDeliveryCount && !entity.isDeadLetterQueue) {
      this.moveToDeadLetter(entity, message, 'MaxDeliveryCountExceeded', `Message could not be consumed after ${entity.options.maxDeliveryCount} delivery attempts.`);
    }
  }

  private moveToDeadLetter(entity: Entity, message: StoredMessage, reason?: string, description?: string, properties?: Record<string, unknown>): void {
    entity.messages.delete(message.sequenceNumber);
    if (message.lock) {
      clearTimeout(message.lock.timer);
      entity.locks.delete(message.lock.token);
    }
    const dlq = entity.deadLetter;
    if (!dlq) return; // dead-lettering from the dead-letter queue completes the message
    const applicationProperties = { ...(message.message.application_properties ?? {}), ...properties } as Record<string, unknown>;
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
      deadLetterSource: entity.path,
    };
    dlq.messages.set(moved.sequenceNumber, moved);
    dlq.enqueued += 1;
    this.pump(dlq);
  }

  private expireMessages(entity: Entity, now: number): void {
    for (const message of [...entity.messages.values()]) {
      if (message.expiresAt > now || message.lock) continue;
      if (entity.options.deadLetteringOnMessageExpiration && !entity.isDeadLetterQueue) {
        this.moveToDeadLetter(entity, message, 'TTLExpiredException', 'The message expired and was dead lettered.');
      } else {
        entity.messages.delete(message.sequenceNumber);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Settlement

  private onDisposition(sender: Sender, delivery: Delivery, outcome: 'accepted' | 'rejected' | 'modified' | 'released'): void {
    const entity = [...this.entities.values()].find((e) => [...e.consumers].some((c) => c.link === sender));
    const token = tagToLockToken(delivery.tag as Buffer);
    const message = entity?.locks.get(token);
    if (!entity || !message || message.lock?.link !== sender) {
      delivery.update(true, outcomes.rejected({ error: lockLost() }).described());
      return;
    }
    const state = (delivery as unknown as { remote_state?: Record<string, unknown> }).remote_state ?? {};
    switch (outcome) {
      case 'accepted':
        this.complete(entity, message);
        break;
      case 'rejected': {
        const error = (state.error ?? {}) as { condition?: string; info?: Record<string, unknown> };
        if (error.condition === 'com.microsoft:dead-letter') {
          const { DeadLetterReason, DeadLetterErrorDescription, ...properties } = (error.info ?? {}) as Record<string, unknown>;
          this.moveToDeadLetter(entity, message, stringOrUndefined(DeadLetterReason), stringOrUndefined(DeadLetterErrorDescription), properties);
        } else {
          this.unlock(entity, message, { countAsFailure: true });
        }
        break;
      }
      case 'modified': {
        const annotations = (state.message_annotations ?? undefined) as Record<string, unknown> | undefined;
        if (annotations) mergeApplicationProperties(message, annotations);
        if (state.undeliverable_here) this.unlock(entity, message, { countAsFailure: false, deferred: true });
        else this.unlock(entity, message, { countAsFailure: state.delivery_failed !== false });
        break;
      }
      case 'released':
        this.unlock(entity, message, { countAsFailure: false });
        break;
    }
    delivery.update(true, outcomes.accepted().described());
    this.pump(entity);
  }

  private complete(entity: Entity, message: StoredMessage): void {
    if (message.lock) {
      clearTimeout(message.lock.timer);
      entity.locks.delete(message.lock.token);
    }
    entity.messages.delete(message.sequenceNumber);
  }

  // ---------------------------------------------------------------------------------------------
  // $management

  private onManagementRequest(ctx: EventContext, entity: Entity): void {
    const request = (ctx.message as Message);
    const operation = String(request.application_properties?.operation ?? '');
    const body = (request.body ?? {}) as Record<string, unknown>;
    try {
      const [status, responseBody] = this.manage(entity, operation, body);
      this.reply(ctx, entity.path, { 'status-code': status, statusCode: status, 'status-description': status === 204 ? 'No Content' : 'OK' }, responseBody);
    } catch (error) {
      const e = error as { condition?: string; status?: number; message: string };
      this.reply(ctx, entity.path, {
        'status-code': e.status ?? 500,
        statusCode: e.status ?? 500,
        'status-description': e.message,
        'error-condition': e.condition ?? 'amqp:internal-error',
      });
    }
  }

  private manage(entity: Entity, operation: string, body: Record<string, unknown>): [number, unknown] {
    const now = Date.now();
    switch (operation) {
      case 'com.microsoft:peek-message': {
        const from = Number(unwrapValue(body['from-sequence-number']) ?? 1);
        const count = Number(unwrapValue(body['message-count']) ?? 1);
        const sessionId = stringOrUndefined(unwrapValue(body['session-id']));
        this.expireMessages(entity, now);
        const found = [...entity.messages.values()]
          .filter((m) => m.sequenceNumber >= from && (sessionId === undefined || m.sessionId === sessionId))
          .slice(0, count);
        if (found.length === 0) return [204, undefined];
        return [200, { messages: found.map((m) => ({ message: outcomes.encode(this.outgoing(entity, m, m.deliveries, m.lock?.until)) })) }];
      }
      case 'com.microsoft:renew-lock': {
        const expirations = uuids(body['lock-tokens']).map((token) => {
          const message = entity.locks.get(token);
          if (!message?.lock) throw managementError(410, 'com.microsoft:message-lock-lost', 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.');
          const until = Date.now() + entity.options.lockDurationInMs;
          clearTimeout(message.lock.timer);
          message.lock.until = until;
          message.lock.timer = setTimeout(() => this.lockExpired(entity, message), entity.options.lockDurationInMs);
          message.lock.timer.unref();
          return new Date(until);
        });
        return [200, { expirations }];
      }
      case 'com.microsoft:schedule-message': {
        const entries = (body.messages ?? []) as Array<Record<string, unknown>>;
        const sequenceNumbers: unknown[] = [];
        for (const entry of entries) {
          const map = (unwrapValue(entry) ?? entry) as Record<string, unknown>;
          const message = outcomes.decode(map.message as Buffer);
          const scheduled = unwrapValue((message.message_annotations ?? {})['x-opt-scheduled-enqueue-time']);
          const problem = this.validateIncoming(entity, message);
          if (problem) throw managementError(400, problem.condition, problem.description);
          const sequenceNumber = this.enqueue(entity, message, scheduled !== undefined ? toMillis(scheduled) : now) ?? 0;
          sequenceNumbers.push(rhea.types.wrap_long(sequenceNumber));
        }
        this.pump(entity);
        return [200, { 'sequence-numbers': rhea.types.wrap_array(sequenceNumbers.map((n) => (n as { value: unknown }).value), 0x81, undefined) }];
      }
      case 'com.microsoft:cancel-scheduled-message': {
        for (const sequenceNumber of longs(body['sequence-numbers'])) {
          const message = entity.messages.get(sequenceNumber);
          if (message?.state === 'scheduled') entity.messages.delete(sequenceNumber);
        }
        return [200, {}];
      }
      case 'com.microsoft:receive-by-sequence-number': {
        const sessionId = stringOrUndefined(unwrapValue(body['session-id']));
        const messages = longs(body['sequence-numbers']).map((sequenceNumber) => {
          const message = entity.messages.get(sequenceNumber);
          if (!message || message.state !== 'deferred' || (sessionId !== undefined && message.sessionId !== sessionId)) {
            throw managementError(404, 'com.microsoft:message-not-found', `Failed to retrieve the deferred message with sequence number ${sequenceNumber}`);
          }
          const token = randomUUID();
          const until = Date.now() + entity.options.lockDurationInMs;
          const previousDeliveries = message.deliveries;
          message.deliveries += 1;
          message.lock = { token, until, link: undefined, delivery: undefined, timer: setTimeout(() => this.deferredLockExpired(entity, message), entity.options.lockDurationInMs) };
          message.lock.timer.unref();
          entity.locks.set(token, message);
          return { 'lock-token': rhea.types.wrap_uuid(uuidToBytes(token) as never), message: outcomes.encode(this.outgoing(entity, message, previousDeliveries, until)) };
        });
        return [200, { messages }];
      }
      case 'com.microsoft:update-disposition': {
        const status = String(unwrapValue(body['disposition-status']));
        const reason = stringOrUndefined(unwrapValue(body['deadletter-reason']));
        const description = stringOrUndefined(unwrapValue(body['deadletter-description']));
        const properties = (unwrapValue(body['properties-to-modify']) ?? undefined) as Record<string, unknown> | undefined;
        for (const token of uuids(body['lock-tokens'])) {
          const message = entity.locks.get(token);
          if (!message) throw managementError(410, 'com.microsoft:message-lock-lost', 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.');
          if (properties) mergeApplicationProperties(message, properties);
          if (status === 'completed') this.complete(entity, message);
          else if (status === 'suspended') this.moveToDeadLetter(entity, message, reason, description, properties);
          else if (status === 'defered' || status === 'deferred') this.unlock(entity, message, { countAsFailure: false, deferred: true });
          else this.unlock(entity, message, { countAsFailure: true, deferred: message.state === 'deferred' });
        }
        this.pump(entity);
        return [200, {}];
      }
      case 'com.microsoft:renew-session-lock': {
        const sessionId = String(unwrapValue(body['session-id']));
        const lock = entity.sessionLocks.get(sessionId);
        if (!lock || lock.until <= now) throw managementError(410, 'com.microsoft:session-lock-lost', `The session lock for '${sessionId}' has expired`);
        clearTimeout(lock.timer);
        lock.until = now + entity.options.lockDurationInMs;
        lock.timer = setTimeout(() => this.sessionLockExpired(entity, sessionId, lock), entity.options.lockDurationInMs);
        lock.timer.unref();
        for (const message of entity.locks.values()) {
          if (message.sessionId === sessionId && message.lock) {
            clearTimeout(message.lock.timer);
            message.lock.until = lock.until;
            message.lock.timer = setTimeout(() => this.lockExpired(entity, message), entity.options.lockDurationInMs);
            message.lock.timer.unref();
          }
        }
        return [200, { expiration: new Date(lock.until) }];
      }
      case 'com.microsoft:get-session-state': {
        const sessionId = String(unwrapValue(body['session-id']));
        return [200, { 'session-state': entity.sessionStates.get(sessionId) ?? null }];
      }
      case 'com.microsoft:set-session-state': {
        const sessionId = String(unwrapValue(body['session-id']));
        const state = unwrapValue(body['session-state']);
        entity.sessionStates.set(sessionId, state === undefined || state === null ? null : Buffer.from(state as Buffer));
        return [200, {}];
      }
      default:
        throw managementError(501, 'amqp:not-implemented', `The local broker does not implement ${operation || 'this operation'}`);
    }
  }

  private deferredLockExpired(entity: Entity, message: StoredMessage): void {
    if (!message.lock) return;
    entity.locks.delete(message.lock.token);
    message.lock = undefined;
  }

  private reply(ctx: EventContext, node: string, properties: Record<string, unknown>, body?: unknown): void {
    const request = ctx.message as Message;
    const replyTo = request.reply_to;
    const links = this.replyLinks.get(ctx.connection);
    const link = (replyTo ? links?.get(String(replyTo)) : undefined) ?? links?.get(`source:${node}`);
    if (!link || link.is_closed()) return;
    link.send({
      correlation_id: request.message_id,
      to: replyTo,
      application_properties: properties,
      ...(body !== undefined && { body }),
    } as Message);
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

function lockLost() {
  return {
    condition: 'com.microsoft:message-lock-lost',
    description: 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.',
  };
}

function managementError(status: number, condition: string, message: string): Error & { status: number; condition: string } {
  return Object.assign(new Error(message), { status, condition });
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

function decodeBatch(raw: Buffer): Message[] {
  const body = outcomes.decode(raw).body as { content?: unknown; multiple?: boolean } | undefined;
  const content = body?.content;
  const sections = body?.multiple ? (content as Buffer[]) : [content as Buffer];
  return sections.map((section) => outcomes.decode(Buffer.from(section)));
}

function mergeApplicationProperties(message: StoredMessage, properties: Record<string, unknown>): void {
  message.message = {
    ...message.message,
    application_properties: { ...(message.message.application_properties ?? {}), ...properties },
  };
}

function unwrapValue(value: unknown): unknown {
  if (value && typeof value === 'object' && 'typecode' in (value as object) && 'value' in (value as object)) {
    return (value as { value: unknown }).value;
  }
  return value;
}

function unwrapString(value: unknown): string | undefined {
  const v = unwrapValue(value);
  return v === undefined || v === null ? undefined : String(v);
}

function stringOrUndefined(value: unknown): string | undefined {
  return value === undefined || value === null ? undefined : String(value);
}

function toMillis(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  if (Buffer.isBuffer(value)) return Number(value.readBigInt64BE(0));
  return Number(value);
}

function longs(value: unknown): number[] {
  const raw = unwrapValue(value);
  const list = Array.isArray(raw) ? raw : [];
  return list.map((item) => {
    const v = unwrapValue(item);
    if (Buffer.isBuffer(v)) return Number(v.readBigInt64BE(0));
    return Number(v);
  });
}

function uuids(value: unknown): string[] {
  const raw = unwrapValue(value);
  const list = Array.isArray(raw) ? raw : [];
  return list.map((item) => {
    const v = unwrapValue(item);
    return Buffer.isBuffer(v) ? bytesToUuid(v) : String(v);
  });
}

function uuidToBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

function bytesToUuid(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** .NET GUID byte order: the first three groups little-endian. The SDK reorders delivery tags back. */
function dotNetOrder(bytes: Buffer): Buffer {
  const b = Buffer.from(bytes);
  return Buffer.from([b[3]!, b[2]!, b[1]!, b[0]!, b[5]!, b[4]!, b[7]!, b[6]!, ...b.subarray(8)]);
}

function lockTokenToTag(token: string): Buffer {
  return dotNetOrder(uuidToBytes(token));
}

function tagToLockToken(tag: Buffer): string {
  return bytesToUuid(dotNetOrder(Buffer.from(tag)));
}

function randomTag(): Buffer {
  return lockTokenToTag(randomUUID());
}

function longBytes(value: bigint): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigInt64BE(value);
  return buffer;
}

/** .NET ticks (100 ns since 0001-01-01), how Service Bus reports `com.microsoft:locked-until-utc`. */
function toDotNetTicks(ms: number): bigint {
  return BigInt(ms) * 10_000n + 621_355_968_000_000_000n;
}
