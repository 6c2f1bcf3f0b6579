/**
 * Cosmos DB: the client (built once per process, Entra-authenticated) and {@link CosmosStore}, the base class of every
 * store. Each container has exactly one store that owns it; a store extends the base with only its own reads and
 * writes, and the base does what every store needs the same way:
 *
 * - every request's request charge (RU) goes into the caller's {@link RequestChargeTracker} (so a reconcile or a sync
 *   can report its own cost) and into the process metrics, per container and operation — failures included;
 * - every SDK failure becomes a {@link CosmosOperationError} (status, `retryAfterInMs`, the SDK error as `cause`), or an
 *   {@link OperationAbortedError} when the caller's signal fired;
 * - point writes in bulk run concurrently, and the ones the SDK's own throttling retries gave up on (429) are retried in
 *   rounds with backoff that honours the server's `retry-after`.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { readFileSync } from 'node:fs';
import type { TokenCredential } from '@azure/core-auth';
import { CosmosClient, type Container, type ErrorResponse, type JSONObject, type SqlQuerySpec } from '@azure/cosmos';
import pLimit from 'p-limit';
import type { SystemProperties } from '../model/documents';
import { withRetries } from './backoff';
import type { AppMode, CosmosConfig } from './config';
import { CosmosOperationError, OperationAbortedError } from './errors';
import type { Metrics } from './metrics';
import { abortOnly, type OperationOptions } from './options';

export interface CosmosClientOptions {
  mode: AppMode;
  userAgentSuffix?: string;
}

/**
 * The one CosmosClient of the process. Uses the shared credential (`aadCredentials`) unless the
 * configuration carries a key (local stand-ins only — config refuses keys in production mode).
 * 429s are retried by the SDK per its retry options; keep-alive is on.
 */
export function createCosmosClient(config: CosmosConfig, credential: TokenCredential, options: CosmosClientOptions): CosmosClient {
  const secure = config.endpoint.startsWith('https:');
  const ca = config.caCertPath ? readFileSync(config.caCertPath) : undefined;
  const agent = secure ? new https.Agent({ keepAlive: true, ...(ca && { ca }) }) : new http.Agent({ keepAlive: true });
  return new CosmosClient({
    endpoint: config.endpoint,
    ...(config.key ? { key: config.key } : { aadCredentials: credential }),
    agent,
    userAgentSuffix: options.userAgentSuffix ?? 'backstage-cosmos-sync',
    connectionPolicy: {
      requestTimeout: config.requestTimeoutInMs,
      // A local emulator has one region and often reports unreachable addresses for it.
      enableEndpointDiscovery: options.mode === 'production',
      retryOptions: {
        maxRetryAttemptCount: config.maxRetryAttempts,
        maxWaitTimeInSeconds: Math.ceil(config.maxRetryWaitInMs / 1000),
        fixedRetryIntervalInMilliseconds: 0, // 0 = honour the server's x-ms-retry-after-ms
      },
    },
  });
}

/** Sums the request charge of the operations one unit of work performs. */
export class RequestChargeTracker {
  total = 0;
  readonly byOperation: Record<string, { count: number; requestCharge: number }> = {};

  add(operation: string, requestCharge: number | undefined): void {
    const ru = Number.isFinite(requestCharge) ? (requestCharge as number) : 0;
    this.total += ru;
    const entry = (this.byOperation[operation] ??= { count: 0, requestCharge: 0 });
    entry.count += 1;
    entry.requestCharge += ru;
  }

  count(operation: string): number {
    return this.byOperation[operation]?.count ?? 0;
  }
}

/** Options of every store call: cancellation, the invocation's logger, and where to add the request charge. */
export interface StoreCallOptions extends OperationOptions {
  charge?: RequestChargeTracker;
}

/** How writes that the SDK's own 429 retries gave up on are retried (in rounds, only the throttled ones). */
export interface ThrottleRetryOptions {
  /** Rounds after the first. */
  maxRetries: number;
  baseDelayInMs: number;
  maxDelayInMs: number;
}

export interface CosmosStoreOptions {
  metrics?: Metrics;
  throttleRetry: ThrottleRetryOptions;
}

/** What one write of a bulk write came to. */
export interface WriteOutcome {
  /** Cosmos's status; 0 when no answer arrived. */
  statusCode: number;
  etag?: string;
  error?: CosmosOperationError;
}

