/**
 * The `edges` container, owned by the edge projection: one document per relation of a source entity, partition key
 * `/source` (the source's document id). The graph reads it through {@link EdgeStore.edgesFrom}; the projection
 * writes it through {@link EdgeStore.apply}. (Projection failures share the container under a reserved partition,
 * owned by failure-store.ts.)
 */
import type { Container, JSONObject } from '@azure/cosmos';
import type { EdgeDocument } from '../model/documents';
import { CosmosStore, type CosmosStoreOptions, type StoreCallOptions } from '../platform/cosmos';
import type { EdgeDiff } from './derive';

type EdgeWrite = { kind: 'upsert'; edge: EdgeDocument } | { kind: 'delete'; id: string };

export class EdgeStore extends CosmosStore {
  constructor(container: Container, options: CosmosStoreOptions) {
    super(container, options);
  }

  /** Every edge of one source: a single-partition query. */
  async edgesOf(source: string, options: StoreCallOptions = {}): Promise<EdgeDocument[]> {
    return this.queryAll<EdgeDocument>(
      `query the edges of ${source}`,
      { query: 'SELECT * FROM c WHERE c.source = @source', parameters: [{ name: '@source', value: source }] },
      { ...options, partitionKey: source },
    );
  }

  /** The edges of any of `sources` whose type is one of `types`: one query over those partitions. */
  async edgesFrom(sources: readonly string[], types: readonly string[], options: StoreCallOptions = {}): Promise<EdgeDocument[]> {
    if (sources.length === 0) return [];
    const parameters = sources.map((value, i) => ({ name: `@s${i}`, value }));
    return this.queryAll<EdgeDocument>(
      'query edges',
      {
        query: `SELECT * FROM c WHERE c.source IN (${parameters.map((p) => p.name).join(', ')}) AND ARRAY_CONTAINS(@types, c.type)`,
        parameters: [...parameters, { name: '@types', value: [...types] }],
      },
      options,
    );
  }

  /**
   * Applies a diff in the source's partition as concurrent point writes (upserts and deletes). A delete that finds
   * nothing (404) counts as done, so redelivery is harmless. Throws the first failure that throttling retries did
   * not cure.
   */
  async apply(source: string, diff: EdgeDiff, options: StoreCallOptions = {}): Promise<void> {
    const writes: EdgeWrite[] = [
      ...diff.upserts.map((edge) => ({ kind: 'upsert' as const, edge })),
      ...diff.deletes.map((id) => ({ kind: 'delete' as const, id })),
    ];
    const outcomes = await this.writeAll(writes, (write, o) => this.write(source, write, o), { ...options, concurrency: 8 });
    const failed = outcomes.find((outcome) => outcome.error);
    if (failed?.error) throw failed.error;
  }

  private async write(source: string, write: EdgeWrite, options: StoreCallOptions): Promise<{ statusCode: number }> {
    if (write.kind === 'upsert') {
      return this.request('upsert', `upsert edge ${write.edge.id} of ${source}`, options, (o) => this.container.items.upsert(write.edge as unknown as JSONObject, o));
    }
    try {
      return await this.request('delete', `delete edge ${write.id} of ${source}`, options, (o) => this.container.item(write.id, source).delete(o));
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return { statusCode: 404 };
      throw error;
    }
  }
}
