/**
 * Projection failures: change-feed documents the edge projection could not handle, kept where an operator can
 * see and replay them. They live in the `edges` container under a reserved partition (`~projection-failures`)
 * that no entity id can take (entity ids always hold two colons), so no extra container is needed.
 */
import type { Container } from '@azure/cosmos';
import { CosmosOperationError } from '../platform/errors';
import { statusOf } from '../platform/cosmos';
import { withoutSystemProperties } from '../model/documents';

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

export class ProjectionFailureStore {
  constructor(readonly container: Container) {}

  async record(failure: { id: string; entityRef?: string | undefined; error: string; lsn?: number | undefined; etag?: string | undefined; document?: unknown }): Promise<void> {
    const now = new Date().toISOString();
    try {
      const existing = await this.read(failure.id);
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
      await this.container.items.upsert(record);
    } catch (error) {
      throw new CosmosOperationError(`Could not record the projection failure of ${failure.id}: ${(error as Error).message}`, statusOf(error), error);
    }
  }

  async list(max: number): Promise<ProjectionFailure[]> {
    const { resources } = await this.container.items
      .query<ProjectionFailure>(
        { query: 'SELECT TOP @max * FROM c WHERE c.source = @source', parameters: [{ name: '@max', value: max }, { name: '@source', value: FAILURES_PARTITION }] },
        { partitionKey: FAILURES_PARTITION },
      )
      .fetchAll();
    return resources.map((record) => withoutSystemProperties(record));
  }

  async read(id: string): Promise<ProjectionFailure | undefined> {
    try {
      const { resource } = await this.container.item(id, FAILURES_PARTITION).read<ProjectionFailure>();
      return resource;
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.container.item(id, FAILURES_PARTITION).delete();
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
  }
}
