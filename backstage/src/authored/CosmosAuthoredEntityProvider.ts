/**
 * An entity provider for entities authored in Cosmos DB: it reads the `authored` container's change feed (pull model)
 * and applies what changed as **delta** mutations, within seconds; now and then (and after every start of the process)
 * it applies a **full** mutation of every live document, which catches anything missed and removes what vanished
 * without a trace on the feed (a hard delete, or a soft-deleted document whose TTL ran out while Backstage was down).
 *
 * The continuation up to which every change is in the catalog lives in the module's table (./store.ts), written only
 * after the catalog took the mutation: a restart, a crash or an outage of Backstage resumes there, and no change is
 * lost or applied twice by the feed. One run at a time across a scaled-out Backstage: the module schedules `run` as a
 * global task.
 */
import { ChangeFeedStartFrom, StatusCodes, type ChangeFeedPullModelIterator, type Container } from '@azure/cosmos';
import type { LoggerService } from '@backstage/backend-plugin-api';
import type { DeferredEntity, EntityProvider, EntityProviderConnection } from '@backstage/plugin-catalog-node';
import { metrics, type Counter, type Histogram } from '@opentelemetry/api';
import { decide, type AuthoredDocument, type Decision } from './documents';
import type { ProviderStateStore } from './store';

export const PROVIDER_NAME = 'cosmos-authored';

export interface CosmosAuthoredEntityProviderOptions {
  /** The `authored` container, reached with the Backstage backend's own (read-only) identity. */
  container: Container;
  state: ProviderStateStore;
  logger: LoggerService;
  /** `cosmosdb:<account host>/<database>/<container>` (see ./config.ts). */
  location: string;
  fullMutationIntervalInMs: number;
  pageSize: number;
  now?: () => number;
}

/** What one run did. */
export interface RunResult {
  /** Change-feed pages applied as delta mutations, and the documents in them. */
  delta: { pages: number; added: number; removed: number; skipped: number };
  /** Set when the run applied a full mutation. */
  full?: { entities: number; skipped: number };
}

/** A change-feed iterator and the continuation it has reached (and that is stored). */
interface FeedCursor {
  iterator: ChangeFeedPullModelIterator<AuthoredDocument>;
  token: string;
}

interface Instruments {
  changes: Counter;
  lag: Histogram;
}

export class CosmosAuthoredEntityProvider implements EntityProvider {
  private connection: EntityProviderConnection | undefined;
  /** The feed iterator of the last run, reused while the stored continuation is the one it reached. */
  private cursor: FeedCursor | undefined;
  /** A full mutation is due on the first run of every process: it may have been down while documents vanished. */
  private fullDueOnStart = true;
  private readonly instruments: Instruments;
  private readonly now: () => number;

  constructor(private readonly options: CosmosAuthoredEntityProviderOptions) {
    this.now = options.now ?? Date.now;
    const meter = metrics.getMeter('backstage-plugin-catalog-backend-module-cosmos-sync');
    this.instruments = {
      changes: meter.createCounter('catalog_cosmos_authored.changes', { description: 'Authored documents applied to the catalog, by mutation and outcome (add, remove, skip)' }),
      lag: meter.createHistogram('catalog_cosmos_authored.lag', { description: 'From a document being written to its delta mutation being applied', unit: 'ms' }),
    };
  }

  getProviderName(): string {
    return PROVIDER_NAME;
  }

  connect(connection: EntityProviderConnection): Promise<void> {
    this.connection = connection;
    return Promise.resolve();
  }

  /**
   * Applies every change on the feed since the stored continuation (page by page, each page one delta mutation, the
   * continuation stored after it), then a full mutation when one is due. The first run ever starts the feed at "now"
   * and applies a full mutation first.
   */
  async run(abortSignal?: AbortSignal): Promise<RunResult> {
    const connection = this.connection;
    const result: RunResult = { delta: { pages: 0, added: 0, removed: 0, skipped: 0 } };
    if (!connection) return result; // the catalog connects its providers once every module is up
    const { state } = this.options;
    const stored = await state.read();
    let cursor = this.cursor;
    if (stored.continuation === undefined) {
      // First run: everything there now comes in one full mutation; the feed is read from the moment before it.
      const iterator = this.feed(ChangeFeedStartFrom.Now());
      const { continuationToken } = await iterator.readNext();
      result.full = await this.applyFull(connection, abortSignal);
      stored.lastFullAt = this.now();
      await state.write({ continuation: continuationToken, lastFullAt: stored.lastFullAt });
      cursor = this.cursor = { iterator, token: continuationToken };
      this.fullDueOnStart = false;
    } else if (!cursor || cursor.token !== stored.continuation) {
      // Another instance (or an earlier process) moved the feed on: resume where the table says.
      cursor = this.cursor = { iterator: this.feed(ChangeFeedStartFrom.Continuation(stored.continuation)), token: stored.continuation };
    }
    try {
      await this.applyDeltas(connection, cursor, result, abortSignal);
    } catch (error) {
      // The iterator may have moved past the page that failed: the next run starts again from the stored continuation.
      this.cursor = undefined;
      throw error;
    }

    const fullDue = this.fullDueOnStart || stored.lastFullAt === undefined || this.now() - stored.lastFullAt >= this.options.fullMutationIntervalInMs;
    if (!result.full && fullDue && !abortSignal?.aborted) {
      result.full = await this.applyFull(connection, abortSignal);
      await state.write({ lastFullAt: this.now() });
      this.fullDueOnStart = false;
    }
    return result;
  }

