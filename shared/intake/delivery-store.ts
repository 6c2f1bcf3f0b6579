/**
 * The webhook replay guard, shared by every instance: one document per accepted `webhook-id` in the
 * `webhook-deliveries` container, created before the events are enqueued. Creation is the check: Cosmos lets exactly
 * one create of an id succeed, so a replay answers the same `409` on any instance, after a restart, and when two
 * copies arrive at once. Each document carries a `ttl` a little over twice the timestamp tolerance; after that a
 * replay fails the timestamp check anyway, and Cosmos deletes the document.
 */
import type { Container } from '@azure/cosmos';
import { CosmosStore, type CosmosStoreOptions, type StoreCallOptions } from '../platform/cosmos';
import { CosmosOperationError, WebhookReplayError } from '../platform/errors';

export interface WebhookDelivery {
  /** The `webhook-id`. */
  id: string;
  acceptedAt: string;
  /** Seconds until Cosmos deletes the record. */
  ttl: number;
}

export interface ClaimOptions extends StoreCallOptions {
  /** How long the claim must outlive its acceptance; at least twice the timestamp tolerance. */
  ttlInSeconds: number;
}

export class WebhookDeliveryStore extends CosmosStore {
  constructor(container: Container, options: CosmosStoreOptions) {
    super(container, options);
  }

  /** Claims `webhookId`; throws {@link WebhookReplayError} when any instance already has. */
  async claim(webhookId: string, options: ClaimOptions): Promise<void> {
    const record: WebhookDelivery = { id: webhookId, acceptedAt: new Date().toISOString(), ttl: options.ttlInSeconds };
    try {
      await this.request('create', `record webhook delivery ${webhookId}`, options, (o) => this.container.items.create(record, o));
    } catch (error) {
      if (error instanceof CosmosOperationError && error.statusCode === 409) throw new WebhookReplayError(webhookId);
      throw error;
    }
  }

  /** The self-check's harmless call: this identity may create and delete here, not read; deleting no record shows it may delete. */
  override async probe(options: StoreCallOptions = {}): Promise<void> {
    await this.release(CosmosStore.PROBE_ID, options);
  }

  /** Gives a claim back (its events could not be enqueued), so the sender's retry is accepted. */
  async release(webhookId: string, options: StoreCallOptions = {}): Promise<void> {
    try {
      await this.request('delete', `release webhook delivery ${webhookId}`, options, (o) => this.container.item(webhookId, webhookId).delete(o));
    } catch (error) {
      if (error instanceof CosmosOperationError && error.statusCode === 404) return;
      throw error;
    }
  }
}
