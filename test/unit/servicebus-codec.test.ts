/**
 * The local Service Bus broker's pure AMQP codec helpers, checked against independent references: .NET's
 * GUID byte order, the SDK's own way of reading lock tokens and `locked-until-utc` ticks, and rhea's encoder.
 */
import { randomUUID } from 'node:crypto';
import Long from 'long';
import rhea from 'rhea';
import {
  decodeBatch,
  lockTokenToTag,
  longBytes,
  longs,
  outgoingMessage,
  randomTag,
  tagToLockToken,
  toDotNetTicks,
  toMillis,
  unwrapString,
  unwrapValue,
  uuidToBytes,
  uuids,
} from '../../local/servicebus/codec';
import type { StoredMessage } from '../../local/servicebus/queue-state';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** .NET `Guid.ToByteArray()`: Data1 (int32), Data2 and Data3 (int16) little-endian, then the last 8 bytes as written. */
function dotNetGuidBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  const bytes = Buffer.alloc(16);
  bytes.writeUInt32LE(parseInt(hex.slice(0, 8), 16), 0);
  bytes.writeUInt16LE(parseInt(hex.slice(8, 12), 16), 4);
  bytes.writeUInt16LE(parseInt(hex.slice(12, 16), 16), 6);
  Buffer.from(hex.slice(16), 'hex').copy(bytes, 8);
  return bytes;
}

const decode = (bytes: Buffer): Record<string, unknown> => rhea.message.decode(bytes);

/** How @azure/service-bus turns a delivery tag into `lockToken` (reorderLockToken, then rhea's uuid_to_string). */
function sdkLockToken(tag: Buffer): string {
  const b = tag;
  return rhea.uuid_to_string(Buffer.from([b[3]!, b[2]!, b[1]!, b[0]!, b[5]!, b[4]!, b[7]!, b[6]!, ...b.subarray(8)]));
}

/** How @azure/service-bus reads `com.microsoft:locked-until-utc` (convertTicksToDate). */
function sdkTicksToMillis(bytes: Buffer): number {
  return Long.fromBytesBE([...bytes]).sub(621355968000000000).div(10000).toNumber();
}

describe('lock token ⇄ delivery tag', () => {
  test('a lock token goes on the wire as 16 bytes in .NET GUID byte order', () => {
    const token = '00112233-4455-6677-8899-aabbccddeeff';
    const tag = lockTokenToTag(token);
    expect(tag.toString('hex')).toBe('33221100554477668899aabbccddeeff');
    expect(tag.equals(dotNetGuidBytes(token))).toBe(true);
  });

  test('a tag reads back as the same lock token, here and in the SDK', () => {
    for (const token of ['00112233-4455-6677-8899-aabbccddeeff', 'deadbeef-0001-4002-8003-0123456789ab', randomUUID()]) {
      const tag = lockTokenToTag(token);
      expect(tagToLockToken(tag)).toBe(token);
      expect(sdkLockToken(tag)).toBe(token);
    }
  });

  test('a tag in .NET order reads back in standard order', () => {
    expect(tagToLockToken(Buffer.from('33221100554477668899aabbccddeeff', 'hex'))).toBe('00112233-4455-6677-8899-aabbccddeeff');
  });

  test('random tags are 16 bytes that the SDK reads as distinct v4 uuids', () => {
    const tokens = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const tag = randomTag();
      expect(tag).toHaveLength(16);
      const token = sdkLockToken(tag);
      expect(token).toMatch(UUID_V4);
      expect(tagToLockToken(tag)).toBe(token);
      tokens.add(token);
    }
    expect(tokens.size).toBe(50);
  });

  test('uuidToBytes keeps the standard (big-endian) byte order, as rhea does for uuid values', () => {
    const token = 'deadbeef-0001-4002-8003-0123456789ab';
    expect(uuidToBytes(token).equals(rhea.string_to_uuid(token))).toBe(true);
  });
});

