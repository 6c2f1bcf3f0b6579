import type { ServiceBusMessage, ServiceBusReceivedMessage, ServiceBusSender } from '@azure/service-bus';
import fc from 'fast-check';
import type { SyncMessageBody } from '../../shared/intake/events';
import { RequestChargeTracker } from '../../shared/platform/cosmos';
import {
  BackstageRequestError,
  BackstageUnavailableError,
  CosmosOperationError,
  InvalidEntityRefError,
  OperationAbortedError,
  QueueUnavailableError,
} from '../../shared/platform/errors';
import { silentLogger } from '../../shared/platform/logger';
import { InMemoryMetrics } from '../../shared/platform/metrics';
import { DeadLetterReason, SyncMessageProcessor, type Settlement } from '../../shared/queue/processor';
import { EventQueue, retryMessageId, type SyncMessageProperties } from '../../shared/queue/queue';
import type { SyncEngine, SyncEntityOptions, SyncOutcome, SyncResult } from '../../shared/sync/engine';

const NOW = Date.parse('2026-03-01T12:00:05.000Z');
const retry = { maxAttempts: 5, baseDelayInMs: 1_000, maxDelayInMs: 60_000 };
const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

const body: SyncMessageBody = {
  entityRef: 'component:default/web-shop',
  type: 'upserted',
  etag: 'etag-7',
  eventId: 'evt-1',
  eventTime: '2026-03-01T12:00:00.000Z',
  source: 'urn:test',
};

/** What happened, in order, across the engine, the queue and the settlement. */
type Step =
  | { step: 'sync'; ref: string; options: SyncEntityOptions }
  | { step: 'schedule'; failingMessageId: string; body: SyncMessageBody; sessionId: string; properties: SyncMessageProperties; at: Date; signal?: AbortSignal }
  | { step: 'complete' }
  | { step: 'deadLetter'; reason: string; description: string };

/** The engine's `syncEntity`, answering with an outcome or throwing what the test says. */
class FakeEngine implements Pick<SyncEngine, 'syncEntity'> {
  constructor(
    private readonly log: Step[],
    private readonly answer: () => SyncOutcome | Error,
  ) {}

  async syncEntity(ref: string, options: SyncEntityOptions = {}): Promise<SyncResult> {
    this.log.push({ step: 'sync', ref, options });
    const answer = this.answer();
    if (answer instanceof Error) throw answer;
    return { entityRef: ref, id: 'component:default:web-shop', outcome: answer, attempts: 1, readBackstage: true, requestCharge: 0 };
  }
}

/** The queue's `scheduleRetry`: records the retry, or fails when told to. */
class FakeQueue implements Pick<EventQueue, 'scheduleRetry'> {
  failure: Error | undefined;
  constructor(private readonly log: Step[]) {}

  async scheduleRetry(
    failingMessageId: string,
    retryBody: SyncMessageBody,
    sessionId: string,
    properties: SyncMessageProperties,
    at: Date,
    options: { abortSignal?: AbortSignal } = {},
  ): Promise<void> {
    if (this.failure) throw this.failure;
    this.log.push({ step: 'schedule', failingMessageId, body: retryBody, sessionId, properties, at, ...(options.abortSignal && { signal: options.abortSignal }) });
  }
}

class RecordingSettlement implements Settlement {
  failComplete: Error[] = [];
  constructor(private readonly log: Step[]) {}

  async complete(): Promise<void> {
    const failure = this.failComplete.shift();
    if (failure) throw failure;
    this.log.push({ step: 'complete' });
  }

  async deadLetter(reason: string, description: string): Promise<void> {
    this.log.push({ step: 'deadLetter', reason, description });
  }
}

function received(messageBody: unknown, overrides: Partial<ServiceBusReceivedMessage> = {}): ServiceBusReceivedMessage {
  return {
    body: messageBody,
    messageId: 'evt-1',
    sessionId: 'component:default:web-shop',
    applicationProperties: { attempt: 1, traceparent },
    state: 'active',
    _rawAmqpMessage: { body: messageBody },
    ...overrides,
  };
}

