/**
 * The `leases` container, read-only in code: the Functions host's change-feed processors (the `projectEdges` and
 * `recordHistory` triggers) own and write it; the backlog monitor reads where each lease has got to.
 *
 * A lease is the host's document: `LeaseToken` (a partition-key-range id, or the range of an EPK-range lease),
 * `FeedRange` (`{ Range: { min, max } }`, EPK-range leases only),
 * `ContinuationToken` (the range's ETag after the last handled change), `Owner`, `timestamp`. The lease container
 * also holds the processors' `.info` and `.lock` documents, which have no `LeaseToken`.
 */
import type { Container } from '@azure/cosmos';
import { CosmosStore, type CosmosStoreOptions, type FeedLease, type StoreCallOptions } from '../platform/cosmos';

export interface ProcessorLease extends FeedLease {
  leaseToken: string;
  owner: string | null;
  /** When the lease was last written (a checkpoint or a renewal), ISO 8601. */
  updatedAt: string | undefined;
}

interface LeaseDocument {
  id: string;
  LeaseToken: string;
  FeedRange?: { Range?: { min?: unknown; max?: unknown }; EffectiveRange?: { min?: unknown; max?: unknown } };
  ContinuationToken?: string | null;
  Owner?: string | null;
  timestamp?: string;
  _ts?: number;
}

export class LeaseStore extends CosmosStore {
  constructor(container: Container, options: CosmosStoreOptions) {
    super(container, options);
  }

  /** The leases of the processor whose lease prefix is `prefix` (the trigger's `leaseContainerPrefix`). */
  async leases(prefix: string, options: StoreCallOptions = {}): Promise<ProcessorLease[]> {
    const documents = await this.queryAll<LeaseDocument>(
      `read the leases of ${prefix}`,
      {
        query: 'SELECT c.id, c.LeaseToken, c.FeedRange, c.ContinuationToken, c.Owner, c.timestamp, c._ts FROM c WHERE STARTSWITH(c.id, @prefix) AND IS_DEFINED(c.LeaseToken)',
        parameters: [{ name: '@prefix', value: prefix }],
      },
      options,
    );
    return documents.map(toLease).sort((a, b) => a.leaseToken.localeCompare(b.leaseToken));
  }
}

function toLease(doc: LeaseDocument): ProcessorLease {
  const range = doc.FeedRange?.Range ?? doc.FeedRange?.EffectiveRange;
  const updatedAt = doc.timestamp ?? (doc._ts !== undefined ? new Date(doc._ts * 1000).toISOString() : undefined);
  return {
    id: doc.id,
    leaseToken: doc.LeaseToken,
    ...(typeof range?.min === 'string' && typeof range.max === 'string' ? { range: { min: range.min, max: range.max } } : { partitionKeyRangeId: doc.LeaseToken }),
    continuationToken: doc.ContinuationToken ?? null,
    owner: doc.Owner ?? null,
    updatedAt,
  };
}
