/**
 * Conformance of the local Service Bus broker, driven only through the real `@azure/service-bus` SDK.
 */
import { ServiceBusClient, isServiceBusError, type ServiceBusReceiver } from '@azure/service-bus';
import { LocalServiceBus } from '../../local/servicebus/broker';

jest.setTimeout(30_000);

let broker: LocalServiceBus;
let client: ServiceBusClient;

beforeAll(async () => {
  broker = await LocalServiceBus.start({
    queues: [
      { name: 'plain' },
      { name: 'short-lock', lockDurationInMs: 1_500 },
      // Long enough that a busy machine does not lose the lock between two steps of a test.
      { name: 'renewable', lockDurationInMs: 4_000 },
      { name: 'poison', maxDeliveryCount: 3 },
      { name: 'dedupe', requiresDuplicateDetection: true, duplicateDetectionWindowInMs: 1_000 },
      { name: 'sessions', requiresSession: true, lockDurationInMs: 2_000 },
      { name: 'scheduled' },
      { name: 'expiring', deadLetteringOnMessageExpiration: true },
      { name: 'small', maxMessageSizeInBytes: 1024 },
    ],
  });
  client = new ServiceBusClient(broker.connectionString);
});

afterAll(async () => {
  await client?.close();
  await broker?.stop();
});

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Resolves once `condition` holds (checked every 20 ms). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await wait(20);
}

async function drain(receiver: ServiceBusReceiver, count = 100): Promise<void> {
  for (const m of await receiver.receiveMessages(count, { maxWaitTimeInMs: 200 })) await receiver.completeMessage(m);
}

describe('send and receive', () => {
  test('single and batched sends arrive in order with their properties and broker annotations', async () => {
    const sender = client.createSender('plain');
    await sender.sendMessages({
      body: { n: 1 },
      messageId: 'one',
      contentType: 'application/json',
      subject: 'first',
      correlationId: 'corr',
      applicationProperties: { traceparent: '00-abc-def-01', attempt: 1 },
    });
    const batch = await sender.createMessageBatch();
    expect(batch.tryAddMessage({ body: { n: 2 }, messageId: 'two' })).toBe(true);
    expect(batch.tryAddMessage({ body: { n: 3 } })).toBe(true);
    await sender.sendMessages(batch);
    await sender.sendMessages([{ body: { n: 4 } }, { body: { n: 5 } }]);

    const receiver = client.createReceiver('plain');
    const received = await receiver.receiveMessages(5, { maxWaitTimeInMs: 2_000 });
    expect(received.map((m) => m.body.n)).toEqual([1, 2, 3, 4, 5]);
    const [first] = received;
    expect(first).toMatchObject({
      messageId: 'one',
      contentType: 'application/json',
      subject: 'first',
      correlationId: 'corr',
      applicationProperties: { traceparent: '00-abc-def-01', attempt: 1 },
      deliveryCount: 0,
    });
    expect(first!.lockToken).toMatch(/^[0-9a-f-]{36}$/);
    expect(first!.enqueuedTimeUtc!.getTime()).toBeGreaterThan(Date.now() - 10_000);
    expect(first!.lockedUntilUtc!.getTime()).toBeGreaterThan(Date.now());
    const sequence = received.map((m) => Number(m.sequenceNumber));
    expect(sequence).toEqual([...sequence].sort((a, b) => a - b));
    expect(received[2]!.messageId).toEqual(expect.any(String)); // assigned when the client sent none
    for (const m of received) await receiver.completeMessage(m);
    expect(broker.stats('plain')).toMatchObject({ active: 0, locked: 0 });
    await receiver.close();
  });

  test('an empty queue answers a receive with nothing once the wait is over (drain is honoured)', async () => {
    const receiver = client.createReceiver('plain');
    const started = Date.now();
    expect(await receiver.receiveMessages(10, { maxWaitTimeInMs: 300 })).toEqual([]);
    expect(Date.now() - started).toBeLessThan(10_000);
    await receiver.close();
  });

  test('receive-and-delete removes messages at delivery', async () => {
    await client.createSender('plain').sendMessages({ body: 'gone' });
    const receiver = client.createReceiver('plain', { receiveMode: 'receiveAndDelete' });
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect(m!.body).toBe('gone');
    expect(broker.stats('plain').active).toBe(0);
    await receiver.close();
  });

  test('a message above the size limit is refused', async () => {
    const sender = client.createSender('small');
    await expect(sender.sendMessages({ body: 'x'.repeat(5_000) })).rejects.toThrow();
    expect(broker.stats('small').enqueued).toBe(0);
  });

  test('peek shows messages without locking them', async () => {
    await client.createSender('plain').sendMessages([{ body: 'p1' }, { body: 'p2' }]);
    const receiver = client.createReceiver('plain');
    const peeked = await receiver.peekMessages(10, { fromSequenceNumber: undefined });
    expect(peeked.map((m) => m.body)).toEqual(['p1', 'p2']);
    expect(broker.stats('plain')).toMatchObject({ active: 2, locked: 0 });
    await drain(receiver);
    expect(await client.createReceiver('plain').peekMessages(10)).toEqual([]);
    await receiver.close();
  });
});