function setup(answer: () => SyncOutcome | Error, random: () => number = () => 0.5) {
  const log: Step[] = [];
  const engine = new FakeEngine(log, answer);
  const queue = new FakeQueue(log);
  const settle = new RecordingSettlement(log);
  const metrics = new InMemoryMetrics();
  const processor = new SyncMessageProcessor({
    engine: engine as unknown as SyncEngine,
    queue: queue as unknown as EventQueue,
    logger: silentLogger,
    metrics,
    retry,
    random,
    now: () => NOW,
  });
  const steps = () => log.map((s) => s.step);
  const syncCall = () => log.find((s): s is Extract<Step, { step: 'sync' }> => s.step === 'sync');
  const scheduled = () => log.filter((s): s is Extract<Step, { step: 'schedule' }> => s.step === 'schedule');
  return { processor, queue, settle, metrics, log, steps, syncCall, scheduled };
}

const transient = () => new BackstageUnavailableError('Backstage answered 503', 503);

describe('success', () => {
  test('syncs the entity, then completes the message', async () => {
    const t = setup(() => 'updated');
    const outcome = await t.processor.process(received(body), t.settle);
    expect(outcome).toEqual({ action: 'completed', outcome: 'updated', attempt: 1 });
    expect(t.steps()).toEqual(['sync', 'complete']);
    expect(t.syncCall()?.ref).toBe('component:default/web-shop');
    expect(t.syncCall()?.options.charge).toBeInstanceOf(RequestChargeTracker);
    expect(t.metrics.summary('sync.duration')?.count).toBe(1);
    expect(t.metrics.counter('sync.retries')).toBe(0);
    expect(t.metrics.counter('sync.dead_letters')).toBe(0);
  });

  test('records the latency from the event to the write, only when something was written', async () => {
    const written = setup(() => 'created');
    await written.processor.process(received(body), written.settle);
    expect(written.metrics.summary('sync.latency')).toEqual({ count: 1, sum: 5_000, min: 5_000, max: 5_000 });

    const unchanged = setup(() => 'unchanged');
    await unchanged.processor.process(received(body), unchanged.settle);
    expect(unchanged.metrics.summary('sync.latency')).toBeUndefined();
  });

  test('reports the attempt it was', async () => {
    const t = setup(() => 'updated');
    expect(await t.processor.process(received(body, { applicationProperties: { attempt: 4 } }), t.settle)).toMatchObject({ attempt: 4 });
  });
});

describe('the etag an event carried', () => {
  test('is passed as knownEtag for an upserted message with an etag', async () => {
    const t = setup(() => 'unchanged');
    await t.processor.process(received(body), t.settle);
    expect(t.syncCall()?.options.knownEtag).toBe('etag-7');
  });

  test.each<[string, SyncMessageBody]>([
    ['an upserted message without an etag', { entityRef: body.entityRef, type: 'upserted', eventId: 'e', eventTime: body.eventTime, source: 's' }],
    ['a deleted message, even with an etag', { ...body, type: 'deleted' }],
  ])('is not passed for %s', async (_label, messageBody) => {
    const t = setup(() => 'tombstoned');
    await t.processor.process(received(messageBody), t.settle);
    expect(t.syncCall()).toBeDefined();
    expect('knownEtag' in t.syncCall()!.options).toBe(false);
  });
});

describe('the abort signal of the invocation', () => {
  test('reaches the engine and the retry, and is not invented when there is none', async () => {
    const controller = new AbortController();
    const t = setup(transient);
    await t.processor.process(received(body), t.settle, { abortSignal: controller.signal });
    expect(t.syncCall()?.options.abortSignal).toBe(controller.signal);
    expect(t.scheduled()[0]?.signal).toBe(controller.signal);

    const u = setup(transient);
    await u.processor.process(received(body), u.settle);
    expect('abortSignal' in u.syncCall()!.options).toBe(false);
    expect(u.scheduled()[0]?.signal).toBeUndefined();
  });
});

