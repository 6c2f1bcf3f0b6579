/**
 * The `$management` operations of the local Service Bus broker, as functions over an entity's state: peek,
 * renew-lock, schedule-message, cancel-scheduled-message, receive-by-sequence-number (deferred messages),
 * update-disposition, renew-session-lock and get/set-session-state. This file owns the request/response shape
 * of those operations (operation name in the application properties, a map body, a status code and
 * description in the response, an error condition on failure); it does not know about links — the link layer
 * hands it a decoded request and a function that sends the response on the request's reply link.
 */
import { randomUUID } from 'node:crypto';
import rhea from 'rhea';
import { longs, outgoingMessage, stringOrUndefined, toMillis, unwrapValue, uuidToBytes, uuids } from './codec';
import { mergeApplicationProperties, type Entity } from './queue-state';
import { outcomes, type Message } from './rhea-shim';

type Reply = (properties: Record<string, unknown>, body?: unknown) => void;

/** Runs a `$management` request against `entity` and answers it through `reply`, failures included. */
export function onManagementRequest(entity: Entity, request: Message, reply: Reply): void {
  const body = (request.body ?? {}) as Record<string, unknown>;
  try {
    const operation = stringOrUndefined((request.application_properties as Record<string, unknown> | undefined)?.operation) ?? '';
    const [status, responseBody] = manage(entity, operation, body);
    reply({ 'status-code': status, statusCode: status, 'status-description': status === 204 ? 'No Content' : 'OK' }, responseBody);
  } catch (error) {
    const e = error as { condition?: string; status?: number; message: string };
    reply({
      'status-code': e.status ?? 500,
      statusCode: e.status ?? 500,
      'status-description': e.message,
      'error-condition': e.condition ?? 'amqp:internal-error',
    });
  }
}

function manage(entity: Entity, operation: string, body: Record<string, unknown>): [number, unknown] {
  const now = Date.now();
  switch (operation) {
    case 'com.microsoft:peek-message': {
      const from = Number(unwrapValue(body['from-sequence-number']) ?? 1);
      const count = Number(unwrapValue(body['message-count']) ?? 1);
      const sessionId = stringOrUndefined(unwrapValue(body['session-id']));
      entity.expireMessages(now);
      const found = [...entity.messages.values()]
        .filter((m) => m.sequenceNumber >= from && (sessionId === undefined || m.sessionId === sessionId))
        .slice(0, count);
      if (found.length === 0) return [204, undefined];
      return [200, { messages: found.map((m) => ({ message: outcomes.encode(outgoingMessage(m, m.deliveries, m.lock?.until)) })) }];
    }
    case 'com.microsoft:renew-lock': {
      const expirations = uuids(body['lock-tokens']).map((token) => {
        const message = entity.locks.get(token);
        if (!message?.lock) throw managementError(410, 'com.microsoft:message-lock-lost', 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.');
        const until = Date.now() + entity.options.lockDurationInMs;
        clearTimeout(message.lock.timer);
        message.lock.until = until;
        message.lock.timer = setTimeout(() => entity.lockExpired(message), entity.options.lockDurationInMs);
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
        const scheduled = unwrapValue(((message.message_annotations ?? {}) as Record<string, unknown>)['x-opt-scheduled-enqueue-time']);
        const problem = entity.validateIncoming(message);
        if (problem) throw managementError(400, problem.condition, problem.description);
        const sequenceNumber = entity.enqueue(message, scheduled !== undefined ? toMillis(scheduled) : now) ?? 0;
        sequenceNumbers.push(rhea.types.wrap_long(sequenceNumber));
      }
      entity.pump();
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
        message.lock = { token, until, link: undefined, delivery: undefined, timer: setTimeout(() => entity.deferredLockExpired(message), entity.options.lockDurationInMs) };
        message.lock.timer.unref();
        entity.locks.set(token, message);
        return { 'lock-token': rhea.types.wrap_uuid(uuidToBytes(token)), message: outcomes.encode(outgoingMessage(message, previousDeliveries, until)) };
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
        if (status === 'completed') entity.complete(message);
        else if (status === 'suspended') entity.moveToDeadLetter(message, reason, description, properties);
        else if (status === 'defered' || status === 'deferred') entity.unlock(message, { countAsFailure: false, deferred: true });
        else entity.unlock(message, { countAsFailure: true, deferred: message.state === 'deferred' });
      }
      entity.pump();
      return [200, {}];
    }
    case 'com.microsoft:renew-session-lock': {
      const sessionId = String(unwrapValue(body['session-id']));
      const lock = entity.sessionLocks.get(sessionId);
      if (!lock || lock.until <= now) throw managementError(410, 'com.microsoft:session-lock-lost', `The session lock for '${sessionId}' has expired`);
      clearTimeout(lock.timer);
      lock.until = now + entity.options.lockDurationInMs;
      lock.timer = setTimeout(() => entity.sessionLockExpired(sessionId, lock), entity.options.lockDurationInMs);
      lock.timer.unref();
      for (const message of entity.locks.values()) {
        if (message.sessionId === sessionId && message.lock) {
          clearTimeout(message.lock.timer);
          message.lock.until = lock.until;
          message.lock.timer = setTimeout(() => entity.lockExpired(message), entity.options.lockDurationInMs);
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

function managementError(status: number, condition: string, message: string): Error & { status: number; condition: string } {
  return Object.assign(new Error(message), { status, condition });
}