describe('peek-lock settlement', () => {
  test('abandon redelivers with a higher delivery count', async () => {
    await client.createSender('plain').sendMessages({ body: 'again' });
    const receiver = client.createReceiver('plain');
    const [first] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    await receiver.abandonMessage(first!, { note: 'tried' });
    const [second] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect(second!.body).toBe('again');
    expect(second!.deliveryCount).toBe(1);
    expect(second!.applicationProperties).toMatchObject({ note: 'tried' });
    await receiver.completeMessage(second!);
    await receiver.close();
  });

  test('an expired lock makes the message available again; settling it then fails with MessageLockLost', async () => {
    await client.createSender('short-lock').sendMessages({ body: 'slow' });
    const receiver = client.createReceiver('short-lock', { maxAutoLockRenewalDurationInMs: 0 });
    const [first] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    await until(() => Date.now() > first!.lockedUntilUtc!.getTime() + 100);
    const error = await receiver.completeMessage(first!).catch((e: unknown) => e);

    expect(isServiceBusError(error) && error.code).toBe('MessageLockLost');
    const [again] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect(again!.body).toBe('slow');
    expect(again!.deliveryCount).toBe(1);
    await receiver.completeMessage(again!);
    await receiver.close();
  });

  test('renewing the lock keeps the message', async () => {
    await client.createSender('renewable').sendMessages({ body: 'renewed' });
    const receiver = client.createReceiver('renewable', { maxAutoLockRenewalDurationInMs: 0 });
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    const before = m!.lockedUntilUtc!.getTime();
    await until(() => Date.now() >= before - 2_000); // half the lock gone
    const renewed = await receiver.renewMessageLock(m!);
    expect(renewed.getTime()).toBeGreaterThan(before);
    await until(() => Date.now() > before + 50); // past the original lock, inside the renewed one
    await receiver.completeMessage(m!);
    expect(broker.stats('renewable')).toMatchObject({ active: 0, locked: 0 });
    await receiver.close();
  });

  test('the max delivery count moves a message to the dead-letter queue', async () => {
    await client.createSender('poison').sendMessages({ body: 'poison', messageId: 'poison-1' });
    const receiver = client.createReceiver('poison');
    for (let i = 0; i < 3; i += 1) {
      const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
      expect(m!.deliveryCount).toBe(i);
      await receiver.abandonMessage(m!);
    }
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
    const dlq = client.createReceiver('poison', { subQueueType: 'deadLetter' });
    const [dead] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect(dead).toMatchObject({ body: 'poison', messageId: 'poison-1', deadLetterReason: 'MaxDeliveryCountExceeded', deadLetterSource: 'poison' });
    await dlq.completeMessage(dead!);
    await receiver.close();
    await dlq.close();
  });

  test('dead-letter with a reason and description', async () => {
    await client.createSender('plain').sendMessages({ body: 'bad', messageId: 'bad-1' });
    const receiver = client.createReceiver('plain');
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    await receiver.deadLetterMessage(m!, { deadLetterReason: 'InvalidRef', deadLetterErrorDescription: 'not a ref', extra: 'x' });
    const dlq = client.createReceiver('plain', { subQueueType: 'deadLetter' });
    const [peeked] = await dlq.peekMessages(1);
    expect(peeked).toMatchObject({ messageId: 'bad-1', deadLetterReason: 'InvalidRef', deadLetterErrorDescription: 'not a ref' });
    expect(peeked!.applicationProperties).toMatchObject({ extra: 'x' });
    await drain(dlq);
    expect(broker.stats('plain').deadLettered).toBe(0);
    await receiver.close();
    await dlq.close();
  });

  test('defer, then receive by sequence number and complete through $management', async () => {
    await client.createSender('plain').sendMessages({ body: 'later' });
    const receiver = client.createReceiver('plain');
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    await receiver.deferMessage(m!);
    expect(broker.stats('plain')).toMatchObject({ deferred: 1, locked: 0 });
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
    const [deferred] = await receiver.receiveDeferredMessages(m!.sequenceNumber!);
    expect(deferred!.body).toBe('later');
    await receiver.completeMessage(deferred!);
    expect(broker.stats('plain')).toMatchObject({ deferred: 0, active: 0 });
    await receiver.close();
  });
});

