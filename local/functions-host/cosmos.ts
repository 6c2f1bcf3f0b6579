/**
 * Runs a Cosmos DB trigger the way the Functions host does for `app.cosmosDB(...)`: reads the monitored container's
 * change feed (latest version) in batches of `maxItemsPerInvocation`, calls the function, and checkpoints the
 * continuation in the leases container after each handled batch. A failed invocation is retried with the function's
 * exponential-backoff retry policy; when the retries are spent the batch is skipped and the checkpoint moves on, as
 * the host does — which is why the projection records its own failures.
 *
 * Leases are documents in the format of the host's change-feed processor (one per feed range, the range's ETag as
 * continuation), so the app's lag estimator reads the same thing here as in Azure. A development tool: one instance
 * owns every lease; the real host balances them across instances.
 */
import { randomUUID } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { pause } from './pause';
import { ChangeFeedStartFrom, type Container } from '@azure/cosmos';
import type { CompositeContinuation } from '../../shared/platform/cosmos';

export interface ChangeFeedTriggerOptions {
  functionName: string;
  monitored: Container;
  leases: Container;
  leaseContainerPrefix?: string;
  maxItemsPerInvocation?: number;
  feedPollDelayInMs?: number;
  startFromBeginning?: boolean;
  retry?: { maxRetryCount: number; minimumIntervalInMs: number; maximumIntervalInMs: number };
  handler: (documents: unknown[], context: InvocationContext) => Promise<unknown>;
  logHandler?: (level: string, ...args: unknown[]) => void;
  onError?: (error: unknown) => void;
}

export interface ChangeFeedTrigger {
  /** Batches handled (successfully or given up on). */
  readonly batches: number;
  /** Documents delivered to the function so far. */
  readonly documents: number;
  /** Whether the last read found nothing new. */
  readonly idle: boolean;
  /** Stops reading; a batch being handled may finish within `drainTimeoutInMs` (default 30 s), else it is left behind. */
  stop(options?: { drainTimeoutInMs?: number }): Promise<void>;
}

/**
 * A lease document as the Functions host's change-feed processor writes it (EPK-range leases of the Cosmos DB .NET
 * SDK): one per feed range, its continuation the range's ETag (`"<lsn>"`). The app's lag estimator reads these.
 */
interface Lease {
  id: string;
  version: 1;
  LeaseToken: string;
  FeedRange: { Range: { min: string; max: string } };
  ContinuationToken: string | null;
  Owner: string;
  timestamp: string;
  properties: Record<string, string>;
}

export function startChangeFeedTrigger(options: ChangeFeedTriggerOptions): ChangeFeedTrigger {
  const controller = new AbortController();
  const state = { batches: 0, documents: 0, idle: false };
  const leasePrefix = `${options.leaseContainerPrefix ?? ''}${options.monitored.database.id}.${options.monitored.id}..`;
  const owner = randomUUID();
  const pollDelay = options.feedPollDelayInMs ?? 5_000;
  const retry = options.retry ?? { maxRetryCount: 0, minimumIntervalInMs: 0, maximumIntervalInMs: 0 };

  /** Resumes from the leases (one per range), like the host. */
  async function startFrom() {
    const { resources: leases } = await options.leases.items
      .query<Lease>({ query: 'SELECT * FROM c WHERE STARTSWITH(c.id, @prefix)', parameters: [{ name: '@prefix', value: leasePrefix }] })
      .fetchAll()
      .catch(() => ({ resources: [] as Lease[] }));
    const started = leases.filter((lease) => lease.ContinuationToken);
    if (started.length > 0) {
      const rid = (await options.monitored.read()).resource!._rid;
      const continuation: CompositeContinuation = {
        rid,
        Continuation: leases.map((lease) => ({
          minInclusive: lease.FeedRange.Range.min,
          maxExclusive: lease.FeedRange.Range.max,
          ...(lease.ContinuationToken && { continuationToken: lease.ContinuationToken }),
        })),
      };
      return ChangeFeedStartFrom.Continuation(JSON.stringify(continuation));
    }
    // A processor that starts claims one lease per range at once (no continuation yet), as the host's does.
    if (leases.length === 0) {
      const ranges = await options.monitored.getFeedRanges();
      await Promise.all(ranges.map((range) => writeLease({ minInclusive: range.minInclusive, maxExclusive: range.maxExclusive })));
    }
    return options.startFromBeginning ? ChangeFeedStartFrom.Beginning() : ChangeFeedStartFrom.Now();
  }

  /** One lease per feed range of the iterator's continuation. */
  async function checkpoint(continuationToken: string): Promise<void> {
    const composite = JSON.parse(continuationToken) as CompositeContinuation;
    for (const range of composite.Continuation) await writeLease(range);
  }

  async function writeLease(range: CompositeContinuation['Continuation'][number]): Promise<void> {
    const token = `${range.minInclusive}-${range.maxExclusive}`;
    const lease: Lease = {
      id: `${leasePrefix}${token}`,
      version: 1,
      LeaseToken: token,
      FeedRange: { Range: { min: range.minInclusive, max: range.maxExclusive } },
      ContinuationToken: range.continuationToken ?? null,
      Owner: owner,
      timestamp: new Date().toISOString(),
      properties: {},
    };
    await options.leases.items.upsert(lease).catch((error: unknown) => options.onError?.(error));
  }

  const loop = (async () => {
    const iterator = options.monitored.items.getChangeFeedIterator({ changeFeedStartFrom: await startFrom(), maxItemCount: options.maxItemsPerInvocation ?? 100 });
    while (!controller.signal.aborted) {
      let response;
      try {
        response = await iterator.readNext();
      } catch (error) {
        options.onError?.(error);
        await pause(pollDelay, controller.signal);
        continue;
      }
      if (response.result.length === 0) {
        state.idle = true;
        await pause(pollDelay, controller.signal);
        continue;
      }
      state.idle = false;
      await invoke(response.result);
      state.batches += 1;
      state.documents += response.result.length;
      await checkpoint(response.continuationToken);
    }
  })();

  async function invoke(documents: unknown[]): Promise<void> {
    for (let attempt = 0; ; attempt += 1) {
      const context = new InvocationContext({
        invocationId: randomUUID(),
        functionName: options.functionName,
        ...(options.logHandler && { logHandler: options.logHandler }),
        ...(attempt > 0 && { retryContext: { retryCount: attempt, maxRetryCount: retry.maxRetryCount } }),
      });
      try {
        await options.handler(documents, context);
        return;
      } catch (error) {
        context.error(`Invocation failed: ${error instanceof Error ? error.message : String(error)}`);
        if (attempt >= retry.maxRetryCount || controller.signal.aborted) {
          options.onError?.(error);
          return; // the host gives up on the batch and moves the checkpoint on
        }
        const delay = Math.min(retry.maximumIntervalInMs, retry.minimumIntervalInMs * 2 ** attempt);
        await pause(delay, controller.signal);
      }
    }
  }

  return {
    get batches() {
      return state.batches;
    },
    get documents() {
      return state.documents;
    },
    get idle() {
      return state.idle;
    },
    async stop(stopOptions = {}) {
      controller.abort();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([loop, new Promise((resolve) => (timer = setTimeout(resolve, stopOptions.drainTimeoutInMs ?? 30_000)))]);
      clearTimeout(timer);
    },
  };
}
