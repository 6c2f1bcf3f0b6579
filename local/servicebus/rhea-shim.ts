/**
 * Typed views of the parts of `rhea` the local Service Bus broker uses. rhea's typings cover less than its
 * API (and type most of what they do cover as `any`); this file owns the narrower shapes the broker relies on —
 * an AMQP message as a plain record, the server-side sender and receiver links, and the message codec and
 * delivery outcomes — so that every other broker module can stay free of `any` and of ad-hoc casts to rhea.
 * It holds no state and no behaviour of its own.
 */
import rhea, { type Connection, type Container, type Delivery, type Sasl } from 'rhea';

/** An AMQP message as rhea encodes and decodes it: its sections and properties by rhea's field names. */
export type Message = Record<string, unknown>;

interface LinkBase {
  connection: Connection;
  set_source(fields: Record<string, unknown>): void;
  set_target(fields: Record<string, unknown>): void;
  local: { attach: Record<string, unknown> };
  remote: { attach: Record<string, unknown> };
  is_open(): boolean;
  is_closed(): boolean;
  open(): void;
  close(error?: { condition: string; description: string }): void;
}

/** The broker's end of a client's receiver: the broker sends messages (or management responses) on it. */
export interface Sender extends LinkBase {
  credit: number;
  sendable(): boolean;
  set_drained(drained: boolean): void;
  send(message: Message, tag?: Buffer): Delivery;
}

/** The broker's end of a client's sender: messages (or management / CBS requests) arrive on it. */
export interface Receiver extends LinkBase {
  add_credit(credit: number): void;
}

/** A container's server-side SASL mechanisms (rhea's typings declare `sasl_server_mechanisms` as `any`). */
export function serverSaslMechanisms(container: Container): ReturnType<Sasl['server_mechanisms']> {
  return container.sasl_server_mechanisms as ReturnType<Sasl['server_mechanisms']>;
}

export const outcomes = rhea.message as unknown as {
  accepted(): { described(): unknown };
  rejected(fields: { error: { condition: string; description: string } }): { described(): unknown };
  encode(message: Message): Buffer;
  decode(buffer: Buffer): Message;
};