type RequestOptions = { abortSignal?: AbortSignal };

/** The base of every store: see the file comment. Subclasses add only their own reads and writes. */
export abstract class CosmosStore {
  protected constructor(
    protected readonly container: Container,
    protected readonly storeOptions: CosmosStoreOptions,
  ) {}

  /** An id no document has: the self-check's harmless calls use it (its absence is the expected answer). */
  static readonly PROBE_ID = '~self-check';

  /**
   * The self-check's harmless call: a point read of an id no document has. A 404 means the token was accepted and
   * the identity may read items here; 401 and 403 come back as {@link CosmosOperationError}.
   */
  async probe(options: StoreCallOptions = {}): Promise<void> {
    await this.readItem(CosmosStore.PROBE_ID, CosmosStore.PROBE_ID, options);
  }

  /** Reads the container's metadata: whether the store's database answers (the health check). */
  async ping(options: StoreCallOptions = {}): Promise<void> {
    await this.request('metadata', 'read the container', options, (requestOptions) => this.container.read(requestOptions));
  }

  /**
   * One SDK call with the store's accounting: its request charge recorded as `operation`, its failure mapped to a
   * {@link CosmosOperationError} described as `what`.
   */
  protected async request<R extends { requestCharge?: number }>(
    operation: string,
    what: string,
    options: StoreCallOptions,
    call: (requestOptions: RequestOptions) => Promise<R>,
  ): Promise<R> {
    try {
      const response = await call(abortOnly(options));
      this.charge(operation, response.requestCharge, options);
      return response;
    } catch (error) {
      this.charge(operation, chargeOf(error), options);
      throw toCosmosError(what, error, options);
    }
  }

  /** Creates `doc` in a container partitioned by `/id`; {@link CosmosOperationError} 409 when it exists. Returns the new `_etag`. */
  protected async createDocument(doc: { id: string }, options: StoreCallOptions): Promise<string> {
    const response = await this.request('create', `create ${doc.id}`, options, (o) => this.container.items.create(doc as JSONObject, o));
    return response.etag;
  }

  /** Replaces `doc` (partition key `/id`) if its `_etag` is still `ifMatch`; {@link CosmosOperationError} 412 otherwise. */
  protected async replaceDocument(doc: { id: string }, ifMatch: string, options: StoreCallOptions): Promise<string> {
    const response = await this.request('replace', `replace ${doc.id}`, options, (o) =>
      this.container.item(doc.id, doc.id).replace(doc as JSONObject, { ...o, accessCondition: { type: 'IfMatch', condition: ifMatch } }),
    );
    return response.etag;
  }

  /** The item with its system properties, or undefined when there is none (404). */
  protected async readItem<T extends object>(id: string, partitionKey: string, options: StoreCallOptions): Promise<(T & SystemProperties) | undefined> {
    try {
      const response = await this.request('read', `read ${id}`, options, (o) => this.container.item(id, partitionKey).read<T & SystemProperties>(o));
      return response.statusCode === 404 ? undefined : response.resource;
    } catch (error) {
      if (error instanceof CosmosOperationError && error.statusCode === 404) return undefined;
      throw error;
    }
  }

  /** Every result of a query (all pages). Pass `partitionKey` for a single-partition query. */
  protected async queryAll<T>(what: string, query: SqlQuerySpec | string, options: StoreCallOptions & { partitionKey?: string } = {}): Promise<T[]> {
    const feedOptions = { ...abortOnly(options), ...(options.partitionKey !== undefined && { partitionKey: options.partitionKey }) };
    const response = await this.request('query', what, options, () => this.container.items.query<T>(query, feedOptions).fetchAll());
    return response.resources;
  }

  /** A query's results a page at a time (empty pages skipped). */
  protected async *queryPages<T>(what: string, query: SqlQuerySpec | string, options: StoreCallOptions & { pageSize?: number } = {}): AsyncGenerator<T[]> {
    const iterator = this.container.items.query<T>(query, { maxItemCount: options.pageSize ?? 1000, ...abortOnly(options) });
    while (iterator.hasMoreResults()) {
      const page = await this.request('query', what, options, () => iterator.fetchNext());
      if (page.resources.length > 0) yield page.resources;
    }
  }