describe('scheduled messages', () => {
  test('scheduled through $management: invisible until due, then delivered; cancel removes one', async () => {
    const sender = client.createSender('scheduled');
    const due = new Date(Date.now() + 1_200);
    const [keep, cancel] = await sender.scheduleMessages([{ body: 'keep' }, { body: 'cancel' }], due);
    expect(Number(cancel)).toBeGreaterThan(Number(keep));
    await sender.cancelScheduledMessages(cancel!);
    const receiver = client.createReceiver('scheduled');
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
    expect(broker.stats('scheduled').scheduled).toBe(1);
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5_000 });
    expect(m!.body).toBe('keep');
    expect(Date.now()).toBeGreaterThanOrEqual(due.getTime() - 5);
    await receiver.completeMessage(m!);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
    await receiver.close();
  });

  test('scheduled through the message annotation on send', async () => {
    const due = new Date(Date.now() + 800);
    await client.createSender('scheduled').sendMessages({ body: 'annotated', scheduledEnqueueTimeUtc: due });
    const receiver = client.createReceiver('scheduled');
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 200 })).toEqual([]);
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5_000 });
    expect(m!.body).toBe('annotated');
    await receiver.completeMessage(m!);
    await receiver.close();
  });
});

describe('duplicate detection', () => {
  test('a message id seen inside the window is dropped; after the window it is accepted', async () => {
    const sender = client.createSender('dedupe');
    await sender.sendMessages({ body: 'a', messageId: 'event-1' });
    await sender.sendMessages({ body: 'b', messageId: 'event-1' }); // dropped, but the send succeeds
    await sender.sendMessages({ body: 'c', messageId: 'event-2' });
    expect(broker.stats('dedupe')).toMatchObject({ active: 2, duplicatesDropped: 1 });
    await wait(1_100);
    await sender.sendMessages({ body: 'd', messageId: 'event-1' });
    const receiver = client.createReceiver('dedupe');
    const received = await receiver.receiveMessages(10, { maxWaitTimeInMs: 1_000 });
    expect(received.map((m) => m.body)).toEqual(['a', 'c', 'd']);
    for (const m of received) await receiver.completeMessage(m);
    await receiver.close();
  });
});

