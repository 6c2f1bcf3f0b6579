/**
 * The `history` container (partition key `/entityId`), owned by the history recorder and read by the history API:
 * every read and write of it goes through this store. One entity's history is one partition.
 */
import { ChangeFeedStartFrom, ErrorResponse, StatusCodes, type Container } from '@azure/cosmos';
import { CosmosOperationError } from '../platform/errors';
import { abortOnly } from '../platform/options';
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
        query: 'SELECT TOP 1 c.id, c.operation, c.uid, c.syncHash, c.entity, c.publication, c.syncedAt FROM c WHERE c.entityId = @entityId AND c.syncedAt < @syncedAt ORDER BY c.syncedAt DESC',
        parameters: [
          { name: '@entityId', value: entityId },
          { name: '@syncedAt', value: syncedAt },
        ],
      },
      { ...options, partitionKey: entityId },
    );
    return previous;
  }

  /**
   * Records many at once as batch requests (for hundreds): per record,
   * `true` when recorded, `false` when a record of that version was already there; a failure that did not heal in the
   * store's retry rounds is its {@link CosmosOperationError}.
   */
  async addMany(records: readonly HistoryRecord[], options: StoreCallOptions = {}): Promise<Array<boolean | CosmosOperationError>> {
    const outcomes = await this.bulkWriteAll(records.map((record) => ({ kind: 'create', doc: record, partitionKey: record.entityId })), options);
    return outcomes.map((outcome) => (outcome.statusCode >= 200 && outcome.statusCode < 300 ? true : outcome.statusCode === 409 ? false : (outcome.error ?? new CosmosOperationError('no answer', undefined))));
  }

  /** Whether the record `id` of `entityId` is there (a point read). */
  async has(entityId: string, id: string, options: StoreCallOptions = {}): Promise<boolean> {
    return (await this.readItem<HistoryRecord>(id, entityId, options)) !== undefined;
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

  /**
   * One page of `entityId`'s records, newest first, from `since` on (inclusive) when given; `continuation` is the
   * previous page's (Cosmos DB's own token, opaque to callers). {@link CosmosOperationError} 400 for a token Cosmos
   * does not accept.
   */
  async page(
    entityId: string,
    query: { since?: string; pageSize: number; continuation?: string },
    options: StoreCallOptions = {},
  ): Promise<{ records: HistoryRecord[]; continuation?: string }> {
    const iterator = this.container.items.query<HistoryRecord>(
      {
        query: `SELECT * FROM c WHERE c.entityId = @entityId${query.since ? ' AND c.syncedAt >= @since' : ''} ORDER BY c.syncedAt DESC`,
        parameters: [
          { name: '@entityId', value: entityId },
          ...(query.since ? [{ name: '@since', value: query.since }] : []),
        ],
      },
      { partitionKey: entityId, maxItemCount: query.pageSize, ...abortOnly(options), ...(query.continuation && { continuationToken: query.continuation }) },
    );
    const page = await this.request('query', `a page of the history of ${entityId}`, options, () => iterator.fetchNext());
    return { records: page.resources, ...(page.continuationToken && { continuation: page.continuationToken }) };
  }

  /**
   * One page of the change log: the container's change feed (every record, as records are created and never
   * changed), from `continuation` (the previous page's), else from `since`, else from the beginning. Cosmos DB orders
   * it within a partition key range; the continuation resumes every range after the last record it returned. Always
   * answers a continuation, also with no records (nothing new yet: ask again with it). {@link CosmosOperationError}
   * 400 for a token Cosmos DB does not accept.
   */
  async changes(
    query: { continuation?: string; since?: string; pageSize: number },
    options: StoreCallOptions = {},
  ): Promise<{ records: HistoryRecord[]; continuation: string }> {
    const iterator = this.container.items.getChangeFeedIterator<HistoryRecord>({
      maxItemCount: query.pageSize,
      changeFeedStartFrom: query.continuation
        ? ChangeFeedStartFrom.Continuation(query.continuation)
        : query.since
          ? ChangeFeedStartFrom.Time(new Date(query.since))
          : ChangeFeedStartFrom.Beginning(),
    });
    const page = await this.request('changeFeed', 'a page of the change log', options, async () => {
      try {
        return await iterator.readNext();
      } catch (error) {
        // The SDK refuses a token that is not one of its own (or is another container's) before it sends anything.
        if (query.continuation && error instanceof ErrorResponse && error.code === undefined) {
          throw new CosmosOperationError(`not a change feed continuation of this container: ${error.message}`, StatusCodes.BadRequest, error);
        }
        throw error;
      }
    });
    return { records: page.result, continuation: page.continuationToken };
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
