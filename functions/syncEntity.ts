import './lib/bootstrap';
import { app, type InvocationContext } from '@azure/functions';
import type { ServiceBusReceivedMessage } from '@azure/service-bus';
import { registrationSettings } from '../shared/platform/config';
import { getRuntime } from '../shared/runtime';
import { contextFrom, inSpan, SpanKind } from '../shared/platform/telemetry';
import { withInvocation } from './lib/invocation';

/**
 * The part of the Service Bus SDK binding's message actions this function uses (the shape of
 * `ServiceBusMessageActions` from `@azure/functions-extensions-servicebus`).
 */
export interface MessageActions {
  complete(message: ServiceBusReceivedMessage): Promise<void>;
  deadletter(message: ServiceBusReceivedMessage, propertiesToModify?: Uint8Array, reason?: string, description?: string): Promise<void>;
}

export interface SyncTriggerInput {
  messages: ServiceBusReceivedMessage | ServiceBusReceivedMessage[];
  actions: MessageActions;
}

/**
 * Queue trigger on `entity-sync` (sessions: one entity's messages in order). Settles each message itself:
 * complete, or dead-letter with a reason; transient failures are retried by scheduling a new message.
 */
export async function syncEntity(input: SyncTriggerInput, context: InvocationContext): Promise<void> {
  const runtime = getRuntime();
  const messages = Array.isArray(input.messages) ? input.messages : [input.messages];
  await withInvocation(context, async (options) => {
  for (const message of messages) {
    const traceparent = message.applicationProperties?.traceparent;
    await inSpan(
      'syncEntity',
      {
        kind: SpanKind.SERVER,
        parent: contextFrom(typeof traceparent === 'string' ? traceparent : undefined),
        attributes: { 'messaging.message.id': String(message.messageId ?? ''), 'messaging.destination.name': queueName },
      },
      () =>
        runtime.processor.process(
          message,
          {
            complete: () => input.actions.complete(message),
            deadLetter: (reason, description) => input.actions.deadletter(message, undefined, reason, description),
          },
          options,
        ),
    );
  }
  });
}

// Registers the Service Bus SDK-binding factory, so the trigger receives messages with settlement actions.
// Loaded with require: the preview package ships TypeScript sources as its types, which do not compile strict.
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('@azure/functions-extensions-servicebus');

const { queueName } = registrationSettings();

app.serviceBusQueue('syncEntity', {
  connection: 'ServiceBusConnection',
  queueName,
  isSessionsEnabled: true,
  sdkBinding: true,
  autoCompleteMessages: false,
  cardinality: 'one',
  handler: syncEntity as never,
});