describe('sessions', () => {
  test('messages without a session id are refused by a session queue', async () => {
    await expect(client.createSender('sessions').sendMessages({ body: 'no session' })).rejects.toThrow(/SessionId/);
  });

  test('each session delivers its own messages in order; next-available picks a session with messages', async () => {
    const sender = client.createSender('sessions');
    await sender.sendMessages([
      { body: 'a1', sessionId: 'A' },
      { body: 'b1', sessionId: 'B' },
      { body: 'a2', sessionId: 'A' },
      { body: 'b2', sessionId: 'B' },
      { body: 'a3', sessionId: 'A' },
    ]);
    const first = await client.acceptNextSession('sessions');
    const second = await client.acceptNextSession('sessions');
    expect(new Set([first.sessionId, second.sessionId])).toEqual(new Set(['A', 'B']));
    const bodies: Record<string, string[]> = {};
    for (const receiver of [first, second]) {
      const messages = await receiver.receiveMessages(10, { maxWaitTimeInMs: 500 });
      bodies[receiver.sessionId] = messages.map((m) => m.body);
      expect(messages.every((m) => m.sessionId === receiver.sessionId)).toBe(true);
      for (const m of messages) await receiver.completeMessage(m);
      await receiver.close();
    }
    expect(bodies).toEqual({ A: ['a1', 'a2', 'a3'], B: ['b1', 'b2'] });
  });

  test('a locked session cannot be accepted by a second receiver until released', async () => {
    await client.createSender('sessions').sendMessages({ body: 'c1', sessionId: 'C' });
    const owner = await client.acceptSession('sessions', 'C');
    const error = await client.acceptSession('sessions', 'C', { maxAutoLockRenewalDurationInMs: 0 }).catch((e: unknown) => e);
    expect(isServiceBusError(error) && error.code).toBe('SessionCannotBeLocked');
    await owner.close();
    const next = await client.acceptSession('sessions', 'C');
    const [m] = await next.receiveMessages(1, { maxWaitTimeInMs: 1_000 });
    expect(m!.body).toBe('c1');
    await next.completeMessage(m!);
    await next.close();
  });

  test('session state and session lock renewal', async () => {
    const receiver = await client.acceptSession('sessions', 'D');
    expect(await receiver.getSessionState()).toBeFalsy();
    await receiver.setSessionState(JSON.stringify({ cursor: 7 }));
    expect(JSON.parse(String(await receiver.getSessionState()))).toEqual({ cursor: 7 });
    const before = receiver.sessionLockedUntilUtc.getTime();
    await wait(20);
    await receiver.renewSessionLock();
    expect(receiver.sessionLockedUntilUtc.getTime()).toBeGreaterThan(before);
    await receiver.close();
  });

  test('waiting for the next session times out when none has messages', async () => {
    const impatient = new ServiceBusClient(broker.connectionString, { retryOptions: { timeoutInMs: 500, maxRetries: 0 } });
    const error = await impatient.acceptNextSession('sessions').catch((e: unknown) => e);
    await impatient.close();
    expect(isServiceBusError(error) && error.code).toBe('ServiceTimeout');
  });

  test('a receiver waiting for the next session gets one as soon as a message arrives', async () => {
    const pending = client.acceptNextSession('sessions');
    await wait(200);
    await client.createSender('sessions').sendMessages({ body: 'e1', sessionId: 'E' });
    const receiver = await pending;
    expect(receiver.sessionId).toBe('E');
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 1_000 });
    await receiver.completeMessage(m!);
    await receiver.close();
  });
});

describe('time to live', () => {
  test('an expired message is dead-lettered when the queue says so', async () => {
    await client.createSender('expiring').sendMessages({ body: 'stale', timeToLive: 100 });
    await wait(200);
    const receiver = client.createReceiver('expiring');
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 200 })).toEqual([]);
    const [dead] = await client.createReceiver('expiring', { subQueueType: 'deadLetter' }).peekMessages(1);
    expect(dead).toMatchObject({ body: 'stale', deadLetterReason: 'TTLExpiredException' });
    await receiver.close();
  });
});

describe('faults', () => {
  test('after the broker drops every connection, the SDK reconnects and carries on', async () => {
    const sender = client.createSender('plain');
    await sender.sendMessages({ body: 'before' });
    broker.dropConnections();
    await wait(200); // a send already on the wire when the socket dies waits for its own timeout, as with Azure
    await sender.sendMessages({ body: 'after' });
    const receiver = client.createReceiver('plain');
    const received = await receiver.receiveMessages(2, { maxWaitTimeInMs: 2_000 });
    expect(received.map((m) => m.body).sort()).toEqual(['after', 'before']);
    for (const m of received) await receiver.completeMessage(m);
    await receiver.close();
  });

  test('expireLocks: every lock on a queue is lost at once', async () => {
    await client.createSender('plain').sendMessages({ body: 'locked' });
    const receiver = client.createReceiver('plain');
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    broker.expireLocks('plain');
    const error = await receiver.completeMessage(m!).catch((e: unknown) => e);
    expect(isServiceBusError(error) && error.code).toBe('MessageLockLost');
    await drain(receiver);
    await receiver.close();
  });
});
