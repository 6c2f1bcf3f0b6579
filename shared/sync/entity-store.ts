/**
 * The `entities` container (the mirror), owned by the sync: every read and write of it goes through this store.
 * Documents are written with optimistic concurrency (`IfMatch` on the `_etag` that was read, create when absent).
 */
import type { EntityDocument, EntityIdentity, SystemProperties } from '../model/documents';
import { CosmosStore, type CosmosStoreOptions, type FeedLease, type StoreCallOptions, type WriteOutcome } from '../platform/cosmos';
import type { Container } from '@azure/cosmos';

/** What reconciliation needs of each mirror document. */
export interface MirrorIndexItem extends EntityIdentity {
  sourceEtag: string | null;
  deleted: boolean;
  _etag: string;
}

/** What the graph needs of an entity it reaches: its ref in the catalog's casing and its kind. */
export interface LiveEntitySummary {
  id: string;
  entityRef: string;
  kind: string;
}

const INDEX_FIELDS = 'c.id, c.entityRef, c.kind, c["namespace"], c.name, c.uid, c.sourceEtag, c.deleted, c._etag';

/** Items per page of {@link EntityStore.streamIndex}. */
export const INDEX_PAGE_SIZE = 5000;

const toIndexItem = (r: MirrorIndexItem): MirrorIndexItem => ({ ...r, uid: r.uid ?? null, sourceEtag: r.sourceEtag ?? null, deleted: r.deleted === true });

export type WriteOperation = { kind: 'create'; doc: EntityDocument } | { kind: 'replace'; doc: EntityDocument; ifMatch: string };

export type StoredEntityDocument = EntityDocument & SystemProperties;

export class EntityStore extends CosmosStore {
  constructor(container: Container, options: CosmosStoreOptions) {
    super(container, options);
  }

  /** Per lease of a processor of this container's change feed, the changes it has still to read (an estimate). */
  async feedBacklog(leases: readonly FeedLease[], options: StoreCallOptions = {}): Promise<number[]> {
    return this.changeFeedBacklog(leases, options);
  }

  /** The document (tombstones included) with its `_etag`, or undefined. */
  async read(id: string, options: StoreCallOptions = {}): Promise<StoredEntityDocument | undefined> {
    return this.readItem<EntityDocument>(id, id, options);
  }

  /** Creates the document; throws {@link CosmosOperationError} 409 when it already exists. Returns the new `_etag`. */
  async create(doc: EntityDocument, options: StoreCallOptions = {}): Promise<string> {
    return this.createDocument(doc, options);
  }

  /** Replaces the document if its `_etag` is still `ifMatch`; throws {@link CosmosOperationError} 412 otherwise. */
  async replace(doc: EntityDocument, ifMatch: string, options: StoreCallOptions = {}): Promise<string> {
    return this.replaceDocument(doc, ifMatch, options);
  }

  /**
   * Runs creates and conditional replaces — as concurrent point writes, or with `bulk` as batch requests of 100 (for
   * hundreds at once); one outcome per operation, in order.
   */
  async writeMany(operations: readonly WriteOperation[], options: StoreCallOptions & { concurrency?: number; bulk?: boolean } = {}): Promise<WriteOutcome[]> {
    if (options.bulk) {
      return this.bulkWriteAll(
        operations.map((operation) => (operation.kind === 'create' ? { kind: 'create', doc: operation.doc, partitionKey: operation.doc.id } : { kind: 'replace', doc: operation.doc, partitionKey: operation.doc.id, ifMatch: operation.ifMatch })),
        options,
      );
    }
    return this.writeAll(
      operations,
      async (operation, o) =>
        operation.kind === 'create'
          ? { statusCode: 201, etag: await this.create(operation.doc, o) }
          : { statusCode: 200, etag: await this.replace(operation.doc, operation.ifMatch, o) },
      options,
    );
  }

  /**
   * Streams the index of every document (tombstones included), a page at a time — {@link INDEX_PAGE_SIZE} items by
   * default: an item is a few hundred bytes, so a page stays far below the 4 MB a response may carry, and a large
   * mirror is read in a few requests.
   */
  async *streamIndex(options: StoreCallOptions & { pageSize?: number } = {}): AsyncGenerator<MirrorIndexItem[]> {
    const pages = this.queryPages<MirrorIndexItem>('query the mirror index', `SELECT ${INDEX_FIELDS} FROM c`, { pageSize: INDEX_PAGE_SIZE, ...options });
    for await (const page of pages) yield page.map(toIndexItem);
  }

  /** The index items of those of `ids` the mirror has (tombstones included). One query. */
  async indexOf(ids: readonly string[], options: StoreCallOptions = {}): Promise<MirrorIndexItem[]> {
    if (ids.length === 0) return [];
    const parameters = ids.map((value, i) => ({ name: `@i${i}`, value }));
    const items = await this.queryAll<MirrorIndexItem>(
      'index entities',
      {
        query: `SELECT ${INDEX_FIELDS} FROM c WHERE c.id IN (${parameters.map((p) => p.name).join(', ')})`,
        parameters,
      },
      options,
    );
    return items.map(toIndexItem);
  }

  /** Which of `ids` are live (not tombstoned) in the mirror, with their refs and kinds. One query. */
  async findLive(ids: readonly string[], options: StoreCallOptions = {}): Promise<LiveEntitySummary[]> {
    if (ids.length === 0) return [];
    const parameters = ids.map((value, i) => ({ name: `@i${i}`, value }));
    return this.queryAll<LiveEntitySummary>(
      'look up entities',
      {
        query: `SELECT c.id, c.entityRef, c.kind FROM c WHERE c.id IN (${parameters.map((p) => p.name).join(', ')}) AND NOT IS_DEFINED(c.deleted)`,
        parameters,
      },
      options,
    );
  }
}
