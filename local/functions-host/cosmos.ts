/**
 * Runs a Cosmos DB trigger the way the Functions host does for `app.cosmosDB(...)`: reads the monitored container's
 * change feed (latest version) in batches of `maxItemsPerInvocation`, calls the function, and checkpoints the
 * continuation in the leases container after each handled batch. A failed invocation is retried with the function's
 * exponential-backoff retry policy; when the retries are spent the batch is skipped and the checkpoint moves on, as
 * the host does — which is why the projection records its own failures.
 *
 * A development tool with one lease for the whole container (the emulator has one partition-key range); the real
 * host balances leases per range across instances.
 */
import { randomUUID } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { pause } from './pause';
import { ChangeFeedStartFrom, type Container } from '@azure/cosmos';

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

interface Lease {
  id: string;
  continuationToken?: string;
  owner: string;
  timestamp: string;
}

export function startChangeFeedTrigger(options: ChangeFeedTriggerOptions): ChangeFeedTrigger {
  const controller = new AbortController();
  const state = { batches: 0, documents: 0, idle: false };
  const leaseId = `${options.leaseContainerPrefix ?? ''}${options.monitored.database.id}.${options.monitored.id}`;
  const owner = randomUUID();
  const pollDelay = options.feedPollDelayInMs ?? 5_000;
  const retry = options.retry ?? { maxRetryCount: 0, minimumIntervalInMs: 0, maximumIntervalInMs: 0 };

  const loop = (async () => {
    let lease: Lease | undefined;
    try {
      lease = (await options.leases.item(leaseId, leaseId).read<Lease>()).resource;
    } catch {
      lease = undefined;
    }
    const startFrom = lease?.continuationToken
      ? ChangeFeedStartFrom.Continuation(lease.continuationToken)
      : options.startFromBeginning
        ? ChangeFeedStartFrom.Beginning()
        : ChangeFeedStartFrom.Now();
    const iterator = options.monitored.items.getChangeFeedIterator({ changeFeedStartFrom: startFrom, maxItemCount: options.maxItemsPerInvocation ?? 100 });
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
      const checkpoint: Lease = { id: leaseId, continuationToken: response.continuationToken, owner, timestamp: new Date().toISOString() };
      await options.leases.items.upsert(checkpoint).catch((error: unknown) => options.onError?.(error));
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
