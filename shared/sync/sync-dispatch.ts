/**
 * Hands a reconcile's entities to sync to the batches that fetch and write them. A run with few to sync writes them
 * after the streams, batch by batch; a run with many — at least `bulkMin`, an initial load or a re-stitched catalog —
 * is a bulk run, and from the moment it is known to be one each full group starts as soon as its entities are known,
 * while the catalog still streams in. Pure logic: the reconciler says what to run and how many run at once.
 */
import { chunk } from '../platform/collections';
import type { Logger } from '../platform/logger';

/** Runs at most so many of the functions it is given at once (p-limit's). */
export type Limit = <R>(fn: () => Promise<R>) => Promise<R>;

export interface SyncDispatchOptions<T> {
  /** At least this many entities to sync make the run a bulk one; 0 = never. */
  bulkMin: number;
  /** Fetches and writes one group. Its failure (an abort, a non-transient error) stops the dispatch. */
  run: (group: T[], bulk: boolean) => Promise<void>;
  /** How many groups run at once, for a bulk run or an ordinary one (asked once, when the first group starts). */
  limit: (bulk: boolean) => Limit;
  /** Entities per group, for a bulk run or an ordinary one. */
  groupSize: (bulk: boolean) => number;
  /** After each group: entities written so far, and entities handed over so far. */
  onWritten?: (done: number, total: number) => void;
  /** The first group that failed, once: the caller stops what feeds the dispatch. */
  onFailure?: (error: unknown) => void;
  logger?: Logger;
}

export class SyncDispatch<T> {
  private pending: T[] = [];
  private offered = 0;
  private written = 0;
  private bulk = false;
  private limit: Limit | undefined;
  private readonly running: Array<Promise<void>> = [];
  private failure: { error: unknown } | undefined;
  private stopped = false;
  /** Groups started but waiting for a place to run, and whoever waits for them to run. */
  private queued = 0;
  private roomWaiters: Array<() => void> = [];

  constructor(private readonly options: SyncDispatchOptions<T>) {}

  /** Whether this is a bulk run (known from the moment `bulkMin` entities have been handed over). */
  get isBulk(): boolean {
    return this.bulk;
  }

  /** Entities handed over so far. */
  get handedOver(): number {
    return this.offered;
  }

  /**
   * Resolves once at most one group waits for a place to run: what feeds the dispatch with entities read whole waits
   * for it, so that they are held a group or two ahead of the writes, not the catalog's worth.
   */
  whenRoom(): Promise<void> {
    if (this.queued <= 1 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Entities known to need a sync (each handed over once). In a bulk run, every full group starts now. */
  offer(items: readonly T[]): void {
    if (items.length === 0 || this.stopped) return;
    for (const item of items) this.pending.push(item);
    this.offered += items.length;
    if (!this.bulk && this.options.bulkMin > 0 && this.offered >= this.options.bulkMin) {
      this.bulk = true;
      this.options.logger?.info('Reconcile writes in bulk', { entitiesSoFar: this.offered });
    }
    if (!this.bulk) return;
    const size = this.options.groupSize(true);
    if (this.pending.length < size) return;
    const full = this.pending.length - (this.pending.length % size);
    for (const group of chunk(this.pending.slice(0, full), size)) this.start(group);
    this.pending = this.pending.slice(full);
  }

  /** The last of them: starts every group still to run and resolves when all have; throws the first group failure. */
  async finish(items: readonly T[]): Promise<{ entities: number; bulk: boolean }> {
    this.offer(items);
    if (!this.stopped) for (const group of chunk(this.pending, this.options.groupSize(this.bulk))) this.start(group);
    this.pending = [];
    await Promise.all(this.running);
    if (this.failure) throw this.failure.error;
    return { entities: this.offered, bulk: this.bulk };
  }

  /**
   * Stops: no group starts from now on, and those running finish (what they write is sound). Resolves when they have,
   * with the first group failure, if there was one.
   */
  async stop(): Promise<unknown> {
    this.stopped = true;
    this.wakeWaiters();
    await Promise.all(this.running);
    return this.failure?.error;
  }

  private start(group: T[]): void {
    this.limit ??= this.options.limit(this.bulk);
    const bulk = this.bulk;
    this.queued += 1;
    // A failure stops the dispatch inside the group's own turn, before the limit lets the next group run.
    const task = this.limit(async () => {
      this.queued -= 1;
      if (this.queued <= 1) this.wakeWaiters();
      if (this.stopped) return;
      try {
        await this.options.run(group, bulk);
      } catch (error) {
        this.fail(error);
        return;
      }
      this.written += group.length;
      this.options.onWritten?.(this.written, this.offered);
    });
    this.running.push(task);
  }

  private fail(error: unknown): void {
    if (this.failure) return;
    this.failure = { error };
    this.stopped = true;
    this.wakeWaiters();
    this.options.onFailure?.(error);
  }

  private wakeWaiters(): void {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
