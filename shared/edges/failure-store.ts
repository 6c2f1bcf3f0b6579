/**
 * Projection failures: change-feed documents the edge projection could not handle, kept where an operator can see
 * and replay them. They live in the `edges` container under a reserved partition (`~projection-failures`) that no
 * entity id can take (entity ids always hold two colons), so no extra container is needed; this store owns that
 * partition, {@link EdgeStore} the others.
 */
import type { Container } from '@azure/cosmos';
import { withoutSystemProperties } from '../model/documents';
import { CosmosStore, type CosmosStoreOptions, type StoreCallOptions } from '../platform/cosmos';
import { CosmosOperationError } from '../platform/errors';

export const FAILURES_PARTITION = '~projection-failures';

export interface ProjectionFailure {
  /** The failing document's id (or a generated one for documents without an id). */
  id: string;
  source: typeof FAILURES_PARTITION;
  kind: 'projection-failure';
  entityRef?: string;
  error: string;
  /** The change-feed position and version that failed. */
  lsn?: number;
  etag?: string;
  /** Set for documents that could not even be identified. */
  document?: unknown;
  failures: number;
  firstFailedAt: string;
  lastFailedAt: string;
}

export interface FailureRecord {
  id: string;
  entityRef?: string | undefined;
  error: string;
  lsn?: number | undefined;
  etag?: string | undefined;
  document?: unknown;
}

export class ProjectionFailureStore extends CosmosStore {
  constructor(container: Container, options: CosmosStoreOptions) {
    super(container, options);
  }

  /** Records (or counts again) the failure of one document. */
  async record(failure: FailureRecord, options: StoreCallOptions = {}): Promise<void> {
    const now = new Date().toISOString();
    try {
      const existing = await this.read(failure.id, options);
      const record: ProjectionFailure = {
        id: failure.id,
        source: FAILURES_PARTITION,
        kind: 'projection-failure',
        ...(failure.entityRef !== undefined && { entityRef: failure.entityRef }),
        error: failure.error.slice(0, 2000),
        ...(failure.lsn !== undefined && { lsn: failure.lsn }),
        ...(failure.etag !== undefined && { etag: failure.etag }),
        ...(failure.document !== undefined && { document: failure.document }),
        failures: (existing?.failures ?? 0) + 1,
        firstFailedAt: existing?.firstFailedAt ?? now,
        lastFailedAt: now,
      };
      await this.request('upsert', `record the projection failure of ${failure.id}`, options, (o) => this.container.items.upsert(record, o));
    } catch (error) {
      throw new CosmosOperationError(`Could not record the projection failure of ${failure.id}: ${(error as Error).message}`, (error as CosmosOperationError).statusCode, error);
    }
  }

  async list(max: number, options: StoreCallOptions = {}): Promise<ProjectionFailure[]> {
    const records = await this.queryAll<ProjectionFailure>(
      'list projection failures',
      { query: 'SELECT TOP @max * FROM c WHERE c.source = @source', parameters: [{ name: '@max', value: max }, { name: '@source', value: FAILURES_PARTITION }] },
      { ...options, partitionKey: FAILURES_PARTITION },
    );
    return records.map((record) => withoutSystemProperties(record));
  }

  async read(id: string, options: StoreCallOptions = {}): Promise<ProjectionFailure | undefined> {
    return this.readItem<ProjectionFailure>(id, FAILURES_PARTITION, options);
  }

  async remove(id: string, options: StoreCallOptions = {}): Promise<void> {
    try {
      await this.request('delete', `remove the projection failure of ${id}`, options, (o) => this.container.item(id, FAILURES_PARTITION).delete(o));
    } catch (error) {
      if ((error as CosmosOperationError).statusCode !== 404) throw error;
    }
  }
}