describe('.NET ticks', () => {
  test('the Unix epoch and known dates convert to their .NET tick counts', () => {
    expect(toDotNetTicks(0)).toBe(621_355_968_000_000_000n);
    expect(toDotNetTicks(Date.UTC(2000, 0, 1))).toBe(630_822_816_000_000_000n); // DateTime(2000, 1, 1).Ticks
    expect(toDotNetTicks(1)).toBe(621_355_968_000_010_000n);
  });

  test('longBytes writes a signed 64-bit big-endian integer', () => {
    expect(longBytes(1n).toString('hex')).toBe('0000000000000001');
    expect(longBytes(-1n).toString('hex')).toBe('ffffffffffffffff');
    expect(longBytes(0x0102030405060708n).toString('hex')).toBe('0102030405060708');
  });

  test('locked-until-utc as the broker writes it is read back by the SDK as the same instant', () => {
    for (const ms of [0, Date.UTC(2030, 5, 15, 12, 30, 45, 678), Date.now()]) {
      expect(sdkTicksToMillis(longBytes(toDotNetTicks(ms)))).toBe(ms);
    }
  });
});

describe('batch decoding (message format 0x80013700)', () => {
  const encode = (message: Record<string, unknown>): Buffer => rhea.message.encode(message);

  test('a batch of several messages, built as the SDK builds it, decodes to each message in order', () => {
    const parts = [
      { message_id: 'one', body: 'first', application_properties: { n: 1 } },
      { message_id: 'two', body: { nested: [1, 2] }, group_id: 'session-a' },
      { message_id: 'three', body: Buffer.from('raw') },
    ];
    const batch = encode({ body: rhea.message.data_sections(parts.map(encode)) as unknown });
    const decoded = decodeBatch(batch);
    expect(decoded).toHaveLength(3);
    expect(decoded.map((m) => m.message_id)).toEqual(['one', 'two', 'three']);
    expect(decoded[0]).toMatchObject({ body: 'first', application_properties: { n: 1 } });
    expect(decoded[1]).toMatchObject({ body: { nested: [1, 2] }, group_id: 'session-a' });
    expect(Buffer.from(decoded[2]!.body as Buffer).toString()).toBe('raw');
  });

  test('a batch with a single data section decodes to that one message', () => {
    const batch = encode({ body: rhea.message.data_section(encode({ message_id: 'only', body: 'alone' })) as unknown });
    const decoded = decodeBatch(batch);
    expect(decoded).toHaveLength(1);
    expect(decoded[0]).toMatchObject({ message_id: 'only', body: 'alone' });
  });
});

describe('$management value unwrapping', () => {
  const roundTrip = (body: Record<string, unknown>): Record<string, unknown> =>
    decode(rhea.message.encode({ body })).body as Record<string, unknown>;

  test('longs reads an AMQP array of longs as rhea decodes it, and 64-bit big-endian buffers', () => {
    const body = roundTrip({ 'sequence-numbers': rhea.types.wrap_array([1, 2, 2 ** 40], 0x81, undefined) });
    expect(longs(body['sequence-numbers'])).toEqual([1, 2, 2 ** 40]);
    expect(longs([longBytes(7n), longBytes(2n ** 40n), 3, { typecode: 0x81, value: 9 }])).toEqual([7, 2 ** 40, 3, 9]);
    expect(longs(undefined)).toEqual([]);
  });

  test('uuids reads an AMQP array of uuids (standard byte order) and passes strings through', () => {
    const token = 'deadbeef-0001-4002-8003-0123456789ab';
    const body = roundTrip({ 'lock-tokens': rhea.types.wrap_array([rhea.string_to_uuid(token)], 0x98, undefined) });
    expect(uuids(body['lock-tokens'])).toEqual([token]);
    expect(uuids(['plain-string'])).toEqual(['plain-string']);
    expect(uuids(undefined)).toEqual([]);
  });

  test('unwrapValue takes the value out of a typed wrapper and leaves anything else alone', () => {
    expect(unwrapValue({ typecode: 0x81, value: 5 })).toBe(5);
    const plain = { value: 5 };
    expect(unwrapValue(plain)).toBe(plain);
    expect(unwrapValue('x')).toBe('x');
    expect(unwrapValue(null)).toBeNull();
  });

  test('unwrapString: null and undefined are absent, anything else is its string form', () => {
    expect(unwrapString(undefined)).toBeUndefined();
    expect(unwrapString(null)).toBeUndefined();
    expect(unwrapString({ typecode: 0xa1, value: null })).toBeUndefined();
    expect(unwrapString({ typecode: 0xa1, value: 'session-1' })).toBe('session-1');
    expect(unwrapString(42)).toBe('42');
  });

  test('toMillis reads a Date, a 64-bit big-endian buffer and a number', () => {
    expect(toMillis(new Date(1234))).toBe(1234);
    expect(toMillis(longBytes(1_700_000_000_000n))).toBe(1_700_000_000_000);
    expect(toMillis(99)).toBe(99);
  });
});