describe('permanent failures: dead-letter at once', () => {
  test.each<[string, unknown]>([
    ['a string body', 'component:default/web-shop'],
    ['a body without entityRef', { ...body, entityRef: undefined }],
    ['an invalid entityRef', { ...body, entityRef: 'not a ref' }],
    ['an unknown type', { ...body, type: 'created' }],
    ['an unknown field', { ...body, extra: true }],
    ['an eventTime that is no timestamp', { ...body, eventTime: 'yesterday' }],
  ])('%s → InvalidMessage, without calling the engine', async (_label, messageBody) => {
    const t = setup(() => 'updated');
    const outcome = await t.processor.process(received(messageBody, { applicationProperties: { attempt: 2 } }), t.settle);
    expect(t.steps()).toEqual(['deadLetter']);
    expect(outcome).toMatchObject({ action: 'dead-lettered', attempt: 2, reason: DeadLetterReason.invalidMessage });
    expect(t.log[0]).toMatchObject({ reason: 'InvalidMessage', description: expect.stringMatching(/^The message body does not follow the sync contract: /) });
    expect(t.metrics.counter('sync.dead_letters', { reason: 'InvalidMessage' })).toBe(1);
  });

  test.each<{ label: string; error: Error; reason: string }>([
    { label: 'an invalid entity ref', error: new InvalidEntityRefError('component:default/-x-', 'name is not valid'), reason: 'InvalidEntityRef' },
    { label: 'Backstage rejecting the request', error: new BackstageRequestError('Backstage answered 400 Bad Request', 400), reason: 'RejectedByBackstage' },
  ])('$label → $reason, no retry, not completed', async ({ error, reason }) => {
    const t = setup(() => error);
    const outcome = await t.processor.process(received(body), t.settle);
    expect(t.steps()).toEqual(['sync', 'deadLetter']);
    expect(t.log[1]).toEqual({ step: 'deadLetter', reason, description: error.message });
    expect(outcome).toEqual({ action: 'dead-lettered', attempt: 1, reason, description: error.message });
    expect(t.metrics.counter('sync.dead_letters', { reason })).toBe(1);
    expect(t.metrics.counter('sync.retries')).toBe(0);
  });
});

