import type { ServiceBusMessage, ServiceBusReceivedMessage } from '@azure/service-bus';
import { SYNC_BATCH_SUBJECT, type SyncBatchBody, type SyncMessageBody } from '../../shared/intake/events';
import { BackstageUnavailableError, OperationAbortedError } from '../../shared/platform/errors';
import { silentLogger } from '../../shared/platform/logger';
import { InMemoryMetrics } from '../../shared/platform/metrics';
import { DeadLetterReason, SyncMessageProcessor, type Settlement } from '../../shared/queue/processor';
import { toSyncBatchMessage, type EventQueue, type SyncMessageProperties } from '../../shared/queue/queue';
import type { SyncEngine } from '../../shared/sync/engine';
import type { ReconcileResult, Reconciler } from '../../shared/sync/reconcile';

const NOW = Date.parse('2026-03-01T12:00:05.000Z');
const retry = { maxAttempts: 3, baseDelayInMs: 1_000, maxDelayInMs: 60_000 };

const entity = (name: string): SyncMessageBody => ({
  entityRef: `component:default/${name}`,
  type: 'upserted',
  etag: `etag-${name}`,
  eventId: `evt-${name}`,
  eventTime: '2026-03-01T12:00:00.000Z',
  source: 'urn:test',
});

type Step =
  | { step: 'syncMany'; refs: string[] }
  | { step: 'scheduleBatch'; failingMessageId: string; body: SyncBatchBody; sessionId: string; properties: SyncMessageProperties; at: Date }
  | { step: 'enqueue'; messages: ServiceBusMessage[] }
  | { step: 'complete' }
  | { step: 'deadLetter'; reason: string; description: string };

function result(failures: string[]): ReconcileResult {
  return {
    seen: 0, created: 0, updated: 0, unchanged: 0, tombstoned: 0, failed: failures.length, writes: 0, requestCharge: 0, backstageRequests: 1, durationInMs: 1,
    deletionGuard: { allowed: true, tripped: false, forced: false, pendingTombstones: 0 },
    scope: { excludedBySetting: 0, excludedByAnnotation: 0, envelopeOnly: 0, fieldsOmitted: 0, leftScope: { setting: 0, annotation: 0 } },
    failures: failures.map((entityRef) => ({ entityRef, error: 'Backstage answered 503' })),
  };
}

function setup(answer: (refs: string[]) => string[] | Error) {
  const log: Step[] = [];
  const batches: Pick<Reconciler, 'syncMany'> = {
    async syncMany(items) {
      const refs = items.map((i) => i.entityRef);
      log.push({ step: 'syncMany', refs });
      const outcome = answer(refs);
      if (outcome instanceof Error) throw outcome;
      return result(outcome);
    },
  };
  const queue = {
    async scheduleBatchRetry(failingMessageId: string, body: SyncBatchBody, sessionId: string, properties: SyncMessageProperties, at: Date) {
      log.push({ step: 'scheduleBatch', failingMessageId, body, sessionId, properties, at });
    },
    async enqueue(messages: ServiceBusMessage[]) {
      log.push({ step: 'enqueue', messages });
    },
  };
  const settle: Settlement = {
    complete: async () => void log.push({ step: 'complete' }),
    deadLetter: async (reason, description) => void log.push({ step: 'deadLetter', reason, description }),
  };
  const metrics = new InMemoryMetrics();
  const engine = { syncEntity: () => Promise.reject(new Error('a batch must not go through the single-entity sync')) } as unknown as SyncEngine;
  const processor = new SyncMessageProcessor({ engine, queue: queue as unknown as EventQueue, batches, logger: silentLogger, metrics, retry, random: () => 0.5, now: () => NOW });
  return { processor, settle, log, metrics, steps: () => log.map((s) => s.step) };
}

function batchMessage(names: string[], attempt = 1): ServiceBusReceivedMessage {
  const message = toSyncBatchMessage(
    names.map((n) => ({ messageId: `evt-${n}`, sessionId: `component:default:${n}`, body: entity(n) })),
    { attempt },
  );
  return { ...message, state: 'active', _rawAmqpMessage: { body: message.body } } as unknown as ServiceBusReceivedMessage;
}

test('a batch message: one syncMany for all its entities, then complete', async () => {
  const t = setup(() => []);
  const outcome = await t.processor.process(batchMessage(['a', 'b', 'c']), t.settle);
  expect(outcome).toEqual({ action: 'batch-completed', attempt: 1, entities: 3, failed: 0 });
  expect(t.log[0]).toEqual({ step: 'syncMany', refs: ['component:default/a', 'component:default/b', 'component:default/c'] });
  expect(t.steps()).toEqual(['syncMany', 'complete']);
  expect(t.metrics.summary('sync.batch_size')).toMatchObject({ count: 1, sum: 3 });
});