  /**
   * Runs `write` for every operation as concurrent point writes (at most `concurrency` in flight, default 16).
   * Operations that still end in 429 after the SDK's own throttling retries are retried in rounds (only those), up to
   * `throttleRetry.maxRetries` rounds, honouring the largest `retryAfterInMs` Cosmos sent. Returns one outcome per
   * operation, in order; throws only when the caller's signal fires.
   *
   * Why not the SDK's bulk executor: `executeBulkOperations` waits in steps of one second for partial batches, so
   * every call costs at least a second — slower than point writes at the batch sizes a sync produces.
   */
  protected async writeAll<Op>(
    operations: readonly Op[],
    write: (operation: Op, options: StoreCallOptions) => Promise<{ statusCode: number; etag?: string }>,
    options: StoreCallOptions & { concurrency?: number } = {},
  ): Promise<WriteOutcome[]> {
    const outcomes: WriteOutcome[] = new Array<WriteOutcome>(operations.length);
    const limit = pLimit(options.concurrency ?? 16);
    let pending = operations.map((operation, index) => ({ operation, index }));
    const round = async () => {
      const throttled: typeof pending = [];
      let retryAfterInMs: number | undefined;
      await Promise.all(
        pending.map((item) =>
          limit(async () => {
            try {
              const { statusCode, etag } = await write(item.operation, options);
              outcomes[item.index] = { statusCode, ...(etag !== undefined && { etag }) };
            } catch (error) {
              if (error instanceof OperationAbortedError) throw error;
              const failure = error instanceof CosmosOperationError ? error : new CosmosOperationError(String(error), undefined, error);
              outcomes[item.index] = { statusCode: failure.statusCode ?? 0, error: failure };
              if (failure.statusCode === 429) {
                throttled.push(item);
                if (failure.retryAfterInMs !== undefined) retryAfterInMs = Math.max(retryAfterInMs ?? 0, failure.retryAfterInMs);
              }
            }
          }),
        ),
      );
      pending = throttled.sort((a, b) => a.index - b.index);
      if (pending.length > 0) throw new ThrottledWrites(pending.length, retryAfterInMs);
    };
    try {
      await withRetries(round, {
        ...this.storeOptions.throttleRetry,
        ...abortOnly(options),
        shouldRetry: (error) => error instanceof ThrottledWrites && { retryAfterInMs: error.retryAfterInMs },
        onRetry: (error) => this.storeOptions.metrics?.increment('cosmos.throttled', (error as ThrottledWrites).count, { container: this.container.id }),
      });
    } catch (error) {
      // Rounds spent: the throttled operations keep their 429 outcome.
      if (!(error instanceof ThrottledWrites)) throw error;
    }
    return outcomes;
  }

  private charge(operation: string, requestCharge: number | undefined, options: StoreCallOptions): void {
    options.charge?.add(operation, requestCharge);
    this.storeOptions.metrics?.record('cosmos.request_charge', requestCharge ?? 0, { operation, container: this.container.id });
  }
}

/** Some operations of a round were throttled; carries what the next round needs. */
class ThrottledWrites extends Error {
  constructor(
    readonly count: number,
    readonly retryAfterInMs: number | undefined,
  ) {
    super(`${count} writes throttled`);
  }
}

/** The HTTP status of a Cosmos SDK error, if it has one. */
function statusOf(error: unknown): number | undefined {
  if (error instanceof CosmosOperationError) return error.statusCode;
  const code = (error as ErrorResponse | undefined)?.code ?? (error as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

function chargeOf(error: unknown): number | undefined {
  const value: unknown = (error as ErrorResponse | undefined)?.headers?.['x-ms-request-charge'];
  return value === undefined ? undefined : Number(value);
}

function toCosmosError(what: string, error: unknown, options: StoreCallOptions): Error {
  if (options.abortSignal?.aborted) return new OperationAbortedError(`Cosmos DB ${what} aborted`, error);
  const status = statusOf(error);
  const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
  const wrapped = new CosmosOperationError(`Cosmos DB ${what} failed${status ? ` with ${status}` : ''}: ${message}`, status, error);
  const retryAfterInMs = (error as ErrorResponse | undefined)?.retryAfterInMs;
  if (typeof retryAfterInMs === 'number') wrapped.retryAfterInMs = retryAfterInMs;
  return wrapped;
}