describe('transient failures: a retry is scheduled', () => {
  test('with attempt + 1, in the same session, the trace and original id carried, then the message is completed', async () => {
    const t = setup(transient, () => 0.5);
    const outcome = await t.processor.process(received(body, { applicationProperties: { attempt: 2, traceparent } }), t.settle);
    // attempt 2 → backoff step 1: cap = min(60 000, 1 000 · 2¹) = 2 000; random 0.5 → 1 000 + 500.
    expect(outcome).toEqual({ action: 'retry-scheduled', attempt: 2, nextAttempt: 3, delayInMs: 1_500, error: 'Backstage answered 503' });
    expect(t.steps()).toEqual(['sync', 'schedule', 'complete']);
    expect(t.scheduled()[0]).toEqual({
      step: 'schedule',
      failingMessageId: 'evt-1',
      body,
      sessionId: 'component:default:web-shop',
      properties: { attempt: 3, traceparent, originalMessageId: 'evt-1' },
      at: new Date(NOW + 1_500),
    });
    expect(t.metrics.counter('sync.retries')).toBe(1);
    expect(t.metrics.counter('sync.dead_letters')).toBe(0);
  });

  test('a retry of a retry keeps pointing at the first message', async () => {
    const t = setup(transient);
    await t.processor.process(received(body, { messageId: 'retry-2-abc', applicationProperties: { attempt: 2, originalMessageId: 'evt-1' } }), t.settle);
    expect(t.scheduled()[0]).toMatchObject({ failingMessageId: 'retry-2-abc', properties: { attempt: 3, originalMessageId: 'evt-1' } });
    expect('traceparent' in t.scheduled()[0]!.properties).toBe(false);
  });

  test('a message without an id still gets a retry id (a random one)', async () => {
    const t = setup(transient);
    await t.processor.process(received(body, { messageId: undefined }), t.settle);
    expect(t.scheduled()[0]?.failingMessageId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  test.each<[string, Error]>([
    ['Cosmos throttling', new CosmosOperationError('Request rate is large', 429)],
    ['an unknown error', new Error('socket hang up')],
  ])('%s is retried too', async (_label, error) => {
    const t = setup(() => error);
    expect(await t.processor.process(received(body), t.settle)).toMatchObject({ action: 'retry-scheduled', nextAttempt: 2 });
  });

  test.each<{ label: string; attempt: string | number | undefined; expected: number }>([
    { label: 'missing', attempt: undefined, expected: 1 },
    { label: 'a numeric string', attempt: '3', expected: 3 },
    { label: 'zero', attempt: 0, expected: 1 },
    { label: 'negative', attempt: -2, expected: 1 },
    { label: 'a fraction', attempt: 1.5, expected: 1 },
    { label: 'garbage', attempt: 'many', expected: 1 },
  ])('an attempt property that is $label counts as attempt $expected', async ({ attempt, expected }) => {
    const t = setup(transient);
    const properties: Record<string, string | number> = attempt === undefined ? {} : { attempt };
    await t.processor.process(received(body, { applicationProperties: properties }), t.settle);
    expect(t.scheduled()[0]?.properties.attempt).toBe(expected + 1);
  });

  test('property: the delay is the backoff for the attempt, between half and all of its cap', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: retry.maxAttempts - 1 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), async (attempt, r) => {
        const t = setup(transient, () => r);
        const outcome = await t.processor.process(received(body, { applicationProperties: { attempt } }), t.settle);
        if (outcome.action !== 'retry-scheduled') throw new Error(`expected a retry, got ${outcome.action}`);
        const cap = Math.min(retry.maxDelayInMs, retry.baseDelayInMs * 2 ** (attempt - 1));
        expect(outcome.delayInMs).toBeGreaterThanOrEqual(cap / 2);
        expect(outcome.delayInMs).toBeLessThanOrEqual(cap);
        expect(t.scheduled()[0]?.at.getTime()).toBe(NOW + outcome.delayInMs);
      }),
      { numRuns: 200 },
    );
  });

  test('the extremes of the jitter', async () => {
    const low = setup(transient, () => 0);
    expect(await low.processor.process(received(body, { applicationProperties: { attempt: 1 } }), low.settle)).toMatchObject({ delayInMs: 500 });
    const high = setup(transient, () => 0.999999);
    expect(await high.processor.process(received(body, { applicationProperties: { attempt: 4 } }), high.settle)).toMatchObject({ delayInMs: 8_000 });
  });

  test('if the retry cannot be scheduled, the handler throws and leaves the message unsettled', async () => {
    const t = setup(transient);
    const failure = new QueueUnavailableError('Could not schedule a retry on entity-sync: timeout');
    t.queue.failure = failure;
    await expect(t.processor.process(received(body), t.settle)).rejects.toBe(failure);
    expect(t.steps()).toEqual(['sync']);
    expect(t.metrics.counter('sync.retries')).toBe(0);
  });
});

