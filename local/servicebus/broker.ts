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
 *
 * This file is the entry point: it declares the queues, runs the AMQP container and routes its events. The
 * rest lives beside it — `queue-state.ts` (an entity's messages, locks, sessions, scheduling, dead-lettering),
 * `management.ts` (the `$management` operations), `links.ts` (connections, attaches, incoming messages, CBS),
 * `consumers.ts` (delivery to receivers, credit and drain, dispositions), `codec.ts` (pure AMQP / .NET
 * encodings) and `rhea-shim.ts` (typed views of rhea).
 */
import type { AddressInfo } from 'node:net';
import rhea, { type Container, type EventContext } from 'rhea';
import { QUEUE_DEFAULTS, type QueueOptions } from './config';
import { Consumers } from './consumers';
import { Links } from './links';
import { Entity, type EntityStats } from './queue-state';
import { serverSaslMechanisms, type Receiver, type Sender } from './rhea-shim';

export type { EntityStats } from './queue-state';

const EMULATOR_KEY_NAME = 'RootManageSharedAccessKey';
const EMULATOR_KEY = 'SAS_KEY_VALUE';
const DEAD_LETTER_SUFFIX = '/$DeadLetterQueue';

export interface LocalServiceBusOptions {
  queues: Array<Partial<QueueOptions> & { name: string }>;
  port?: number;
  host?: string;
}

export class LocalServiceBus {
  private readonly entities = new Map<string, Entity>();
  private readonly consumers = new Consumers(this.entities);
  private readonly links = new Links(this.entities, this.consumers);
  private container: Container;
  private listener: ReturnType<Container['listen']> | undefined;
  port = 0;
  host = '127.0.0.1';

  private constructor(options: LocalServiceBusOptions) {
    for (const queue of options.queues) {
      const full: QueueOptions = { ...QUEUE_DEFAULTS, ...queue };
      const main = new Entity(queue.name.toLowerCase(), full, false, this.consumers);
      main.deadLetter = new Entity(`${main.path}${DEAD_LETTER_SUFFIX.toLowerCase()}`, full, true, this.consumers);
      this.entities.set(main.path, main);
      this.entities.set(main.deadLetter.path, main.deadLetter);
    }
    this.container = rhea.create_container({
      id: 'local-servicebus',
      // We settle and decide outcomes ourselves.
      autoaccept: false,
      autosettle: false,
      treat_modified_as_released: false,
    });
    serverSaslMechanisms(this.container).enable_anonymous();
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
    return this.entity(queue).stats();
  }

  /** Fault injection: every lock on `queue` is lost now (messages become available again). */
  expireLocks(queue: string): void {
    const entity = this.entity(queue);
    for (const message of [...entity.locks.values()]) entity.lockExpired(message);
    for (const [sessionId, lock] of [...entity.sessionLocks]) entity.sessionLockExpired(sessionId, lock);
  }

  /** Fault injection: drops every client connection (as a broker restart would); state is kept. */
  dropConnections(): void {
    this.links.dropConnections();
  }

  async stop(): Promise<void> {
    this.consumers.stop();
    this.links.dropConnections();
    for (const entity of this.entities.values()) entity.clearTimers();
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
    const { links, consumers } = this;
    c.on('connection_open', (ctx: EventContext) => links.connectionOpened(ctx.connection));
    const forget = (ctx: EventContext) => links.connectionGone(ctx.connection);
    c.on('connection_close', forget);
    c.on('disconnected', forget);
    c.on('connection_error', forget);
    c.on('receiver_open', (ctx: EventContext) => links.onIncomingLink(ctx.receiver as unknown as Receiver));
    c.on('sender_open', (ctx: EventContext) => links.onOutgoingLink(ctx.sender as unknown as Sender));
    c.on('message', (ctx: EventContext) => links.onMessage(ctx));
    c.on('sendable', (ctx: EventContext) => consumers.onSendable(ctx.sender as unknown as Sender));
    c.on('sender_draining', (ctx: EventContext) => consumers.onSendable(ctx.sender as unknown as Sender));
    c.on('sender_close', (ctx: EventContext) => consumers.linkGone(ctx.sender as unknown as Sender));
    c.on('sender_error', (ctx: EventContext) => consumers.linkGone(ctx.sender as unknown as Sender));
    for (const outcome of ['accepted', 'rejected', 'modified', 'released'] as const) {
      c.on(outcome, (ctx: EventContext) => consumers.onDisposition(ctx.sender as unknown as Sender, ctx.delivery!, outcome));
    }
    c.on('error', () => undefined);
    c.on('protocol_error', () => undefined);
  }

  private entity(name: string): Entity {
    const entity = this.entities.get(name.toLowerCase());
    if (!entity) throw new Error(`No queue ${name}`);
    return entity;
  }
}
