/**
 * The `authored` container, owned by the authoring API: every read and write of it in this app goes through this store.
 * The Backstage entity provider reads it with its own read-only identity; nothing here reads `entities` or writes
 * back, so there is no echo between the two directions.
 */
import type { Container } from '@azure/cosmos';
import type { AuthoredDocument, SystemProperties } from '../model/documents';
import { CosmosStore, type CosmosStoreOptions, type StoreCallOptions } from '../platform/cosmos';

export type StoredAuthoredDocument = AuthoredDocument & SystemProperties;

export class AuthoredStore extends CosmosStore {
  constructor(container: Container, options: CosmosStoreOptions) {
    super(container, options);
  }

  /** The document (soft-deleted ones included) with its `_etag`, or undefined. */
  async read(id: string, options: StoreCallOptions = {}): Promise<StoredAuthoredDocument | undefined> {
    return this.readItem<AuthoredDocument>(id, id, options);
  }

  /** Creates the document; {@link CosmosOperationError} 409 when it exists. Returns the new `_etag`. */
  async create(doc: AuthoredDocument, options: StoreCallOptions = {}): Promise<string> {
    return this.createDocument(doc, options);
  }

  /** Replaces the document if its `_etag` is still `ifMatch`; {@link CosmosOperationError} 412 otherwise. */
  async replace(doc: AuthoredDocument, ifMatch: string, options: StoreCallOptions = {}): Promise<string> {
    return this.replaceDocument(doc, ifMatch, options);
  }
}
