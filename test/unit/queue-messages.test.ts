import fc from 'fast-check';
import type { SyncMessageBody } from '../../shared/intake/events';
import { MAX_SESSION_ID_LENGTH, retryMessageId, toServiceBusMessage, toSessionId } from '../../shared/queue/queue';

/** The longest document id an entity can have: 63-character kind, namespace and name. */
const longestId = `${'k'.repeat(63)}:${'n'.repeat(63)}:${'a'.repeat(63)}`;

describe('retryMessageId', () => {
  test('is deterministic: a redelivered failing message schedules the same id', () => {
    expect(retryMessageId('evt-123', 2)).toBe(retryMessageId('evt-123', 2));
    expect(retryMessageId('evt-123', 2)).toMatch(/^retry-2-[0-9a-f]{40}$/);
  });

  test('differs per attempt and per failing message', () => {
    const ids = new Set([retryMessageId('evt-123', 2), retryMessageId('evt-123', 3), retryMessageId('evt-124', 2), retryMessageId('evt-124', 3)]);
    expect(ids.size).toBe(4);
  });

  test('a chain continues from the failing retry, not from the first message', () => {
    const second = retryMessageId('evt-123', 2);
    expect(retryMessageId(second, 3)).not.toBe(retryMessageId('evt-123', 3));
  });

  test('fits Service Bus message ids (128) whatever the failing id', () => {
    expect(retryMessageId('x'.repeat(128), 1_000_000).length).toBeLessThanOrEqual(128);
    expect(retryMessageId('', 2).length).toBeLessThanOrEqual(128);
  });

  test('property: distinct (id, attempt) pairs get distinct ids', () => {
    const pair = fc.tuple(fc.oneof(fc.string({ maxLength: 10 }), fc.string({ minLength: 100, maxLength: 130 })), fc.integer({ min: 1, max: 1000 }));
    fc.assert(
      fc.property(pair, pair, ([idA, attemptA], [idB, attemptB]) => {
        fc.pre(idA !== idB || attemptA !== attemptB);
        expect(retryMessageId(idA, attemptA)).not.toBe(retryMessageId(idB, attemptB));
      }),
      { numRuns: 200 },
    );
  });
});

describe('toSessionId', () => {
  test('ids that fit are unchanged, up to exactly 128 characters', () => {
    expect(toSessionId('component:default:web-shop')).toBe('component:default:web-shop');
    const exactly = 'c'.repeat(MAX_SESSION_ID_LENGTH);
    expect(toSessionId(exactly)).toBe(exactly);
  });

  test('longer ids become at most 128 characters, deterministically', () => {
    const session = toSessionId(longestId);
    expect(MAX_SESSION_ID_LENGTH).toBe(128);
    expect(session.length).toBeLessThanOrEqual(128);
    expect(session).not.toBe(longestId.slice(0, 128));
    expect(toSessionId(longestId)).toBe(session);
    expect(toSessionId('c'.repeat(129)).length).toBeLessThanOrEqual(128);
  });

  test('long ids that share their first 128 characters get different sessions', () => {
    const prefix = longestId.slice(0, 150);
    const a = `${prefix}x`;
    const b = `${prefix}y`;
    expect(toSessionId(a)).not.toBe(toSessionId(b));
  });

  test('is idempotent', () => {
    const once = toSessionId(longestId);
    expect(toSessionId(once)).toBe(once);
  });

  test('property: idempotent, short enough, identity on ids that fit, injective on this sample', () => {
    // Short ids, and ids around and beyond the limit (many sharing a long common prefix).
    const id = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.string({ minLength: 120, maxLength: 300 }),
      fc.string({ minLength: 0, maxLength: 30 }).map((tail) => `${longestId.slice(0, 120)}${tail}`),
    );
    fc.assert(
      fc.property(id, id, (a, b) => {
        const sa = toSessionId(a);
        expect(sa.length).toBeLessThanOrEqual(MAX_SESSION_ID_LENGTH);
        expect(toSessionId(sa)).toBe(sa);
        if (a.length <= MAX_SESSION_ID_LENGTH) expect(sa).toBe(a);
        if (a !== b) expect(toSessionId(b)).not.toBe(sa);
      }),
      { numRuns: 200 },
    );
  });
});

describe('toServiceBusMessage', () => {
  const body: SyncMessageBody = {
    entityRef: 'component:default/web-shop',
    type: 'upserted',
    etag: 'abc',
    eventId: 'evt-1',
    eventTime: '2026-03-01T12:00:00Z',
    source: 'urn:test',
  };

  test('carries the id, session, subject, body and application properties', () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const message = toServiceBusMessage(
      { messageId: 'evt-1', sessionId: 'component:default:web-shop', body },
      { attempt: 3, traceparent, originalMessageId: 'evt-0' },
    );
    expect(message).toStrictEqual({
      messageId: 'evt-1',
      sessionId: 'component:default:web-shop',
      contentType: 'application/json',
      subject: 'upserted',
      body,
      applicationProperties: { attempt: 3, traceparent, originalMessageId: 'evt-0' },
    });
  });

  test('leaves out absent (and empty) optional properties', () => {
    const message = toServiceBusMessage(
      { messageId: 'evt-2', sessionId: 'component:default:web-shop', body: { ...body, type: 'deleted' } },
      { attempt: 1, traceparent: '', originalMessageId: '' },
    );
    expect(message.applicationProperties).toStrictEqual({ attempt: 1 });
    expect(message.subject).toBe('deleted');
  });

  test('the session of a long id goes through toSessionId', () => {
    const message = toServiceBusMessage({ messageId: 'evt-3', sessionId: longestId, body }, { attempt: 1 });
    expect(message.sessionId).toBe(toSessionId(longestId));
    expect(message.sessionId!.length).toBeLessThanOrEqual(128);
  });
});
