/**
 * AMQP codec helpers of the local Service Bus broker: pure functions from wire values to broker values and
 * back, with no broker state. They own the Service Bus specific encodings the SDK expects — batch messages
 * (message format 0x80013700), lock tokens carried as 16-byte delivery tags in .NET GUID byte order, times in
 * .NET ticks, the broker annotations on an outgoing message — and the unwrapping of the longs, uuids and
 * typed values that arrive in `$management` request bodies.
 */
import { randomUUID } from 'node:crypto';
import rhea from 'rhea';
import { outcomes, type Message } from './rhea-shim';
import type { StoredMessage } from './queue-state';

/** The message format of a batch: one AMQP message whose data sections are each an encoded message. */
export const BATCH_FORMAT = 0x80013700;

export function decodeBatch(raw: Buffer): Message[] {
  const body = outcomes.decode(raw).body as { content?: unknown; multiple?: boolean } | undefined;
  const content = body?.content;
  const sections = body?.multiple ? (content as Buffer[]) : [content as Buffer];
  return sections.map((section) => outcomes.decode(Buffer.from(section)));
}

/** The message as it goes out: the client's message plus the broker's annotations. */
export function outgoingMessage(message: StoredMessage, previousDeliveries: number, lockedUntil: number | undefined): Message {
  const annotations: Record<string, unknown> = {
    ...((message.message.message_annotations ?? {}) as Record<string, unknown>),
    'x-opt-sequence-number': rhea.types.wrap_long(message.sequenceNumber),
    'x-opt-enqueue-sequence-number': rhea.types.wrap_long(message.sequenceNumber),
    'x-opt-enqueued-time': rhea.types.wrap_timestamp(message.enqueuedAt),
    'x-opt-message-state': rhea.types.wrap_int(message.state === 'active' ? 0 : message.state === 'deferred' ? 1 : 2),
  };
  if (lockedUntil !== undefined) annotations['x-opt-locked-until'] = rhea.types.wrap_timestamp(lockedUntil);
  if (message.deadLetterSource) annotations['x-opt-deadletter-source'] = message.deadLetterSource;
  return {
    ...message.message,
    delivery_count: previousDeliveries,
    message_annotations: annotations,
  };
}

export function unwrapValue(value: unknown): unknown {
  if (value && typeof value === 'object' && 'typecode' in value && 'value' in value) {
    return value.value;
  }
  return value;
}

export function unwrapString(value: unknown): string | undefined {
  return stringOrUndefined(unwrapValue(value));
}

/**
 * A decoded AMQP value that stands for text (a session id, a dead-letter reason): null and undefined are absent,
 * strings are themselves, numbers and booleans their string form, binary its UTF-8 text. A list, a map or any other
 * composite is not text: a TypeError (the broker answers it as an error, or drops the connection).
 */
export function stringOrUndefined(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(value);
  }
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  throw new TypeError(`expected a string, got ${Array.isArray(value) ? 'a list' : value instanceof Date ? 'a timestamp' : `a ${typeof value}`}`);
}

export function toMillis(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  if (Buffer.isBuffer(value)) return Number(value.readBigInt64BE(0));
  return Number(value);
}

export function longs(value: unknown): number[] {
  const raw = unwrapValue(value);
  const list: unknown[] = Array.isArray(raw) ? raw : [];
  return list.map((item) => {
    const v = unwrapValue(item);
    if (Buffer.isBuffer(v)) return Number(v.readBigInt64BE(0));
    return Number(v);
  });
}

export function uuids(value: unknown): string[] {
  const raw = unwrapValue(value);
  const list: unknown[] = Array.isArray(raw) ? raw : [];
  return list.map((item) => {
    const v = unwrapValue(item);
    return Buffer.isBuffer(v) ? bytesToUuid(v) : String(v);
  });
}

export function uuidToBytes(uuid: string): Buffer {
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

export function lockTokenToTag(token: string): Buffer {
  return dotNetOrder(uuidToBytes(token));
}

export function tagToLockToken(tag: Buffer): string {
  return bytesToUuid(dotNetOrder(Buffer.from(tag)));
}

export function randomTag(): Buffer {
  return lockTokenToTag(randomUUID());
}

export function longBytes(value: bigint): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigInt64BE(value);
  return buffer;
}

/** .NET ticks (100 ns since 0001-01-01), how Service Bus reports `com.microsoft:locked-until-utc`. */
export function toDotNetTicks(ms: number): bigint {
  return BigInt(ms) * 10_000n + 621_355_968_000_000_000n;
}