test('entities that failed are retried as a smaller batch in the same session, with backoff and a derived id', async () => {
  const t = setup(() => ['component:default/b']);
  const message = batchMessage(['a', 'b', 'c']);
  const outcome = await t.processor.process(message, t.settle);
  expect(outcome).toMatchObject({ action: 'batch-completed', failed: 1, next: 'retry-scheduled' });
  expect(t.steps()).toEqual(['syncMany', 'scheduleBatch', 'complete']);
  const scheduled = t.log[1] as Extract<Step, { step: 'scheduleBatch' }>;
  expect(scheduled.body.entities.map((e) => e.entityRef)).toEqual(['component:default/b']);
  expect(scheduled.sessionId).toBe(message.sessionId);
  expect(scheduled.failingMessageId).toBe(message.messageId);
  expect(scheduled.properties).toMatchObject({ attempt: 2, originalMessageId: message.messageId });
  // Backoff: the first retry waits about the base delay (jitter at 0.5).
  expect(scheduled.at.getTime() - NOW).toBeGreaterThan(0);
  expect(scheduled.at.getTime() - NOW).toBeLessThanOrEqual(retry.maxDelayInMs);
});

test('a failure that names the entity as the catalog spells it still retries that entity', async () => {
  const t = setup(() => ['Component:default/B']);
  await t.processor.process(batchMessage(['a', 'b']), t.settle);
  const scheduled = t.log[1] as Extract<Step, { step: 'scheduleBatch' }>;
  expect(scheduled.body.entities.map((e) => e.entityRef)).toEqual(['component:default/b']);
});

test('a batch whose sync threw (Backstage down) retries every entity', async () => {
  const t = setup(() => new BackstageUnavailableError('Backstage POST /entities/by-refs still failing', 503));
  await t.processor.process(batchMessage(['a', 'b']), t.settle);
  const scheduled = t.log[1] as Extract<Step, { step: 'scheduleBatch' }>;
  expect(scheduled.body.entities).toHaveLength(2);
  expect(t.steps()).toEqual(['syncMany', 'scheduleBatch', 'complete']);
});

test('after the last attempt, each failed entity goes on as a message of its own (never dropped)', async () => {
  const t = setup(() => ['component:default/a', 'component:default/c']);
  const outcome = await t.processor.process(batchMessage(['a', 'b', 'c'], retry.maxAttempts), t.settle);
  expect(outcome).toMatchObject({ action: 'batch-completed', failed: 2, next: 'split' });
  expect(t.steps()).toEqual(['syncMany', 'enqueue', 'complete']);
  const { messages } = t.log[1] as Extract<Step, { step: 'enqueue' }>;
  expect(messages.map((m) => [m.sessionId, m.subject, (m.body as SyncMessageBody).entityRef, m.applicationProperties?.attempt])).toEqual([
    ['component:default:a', 'upserted', 'component:default/a', 1],
    ['component:default:c', 'upserted', 'component:default/c', 1],
  ]);
  // Derived ids: a redelivered batch splits into the same messages, which duplicate detection drops.
  const again = setup(() => ['component:default/a', 'component:default/c']);
  await again.processor.process(batchMessage(['a', 'b', 'c'], retry.maxAttempts), again.settle);
  expect((again.log[1] as Extract<Step, { step: 'enqueue' }>).messages.map((m) => m.messageId)).toEqual(messages.map((m) => m.messageId));
});

test('a batch that breaks the contract is dead-lettered without syncing anything', async () => {
  const t = setup(() => []);
  const bad = { ...batchMessage(['a']), body: { entities: [{ entityRef: 'not a ref' }] } };
  const outcome = await t.processor.process(bad, t.settle);
  expect(outcome).toMatchObject({ action: 'dead-lettered', reason: DeadLetterReason.invalidMessage });
  expect(t.steps()).toEqual(['deadLetter']);
  const empty = setup(() => []);
  await empty.processor.process({ ...batchMessage(['a']), body: { entities: [] } }, empty.settle);
  expect(empty.steps()).toEqual(['deadLetter']);
});

test('an aborted batch (the worker stopping) is left for the host to abandon: not settled, not retried', async () => {
  const t = setup(() => new OperationAbortedError('aborted'));
  await expect(t.processor.process(batchMessage(['a']), t.settle)).rejects.toBeInstanceOf(OperationAbortedError);
  expect(t.steps()).toEqual(['syncMany']);
});

test('the batch message: subject sync-batch, its own session, an id that depends only on the events', () => {
  const one = batchMessage(['a', 'b']);
  const same = batchMessage(['b', 'a']);
  expect(one.subject).toBe(SYNC_BATCH_SUBJECT);
  expect(one.sessionId).toMatch(/^~batch:[0-9a-f]{40}$/);
  expect(one.messageId).toBe(same.messageId);
  expect(batchMessage(['a', 'c']).messageId).not.toBe(one.messageId);
});
