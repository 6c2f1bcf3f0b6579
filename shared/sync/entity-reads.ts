/**
 * The sync's reads of single entities, coalesced: while a read is on its way to Backstage, the reads asked for in the
 * meantime wait and go together as one `entities/by-refs` request (up to `maxBatchSize` refs) when a slot frees.
 *
 * A change that touches the whole catalog (a re-stitch after an upgrade, a renamed owner) arrives as one event per
 * entity, each in its own session; read one by one, that is one `by-name` request per entity, against a Backstage
 * that is busy with the same storm. Coalesced, the concurrent sessions share requests: at most `maxConcurrentReads`
 * are in flight, each carrying every ref that was waiting. Nothing else changes for an ordinary change: alone, a read
 * is sent at once (on the next turn of the event loop) and costs one request, as before; each entity's messages are
 * still processed one at a time, in order, in their session. A read always starts after it was asked for, so what it
 * answers is never older than the event that asked (the sync stays level-triggered).
 *
 * Failures stay the entity's own: when Backstage rejects a batch (4xx), its refs are read again one by one, so only
 * the entity whose ref was refused is dead-lettered. A transient failure (after the reader's own retries) fails every
 * read of the batch, and each message schedules its retry as before. A caller's abort signal ends its own wait only;
 * the batch goes on for the others.
 */
import DataLoader from 'dataloader';
import type { Entity } from '@backstage/catalog-model';
import { BackstageRequestError, OperationAbortedError } from '../platform/errors';
import type { Metrics } from '../platform/metrics';
import type { CallOptions, CatalogReader } from './catalog-reader';

/** Where the sync reads one entity from (the catalog reader itself, or {@link CoalescedEntityReads}). */
export interface EntityReads {
  getEntityByRef(ref: string, options?: CallOptions): Promise<Entity | undefined>;
}

export interface CoalescedEntityReadsOptions {
  /** Requests to Backstage in flight at once; reads asked for meanwhile wait and go together. Default 2. */
  maxConcurrentReads?: number;
  /** Refs per `by-refs` request. Default 100. */
  maxBatchSize?: number;
  metrics?: Metrics;
}

export class CoalescedEntityReads implements EntityReads {
  private readonly loader: DataLoader<string, Entity | undefined>;
  private readonly maxConcurrentReads: number;
  private readonly waiting: Array<() => void> = [];
  private inFlight = 0;
  /** Batches handed to the event loop, not yet sent. */
  constructor(
    private readonly catalog: Pick<CatalogReader, 'getEntitiesByRefs' | 'getEntityByRef'>,
    private readonly options: CoalescedEntityReadsOptions = {},
  ) {
    this.maxConcurrentReads = options.maxConcurrentReads ?? 2;
    this.loader = new DataLoader((refs) => this.readBatch(refs), {
      // Every read goes to Backstage: level-triggered, nothing is remembered between reads.
      cache: false,
      maxBatchSize: options.maxBatchSize ?? 100,
      batchScheduleFn: (dispatch) => {
        this.waiting.push(dispatch);
        this.pump();
      },
    });
  }

  async getEntityByRef(ref: string, options: CallOptions = {}): Promise<Entity | undefined> {
    const signal = options.abortSignal;
    if (!signal) return this.loader.load(ref);
    if (signal.aborted) throw new OperationAbortedError(`reading ${ref} from Backstage aborted`, signal.reason);
    let onAbort: (() => void) | undefined;
    try {
      return await Promise.race([
        this.loader.load(ref),
        new Promise<never>((_, reject) => {
          onAbort = () => reject(new OperationAbortedError(`reading ${ref} from Backstage aborted`, signal.reason));
          signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  /** Sends the batches that wait, while fewer than `maxConcurrentReads` are in flight (each on a later turn, to gather). */
  private pump(): void {
    while (this.inFlight + this.pendingDispatches < this.maxConcurrentReads && this.waiting.length > 0) {
      const dispatch = this.waiting.shift()!;
      this.pendingDispatches += 1;
      setImmediate(() => {
        this.pendingDispatches -= 1;
        dispatch();
      });
    }
  }

  private pendingDispatches = 0;

  private async readBatch(refs: readonly string[]): Promise<Array<Entity | undefined | Error>> {
    this.inFlight += 1;
    try {
      this.options.metrics?.record('sync.read_batch_size', refs.length);
      if (refs.length === 1) return [await this.catalog.getEntityByRef(refs[0]!).catch((error: unknown) => toError(error))];
      try {
        return await this.catalog.getEntitiesByRefs(refs);
      } catch (error) {
        // One ref Backstage refuses must not fail the others: find it by reading each alone.
        if (!(error instanceof BackstageRequestError)) return refs.map(() => toError(error));
        return Promise.all(refs.map((ref) => this.catalog.getEntityByRef(ref).catch((e: unknown) => toError(e))));
      }
    } finally {
      this.inFlight -= 1;
      this.pump();
    }
  }
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
