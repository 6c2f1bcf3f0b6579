/**
 * Runs a Service Bus session-queue trigger the way the Functions host does for a function registered with
 * `isSessionsEnabled: true, sdkBinding: true, autoCompleteMessages: false`: accepts the next available session
 * (up to `maxConcurrentSessions` at once), hands each message to the function with settlement actions backed by
 * the session receiver, one message at a time per session, and releases a session after it has been idle.
 *
 * A development tool (the real host cannot run here): where the host would let the lock expire after a
 * failed invocation, this runner abandons the message at once so it comes back without waiting.
 */
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { InvocationContext } from '@azure/functions';
import { pause } from './pause';
import type { TokenCredential } from '@azure/core-auth';
import { ServiceBusClient, type ServiceBusReceivedMessage, type ServiceBusSessionReceiver } from '@azure/service-bus';

export interface SessionTriggerActions {
  complete(message: ServiceBusReceivedMessage): Promise<void>;
  abandon(message: ServiceBusReceivedMessage): Promise<void>;
  deadletter(message: ServiceBusReceivedMessage, propertiesToModify?: Uint8Array, reason?: string, description?: string): Promise<void>;
  defer(message: ServiceBusReceivedMessage): Promise<void>;
}

export type SessionTriggerHandler = (
  input: { messages: ServiceBusReceivedMessage; actions: SessionTriggerActions },
  context: InvocationContext,
) => Promise<unknown>;

export interface SessionTriggerOptions {
  /** The trigger's connection, as the host would read it from `<connection>` / `<connection>__fullyQualifiedNamespace`. */
  connection: string | { fullyQualifiedNamespace: string; credential: TokenCredential };
  queueName: string;
  functionName: string;
  handler: SessionTriggerHandler;
  maxConcurrentSessions?: number;
  sessionIdleTimeoutInMs?: number;
  /** Receives what the function logs (level, message). */
  logHandler?: (level: string, ...args: unknown[]) => void;
  /** Called for failures of the runner itself (not of the function). */
  onError?: (error: unknown) => void;
  /** How long one "accept the next session" waits for a session with messages. */
  acceptTimeoutInMs?: number;
}

export interface SessionTrigger {
  /** Invocations finished so far. */
  readonly invocations: number;
  /** Invocations running now. */
  readonly inFlight: number;
  /**
   * Stops taking messages and lets the invocations in flight finish — for at most `drainTimeoutInMs` (default 30 s),
   * as the host's graceful shutdown does. What is still running then is left behind: its session receivers are
   * closed (the broker releases their locks, so those messages are delivered again) and the connection is closed.
   */
  stop(options?: { drainTimeoutInMs?: number }): Promise<void>;
}

export function startSessionTrigger(options: SessionTriggerOptions): SessionTrigger {
  const controller = new AbortController();
  const state = { invocations: 0, inFlight: 0 };
  // The runner's own client, like the host's own connection. A session accept waits at most `acceptTimeoutInMs`
  // for a session with messages (the broker answers then), so stopping never waits longer than that.
  const acceptTimeoutInMs = options.acceptTimeoutInMs ?? 2_000;
  const retryOptions = { retryOptions: { timeoutInMs: acceptTimeoutInMs } };
  const client =
    typeof options.connection === 'string'
      ? new ServiceBusClient(options.connection, retryOptions)
      : new ServiceBusClient(options.connection.fullyQualifiedNamespace, options.connection.credential, retryOptions);
  const idleTimeout = options.sessionIdleTimeoutInMs ?? 1_000;
  const concurrency = options.maxConcurrentSessions ?? 8;
  // Every session slot waits on the one stop signal (the SDK adds a listener per pending accept).
  setMaxListeners(4 * concurrency + 10, controller.signal);
  const open = new Set<ServiceBusSessionReceiver>();
  const slots = Array.from({ length: concurrency }, () => runSlot());

  async function runSlot(): Promise<void> {
    while (!controller.signal.aborted) {
      let receiver: ServiceBusSessionReceiver;
      try {
        receiver = await client.acceptNextSession(options.queueName, {
          maxAutoLockRenewalDurationInMs: 5 * 60_000,
          abortSignal: controller.signal,
        });
      } catch (error) {
        if (controller.signal.aborted) return;
        if (!isTimeout(error)) options.onError?.(error);
        await pause(100, controller.signal);
        continue;
      }
      open.add(receiver);
      try {
        await drainSession(receiver);
      } catch (error) {
        if (!controller.signal.aborted) options.onError?.(error);
      } finally {
        open.delete(receiver);
        await receiver.close().catch(() => undefined);
      }
    }
  }

  async function drainSession(receiver: ServiceBusSessionReceiver): Promise<void> {
    const actions: SessionTriggerActions = {
      complete: (m) => receiver.completeMessage(m),
      abandon: (m) => receiver.abandonMessage(m),
      deadletter: (m, _properties, reason, description) =>
        receiver.deadLetterMessage(m, { deadLetterReason: reason ?? '', deadLetterErrorDescription: description ?? '' }),
      defer: (m) => receiver.deferMessage(m),
    };
    while (!controller.signal.aborted) {
      const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: idleTimeout });
      if (!message) return;
      const context = new InvocationContext({
        invocationId: randomUUID(),
        functionName: options.functionName,
        ...(options.logHandler && { logHandler: options.logHandler }),
        triggerMetadata: {
          messageId: message.messageId,
          sessionId: message.sessionId,
          deliveryCount: message.deliveryCount,
          enqueuedTimeUtc: message.enqueuedTimeUtc?.toISOString(),
          sequenceNumber: Number(message.sequenceNumber),
          applicationProperties: message.applicationProperties,
        },
      });
      state.inFlight += 1;
      try {
        await options.handler({ messages: message, actions }, context);
      } catch (error) {
        context.error(`Invocation failed: ${error instanceof Error ? error.message : String(error)}`);
        await receiver.abandonMessage(message).catch(() => undefined);
      } finally {
        state.inFlight -= 1;
        state.invocations += 1;
      }
    }
  }

  return {
    get invocations() {
      return state.invocations;
    },
    get inFlight() {
      return state.inFlight;
    },
    async stop(stopOptions = {}) {
      controller.abort();
      // The SDK does not give up a pending session accept when aborted or closed; let each one end (the broker
      // refuses it after acceptTimeoutInMs) before closing the connection. An invocation the function does not finish
      // in time (it cannot be cancelled: e.g. a sync retrying an unresponsive Backstage) is left behind.
      const drained = await within(Promise.allSettled(slots), stopOptions.drainTimeoutInMs ?? 30_000);
      if (!drained) {
        options.logHandler?.('warning', `Stopped with ${state.inFlight} invocation(s) still running; their messages will be delivered again`);
        await within(Promise.allSettled([...open].map((receiver) => receiver.close())), acceptTimeoutInMs);
      }
      await within(client.close(), acceptTimeoutInMs);
    },
  };
}

/** Whether `promise` settled within `timeoutInMs` (it is not cancelled either way). */
async function within(promise: Promise<unknown>, timeoutInMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutInMs))),
  ]);
  clearTimeout(timer);
  return settled;
}

function isTimeout(error: unknown): boolean {
  const code = (error as { code?: string })?.code;
  return code === 'ServiceTimeout' || code === 'OperationTimeoutError' || code === 'SessionCannotBeLocked';
}

/** host.json TimeSpans: `hh:mm:ss[.fff]`. */
export function timeSpanToMs(value: string | undefined): number | undefined {
  const m = value ? /^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$/.exec(value) : null;
  if (!m) return undefined;
  return Math.round(((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000);
}
