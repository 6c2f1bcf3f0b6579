/**
 * The `history` container (partition key `/entityId`), owned by the history recorder and read by the history API:
 * every read and write of it goes through this store. One entity's history is one partition.
 */
import type { Container } from '@azure/cosmos';
import { CosmosOperationError } from '../platform/errors';
import { CosmosStore, type CosmosStoreOptions, type StoreCallOptions } from '../platform/cosmos';
import type { HistoryRecord, PreviousRecord } from './record';

export class HistoryStore extends CosmosStore {
  constructor(container: Container, options: CosmosStoreOptions) {
    super(container, options);
  }

  /** The latest record of `entityId` written before `syncedAt` (what a new version is built against), or undefined. */
  async previousOf(entityId: string, syncedAt: string, options: StoreCallOptions = {}): Promise<PreviousRecord | undefined> {
    const [previous] = await this.queryAll<PreviousRecord>(
      `the history of ${entityId} before ${syncedAt}`,
      {
        query: 'SELECT TOP 1 c.id, c.operation, c.uid, c.syncHash, c.entity, c.syncedAt FROM c WHERE c.entityId = @entityId AND c.syncedAt < @syncedAt ORDER BY c.syncedAt DESC',
        parameters: [
          { name: '@entityId', value: entityId },
          { name: '@syncedAt', value: syncedAt },
        ],
      },
      { ...options, partitionKey: entityId },
    );
    return previous;
  }

  /** Records `record`; `false` when a record of that version is already there (a replay). */
  async add(record: HistoryRecord, options: StoreCallOptions = {}): Promise<boolean> {
    try {
      await this.createDocument(record, options);
      return true;
    } catch (error) {
      if (error instanceof CosmosOperationError && error.statusCode === 409) return false;
      throw error;
    }
  }

  /** Every record of `entityId`, oldest first (tests, the CLI). */
  async all(entityId: string, options: StoreCallOptions = {}): Promise<HistoryRecord[]> {
    return this.queryAll<HistoryRecord>(
      `the history of ${entityId}`,
      { query: 'SELECT * FROM c WHERE c.entityId = @entityId ORDER BY c.syncedAt ASC', parameters: [{ name: '@entityId', value: entityId }] },
      { ...options, partitionKey: entityId },
    );
  }
}