  /** Each page of the feed from `cursor` on as one delta mutation, its continuation stored once the catalog took it. */
  private async applyDeltas(connection: EntityProviderConnection, cursor: FeedCursor, result: RunResult, abortSignal?: AbortSignal): Promise<void> {
    const { state } = this.options;
    while (!abortSignal?.aborted) {
      const page = await cursor.iterator.readNext();
      if (page.statusCode === StatusCodes.NotModified || page.result.length === 0) {
        if (page.continuationToken && page.continuationToken !== cursor.token) {
          await state.write({ continuation: page.continuationToken });
          cursor.token = page.continuationToken;
        }
        break;
      }
      const decisions = latestPerId(await Promise.all(page.result.map((doc) => decide(doc, this.options.location))));
      const added = decisions.filter((d): d is Extract<Decision, { type: 'add' }> => d.type === 'add');
      const removed = decisions.filter((d): d is Extract<Decision, { type: 'remove' }> => d.type === 'remove');
      await connection.applyMutation({
        type: 'delta',
        added: added.map((d) => this.deferred(d.entity)),
        removed: removed.map((d) => ({ entityRef: d.entityRef, locationKey: this.options.location })),
      });
      await state.write({ continuation: page.continuationToken });
      cursor.token = page.continuationToken;
      const skipped = this.reportSkips(decisions);
      const appliedAt = this.now();
      for (const doc of page.result) if (typeof doc._ts === 'number') this.instruments.lag.record(Math.max(0, appliedAt - doc._ts * 1000));
      this.count('delta', added.length, removed.length, skipped);
      result.delta.pages += 1;
      result.delta.added += added.length;
      result.delta.removed += removed.length;
      result.delta.skipped += skipped;
      this.options.logger.info(
        `Applied ${decisions.length} authored entity change(s) from Cosmos DB: ${added.length} added or updated, ${removed.length} removed, ${skipped} skipped`,
        { added: sample(added), removed: sample(removed) },
      );
    }
  }

  private feed(changeFeedStartFrom: ChangeFeedStartFrom): ChangeFeedPullModelIterator<AuthoredDocument> {
    return this.options.container.items.getChangeFeedIterator<AuthoredDocument>({ changeFeedStartFrom, maxItemCount: this.options.pageSize });
  }

  /** Every live document, as one full mutation: what the provider gave before and is not here now is removed. */
  private async applyFull(connection: EntityProviderConnection, abortSignal?: AbortSignal): Promise<{ entities: number; skipped: number }> {
    const decisions: Decision[] = [];
    const pages = this.options.container.items
      .query<AuthoredDocument>('SELECT * FROM c', { maxItemCount: this.options.pageSize, ...(abortSignal && { abortSignal }) })
      .getAsyncIterator();
    for await (const page of pages) decisions.push(...(await Promise.all(page.resources.map((doc) => decide(doc, this.options.location)))));
    const added = decisions.filter((d): d is Extract<Decision, { type: 'add' }> => d.type === 'add');
    await connection.applyMutation({ type: 'full', entities: added.map((d) => this.deferred(d.entity)) });
    const skipped = this.reportSkips(decisions);
    this.count('full', added.length, 0, skipped);
    this.options.logger.info(`Applied a full mutation of ${added.length} authored entities from Cosmos DB (${skipped} skipped)`);
    return { entities: added.length, skipped };
  }

  private deferred(entity: DeferredEntity['entity']): DeferredEntity {
    return { entity, locationKey: this.options.location };
  }

  private reportSkips(decisions: readonly Decision[]): number {
    const skips = decisions.filter((d): d is Extract<Decision, { type: 'skip' }> => d.type === 'skip');
    for (const skip of skips) this.options.logger.warn(`Skipped authored document ${skip.id}: ${skip.reason}`);
    return skips.length;
  }

  private count(mutation: 'delta' | 'full', added: number, removed: number, skipped: number): void {
    if (added) this.instruments.changes.add(added, { mutation, outcome: 'add' });
    if (removed) this.instruments.changes.add(removed, { mutation, outcome: 'remove' });
    if (skipped) this.instruments.changes.add(skipped, { mutation, outcome: 'skip' });
  }
}

/** A page of the feed holds each document's latest version once; keep the last decision per id all the same. */
function latestPerId(decisions: Decision[]): Decision[] {
  return [...new Map(decisions.map((d) => [d.id, d])).values()];
}

/** Up to ten refs, for the log. */
function sample(decisions: ReadonlyArray<{ entityRef: string }>): string {
  const refs = decisions.slice(0, 10).map((d) => d.entityRef);
  return decisions.length > 10 ? `${refs.join(', ')} and ${decisions.length - 10} more` : refs.join(', ');
}