describe('retries exhausted', () => {
  test('at maxAttempts the message is dead-lettered with the last error, no retry', async () => {
    const t = setup(transient);
    const outcome = await t.processor.process(received(body, { applicationProperties: { attempt: retry.maxAttempts } }), t.settle);
    expect(t.steps()).toEqual(['sync', 'deadLetter']);
    expect(outcome).toEqual({
      action: 'dead-lettered',
      attempt: 5,
      reason: 'RetriesExhausted',
      description: 'Gave up after 5 attempts; last error: Backstage answered 503',
    });
    expect(t.metrics.counter('sync.dead_letters', { reason: 'RetriesExhausted' })).toBe(1);
  });

  test('one attempt before the limit still retries; beyond it dead-letters', async () => {
    const before = setup(transient);
    expect(await before.processor.process(received(body, { applicationProperties: { attempt: retry.maxAttempts - 1 } }), before.settle)).toMatchObject({
      action: 'retry-scheduled',
      nextAttempt: retry.maxAttempts,
    });
    const beyond = setup(transient);
    expect(await beyond.processor.process(received(body, { applicationProperties: { attempt: retry.maxAttempts + 3 } }), beyond.settle)).toMatchObject({
      action: 'dead-lettered',
      reason: 'RetriesExhausted',
    });
  });

  test('the description is cut to 4000 characters', async () => {
    const t = setup(() => new Error('x'.repeat(10_000)));
    const outcome = await t.processor.process(received(body, { applicationProperties: { attempt: retry.maxAttempts } }), t.settle);
    expect(outcome.action === 'dead-lettered' && outcome.description.length).toBe(4000);
    expect(t.log[1]).toMatchObject({ step: 'deadLetter', description: expect.stringMatching(/^Gave up after 5 attempts; last error: x+$/) });
    expect((t.log[1] as { description: string }).description).toHaveLength(4000);
  });
});

test('an aborted invocation rethrows and settles nothing (the host abandons the message)', async () => {
  const aborted = new OperationAbortedError('The host is shutting down');
  const t = setup(() => aborted);
  await expect(t.processor.process(received(body), t.settle)).rejects.toBe(aborted);
  expect(t.steps()).toEqual(['sync']);
  expect(t.metrics.counter('sync.retries')).toBe(0);
  expect(t.metrics.counter('sync.dead_letters')).toBe(0);
});

describe('with the real EventQueue over a recording sender', () => {
  function realQueue() {
    const sent: Array<{ message: ServiceBusMessage; at: Date }> = [];
    const sender = {
      entityPath: 'entity-sync',
      async scheduleMessages(message: ServiceBusMessage, at: Date) {
        sent.push({ message, at });
        return [];
      },
    };
    return { queue: new EventQueue(sender as unknown as ServiceBusSender, { sendTimeoutInMs: 5_000 }), sent };
  }

  test('the retry message has the derived id, the same session and the next attempt; a redelivery derives the same id', async () => {
    const { queue, sent } = realQueue();
    const log: Step[] = [];
    const processor = new SyncMessageProcessor({
      engine: new FakeEngine(log, transient) as unknown as SyncEngine,
      queue,
      logger: silentLogger,
      retry,
      random: () => 0,
      now: () => NOW,
    });
    const message = received(body, { applicationProperties: { attempt: 2, traceparent } });
    await processor.process(message, new RecordingSettlement(log));
    await processor.process(message, new RecordingSettlement(log));
    expect(sent).toHaveLength(2);
    expect(sent[0]).toEqual({
      message: {
        messageId: retryMessageId('evt-1', 3),
        sessionId: 'component:default:web-shop',
        contentType: 'application/json',
        subject: 'upserted',
        body,
        applicationProperties: { attempt: 3, traceparent, originalMessageId: 'evt-1' },
      },
      at: new Date(NOW + 1_000),
    });
    expect(sent[1]!.message.messageId).toBe(sent[0]!.message.messageId);
  });
});

describe('a failing complete() after a successful sync', () => {
  // The sync succeeded, but settling failed (e.g. the session lock was lost): the failure is the settlement's, not the
  // sync's, so the message is neither retried nor dead-lettered; it comes back and syncs again (a no-op).
  test('does not dead-letter the synced message as RetriesExhausted', async () => {
    const t = setup(() => 'updated');
    t.settle.failComplete.push(new Error('The session lock has expired'));
    await t.processor.process(received(body, { applicationProperties: { attempt: retry.maxAttempts } }), t.settle).catch(() => undefined);
    expect(t.steps()).not.toContain('deadLetter');
  });

  test('does not schedule a retry for the synced message', async () => {
    const t = setup(() => 'updated');
    t.settle.failComplete.push(new Error('The session lock has expired'));
    await expect(t.processor.process(received(body), t.settle)).rejects.toThrow('The session lock has expired');
    expect(t.steps()).not.toContain('schedule');
  });
});