describe('outgoing message', () => {
  const stored = (overrides: Partial<StoredMessage> = {}): StoredMessage => ({
    sequenceNumber: 42,
    message: { message_id: 'm', body: 'hello', message_annotations: { 'x-opt-partition-key': 'p' } },
    messageId: 'm',
    sessionId: undefined,
    enqueuedAt: Date.UTC(2024, 0, 2, 3, 4, 5),
    availableAt: Date.UTC(2024, 0, 2, 3, 4, 5),
    expiresAt: 8.64e15,
    state: 'active',
    deliveries: 3,
    lock: undefined,
    ...overrides,
  });
  const onTheWire = (message: Record<string, unknown>) => decode(rhea.message.encode(message));

  test('carries the client message with the broker annotations and the delivery count so far', () => {
    const lockedUntil = Date.UTC(2024, 0, 2, 3, 5, 5);
    const decoded = onTheWire(outgoingMessage(stored(), 2, lockedUntil));
    expect(decoded.body).toBe('hello');
    expect(decoded.message_id).toBe('m');
    expect(decoded.delivery_count).toBe(2);
    const annotations = decoded.message_annotations as Record<string, unknown>;
    expect(annotations['x-opt-partition-key']).toBe('p');
    expect(annotations['x-opt-sequence-number']).toBe(42);
    expect(annotations['x-opt-enqueue-sequence-number']).toBe(42);
    expect((annotations['x-opt-enqueued-time'] as Date).getTime()).toBe(Date.UTC(2024, 0, 2, 3, 4, 5));
    expect((annotations['x-opt-locked-until'] as Date).getTime()).toBe(lockedUntil);
    expect(annotations['x-opt-message-state']).toBe(0);
    expect(annotations).not.toHaveProperty('x-opt-deadletter-source');
  });

  test('message state, missing lock and dead-letter source', () => {
    const deferred = onTheWire(outgoingMessage(stored({ state: 'deferred' }), 0, undefined)).message_annotations as Record<string, unknown>;
    expect(deferred['x-opt-message-state']).toBe(1);
    expect(deferred).not.toHaveProperty('x-opt-locked-until');
    const scheduled = onTheWire(outgoingMessage(stored({ state: 'scheduled', deadLetterSource: 'orders' }), 0, undefined))
      .message_annotations as Record<string, unknown>;
    expect(scheduled['x-opt-message-state']).toBe(2);
    expect(scheduled['x-opt-deadletter-source']).toBe('orders');
  });

  test('does not change the stored message', () => {
    const message = stored();
    outgoingMessage(message, 1, 123);
    expect(message.message).toEqual({ message_id: 'm', body: 'hello', message_annotations: { 'x-opt-partition-key': 'p' } });
  });
});
