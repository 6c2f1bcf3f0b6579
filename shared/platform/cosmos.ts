/**
 * Cosmos DB: the client (built once per process, Entra-authenticated) and {@link CosmosStore}, the base class of every
 * store. Each container has exactly one store that owns it; a store extends the base with only its own reads and
 * writes, and the base does what every store needs the same way:
 *
 * - every request's request charge (RU) goes into the caller's {@link RequestChargeTracker} (so a reconcile or a sync
 *   can report its own cost) and into the process metrics, per container and operation — failures included;
 * - every call is a `dependency.duration` measurement (status, the SDK's retries), every 429 Cosmos answered — also
 *   the ones the SDK retried — counts in `cosmos.throttled`, and the time spent waiting out their `retry-after` in
 *   `cosmos.throttle_wait_ms`, per container and operation;
 * - a failed or slow call is logged with the SDK's diagnostics, trimmed to what a support case needs (activity ids,
 *   status, sub-status, request charge, retries);
 * - every SDK failure becomes a {@link CosmosOperationError} (status, `retryAfterInMs`, the SDK error as `cause`), or an
 *   {@link OperationAbortedError} when the caller's signal fired;
 * - many writes at once run as concurrent point writes, or as batch requests (100 operations each, as many in flight
 *   as throttling allows) for hundreds at a time, and the ones that failed transiently (429 after the SDK's own retries, 408, 449, 5xx, no answer) are retried in
 *   rounds with backoff that honours the server's `retry-after`.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { readFileSync } from 'node:fs';
import type { TokenCredential } from '@azure/core-auth';
import { ChangeFeedStartFrom, CosmosClient, type Container, type CosmosDiagnostics, type ErrorResponse, type JSONObject, type OperationInput, type OperationResponse, type SqlQuerySpec } from '@azure/cosmos';
import { AdaptiveLimit } from './adaptive-limit';
import pLimit from 'p-limit';
import type { SystemProperties } from '../model/documents';
import { withRetries } from './backoff';
import type { AppMode, CosmosConfig, SlowCallThresholds } from './config';
import { noAnswerStatus, recordDependencyCall } from './dependencies';
import { CosmosOperationError, OperationAbortedError } from './errors';
import type { Logger } from './logger';
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
  /** Where failed and slow calls are logged when the call's options carry no logger. */
  logger?: Logger;
  /** Calls slower than these are logged with their diagnostics; absent = only failures are. */
  slowCallThresholds?: SlowCallThresholds;
}

/** Operations per batch call: what one call of `items.bulk` takes, the service's limit for one partition key range. */
export const BATCH_OPERATIONS = 100;

/** Batch calls in flight per container at first and at most (see {@link CosmosStore.bulkWriteAll}). */
export const BATCH_CONCURRENCY = { initial: 4, max: 16 } as const;

/** One write of {@link CosmosStore.bulkWriteAll}: the document, its partition key value, and for a replace its `IfMatch`. */
export type BulkWrite =
  | { kind: 'create'; doc: { id: string }; partitionKey: string }
  | { kind: 'replace'; doc: { id: string }; partitionKey: string; ifMatch: string };

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
  /** Diagnostics log lines: at most 10 a minute per operation and status (slow calls count as one status). */
  private readonly logAllowance = new LogAllowance(10, 60_000);
  /** Batch calls in flight for this container ({@link CosmosStore.bulkWriteAll}). */
  private readonly batchLimit = new AdaptiveLimit(BATCH_CONCURRENCY);

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
  protected async request<R extends { requestCharge?: number; diagnostics?: CosmosDiagnostics; statusCode?: number; substatus?: number }>(
    operation: string,
    what: string,
    options: StoreCallOptions,
    call: (requestOptions: RequestOptions) => Promise<R>,
  ): Promise<R> {
    const started = performance.now();
    try {
      const response = await call(abortOnly(options));
      this.charge(operation, response.requestCharge, options);
      this.observe(operation, what, options, performance.now() - started, { statusCode: response.statusCode ?? 200, subStatusCode: response.substatus, requestCharge: response.requestCharge, diagnostics: response.diagnostics });
      return response;
    } catch (error) {
      const failure = toCosmosError(what, error, options);
      this.charge(operation, chargeOf(error), options);
      const response = error as Partial<ErrorResponse> | undefined;
      this.observe(operation, what, options, performance.now() - started, {
        statusCode: statusOf(error) ?? noAnswerStatus(error, failure instanceof OperationAbortedError),
        subStatusCode: response?.substatus ?? numberHeader(response?.headers?.['x-ms-substatus']),
        requestCharge: chargeOf(error),
        diagnostics: response?.diagnostics,
        error: failure,
      });
      throw failure;
    }
  }

  /**
   * The call's telemetry: its `dependency.duration`, the 429s among its attempts and the time spent waiting them out,
   * and — when it failed (other than with an answer the code expects) or was slow — one log line with its diagnostics.
   */
  private observe(operation: string, what: string, options: StoreCallOptions, durationInMs: number, outcome: CallOutcome): void {
    const container = this.container.id;
    const diagnostics = summarizeDiagnostics(outcome.diagnostics);
    const metrics = this.storeOptions.metrics;
    const status = outcome.statusCode;
    const success = typeof status === 'number' && (status < 400 || EXPECTED_STATUS.has(status));
    recordDependencyCall(metrics, { dependency: 'cosmos', operation: `${container}.${operation}`, status, retries: diagnostics.retries, durationInMs, success });
    const throttled = diagnostics.throttled + (status === 429 ? 1 : 0);
    if (throttled > 0) metrics?.increment('cosmos.throttled', throttled, { container, operation });
    if (diagnostics.throttleWaitInMs > 0) metrics?.record('cosmos.throttle_wait_ms', diagnostics.throttleWaitInMs, { container, operation });
    const thresholds = this.storeOptions.slowCallThresholds;
    const slowAfter = thresholds && (POINT_OPERATIONS.has(operation) ? thresholds.pointOperationInMs : thresholds.queryInMs);
    const slow = slowAfter !== undefined && durationInMs >= slowAfter;
    if (success && !slow) return;
    const logger = options.logger ?? this.storeOptions.logger;
    if (!logger || (!slow && outcome.error instanceof OperationAbortedError)) return;
    // A throttled reconcile fails thousands of writes alike: a few lines a minute per kind say as much.
    const allowance = this.logAllowance.take(`${operation}|${success ? 'slow' : String(status)}`);
    if (!allowance.allowed) return;
    const fields = {
      dependency: 'cosmos',
      container,
      operation,
      statusCode: status,
      ...(outcome.subStatusCode !== undefined && { subStatusCode: outcome.subStatusCode }),
      ...(diagnostics.activityId && { activityId: diagnostics.activityId }),
      requestCharge: outcome.requestCharge ?? 0,
      retries: diagnostics.retries,
      durationInMs: Math.round(durationInMs),
      diagnostics: trimDiagnostics(outcome.diagnostics),
      ...(allowance.suppressed > 0 && { alikeNotLogged: allowance.suppressed }),
    };
    if (success) logger.warn(`Slow Cosmos DB call: ${what}`, fields);
    else logger.warn(`Cosmos DB call failed: ${what}`, { ...fields, error: outcome.error });
  }

  /** Creates `doc`; {@link CosmosOperationError} 409 when it exists. Returns the new `_etag`. */
  protected async createDocument(doc: { id: string }, options: StoreCallOptions): Promise<string> {
    const response = await this.request('create', `create ${doc.id}`, options, (o) => this.container.items.create(doc as JSONObject, o));
    return response.etag;
  }

  /**
   * Replaces `doc` (partition key `/id` unless given) if its `_etag` is still `ifMatch`; {@link CosmosOperationError}
   * 412 otherwise. Returns the new `_etag`.
   */
  protected async replaceDocument(doc: { id: string }, ifMatch: string, options: StoreCallOptions, partitionKey = doc.id): Promise<string> {
    const response = await this.request('replace', `replace ${doc.id}`, options, (o) =>
      this.container.item(doc.id, partitionKey).replace(doc as JSONObject, { ...o, accessCondition: { type: 'IfMatch', condition: ifMatch } }),
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
   * Runs `write` for every operation as concurrent point writes (at most `concurrency` in flight, default 16), retried
   * as {@link CosmosStore.inRounds} says. Returns one outcome per operation, in order; throws only when the caller's
   * signal fires.
   */
  protected async writeAll<Op>(
    operations: readonly Op[],
    write: (operation: Op, options: StoreCallOptions) => Promise<{ statusCode: number; etag?: string }>,
    options: StoreCallOptions & { concurrency?: number } = {},
  ): Promise<WriteOutcome[]> {
    const limit = pLimit(options.concurrency ?? 16);
    return this.inRounds(
      operations,
      (pending) =>
        Promise.all(
          pending.map((operation) =>
            limit(async (): Promise<WriteOutcome> => {
              try {
                const { statusCode, etag } = await write(operation, options);
                return { statusCode, ...(etag !== undefined && { etag }) };
              } catch (error) {
                if (error instanceof OperationAbortedError) throw error;
                const failure = error instanceof CosmosOperationError ? error : new CosmosOperationError(String(error), undefined, error);
                return { statusCode: failure.statusCode ?? 0, error: failure };
              }
            }),
          ),
        ),
      options,
    );
  }

  /**
   * The same writes as batch requests (`items.bulk`, {@link BATCH_OPERATIONS} operations per call, each call one
   * batch request per partition key range it touches, every operation answered on its own): an initial load costs
   * about a hundredth of the requests of point writes and much less client time. How many calls are in flight follows
   * throttling ({@link AdaptiveLimit}, one per store and so per container, shared by every caller): it halves when an
   * answer holds a 429 and grows by one per window of unthrottled answers, up to {@link BATCH_CONCURRENCY}`.max`.
   * (The SDK's bulk executor, `executeBulkOperations`, paces per partition as well, but waits in steps of one second
   * for its partial batches and starts each call at one request in flight: groups of a thousand writes took twice the
   * time of one call for all of them, and batch requests a fifth of it — docs/performance.md.) Failed operations are
   * retried as {@link CosmosStore.inRounds} says; each operation's request charge is recorded under its own kind
   * (`create`, `replace`), each batch call as one `bulk` dependency call.
   */
  protected async bulkWriteAll(operations: readonly BulkWrite[], options: StoreCallOptions = {}): Promise<WriteOutcome[]> {
    return this.inRounds(operations, (pending) => this.bulkRound(pending, options), options);
  }

  private async bulkRound(operations: readonly BulkWrite[], options: StoreCallOptions): Promise<WriteOutcome[]> {
    const outcomes = new Array<WriteOutcome>(operations.length);
    const calls: Array<Promise<void>> = [];
    for (let start = 0; start < operations.length; start += BATCH_OPERATIONS) {
      const part = operations.slice(start, start + BATCH_OPERATIONS);
      calls.push(
        this.batchLimit
          .run(
            () => this.batchCall(part, options),
            (answers) => answers.some((answer) => answer.statusCode === 429),
          )
          .then((answers) => answers.forEach((answer, i) => (outcomes[start + i] = answer))),
      );
    }
    // Every call settles before an abort is passed on, so no write is still in flight when the caller hears of it.
    const settled = await Promise.allSettled(calls);
    const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (rejected) throw rejected.reason;
    return outcomes;
  }

  /** One batch call of at most {@link BATCH_OPERATIONS} writes: an outcome per write; throws only when aborted. */
  private async batchCall(operations: readonly BulkWrite[], options: StoreCallOptions): Promise<WriteOutcome[]> {
    const inputs: OperationInput[] = operations.map((operation) =>
      operation.kind === 'create'
        ? { operationType: 'Create', partitionKey: operation.partitionKey, resourceBody: operation.doc }
        : { operationType: 'Replace', id: operation.doc.id, partitionKey: operation.partitionKey, resourceBody: operation.doc, ifMatch: operation.ifMatch },
    );
    const what = `write ${operations.length} documents in a batch`;
    const started = performance.now();
    let answers: OperationResponse[];
    try {
      // continueOnError: an operation's 409 or 412 must not fail the ones after it (they would answer 424).
      // contentResponseOnWriteEnabled: false (`Prefer: return=minimal`): each answer is its status, charge and etag,
      // without the document sent back — the store never reads it, and parsing it cost the client as much as sending it.
      answers = await this.container.items.bulk(inputs, { continueOnError: true }, { ...abortOnly(options), contentResponseOnWriteEnabled: false });
    } catch (error) {
      // The call failed (no operation has an answer): every operation of it keeps that failure.
      const failure = toCosmosError(what, error, options);
      this.observe('bulk', what, options, performance.now() - started, {
        statusCode: statusOf(error) ?? noAnswerStatus(error, failure instanceof OperationAbortedError),
        error: failure,
      });
      if (failure instanceof OperationAbortedError) throw failure;
      const cosmosFailure = failure as CosmosOperationError;
      if (cosmosFailure.statusCode !== undefined) return operations.map(() => ({ statusCode: cosmosFailure.statusCode!, error: cosmosFailure }));
      return this.diagnoseBatchFailure(operations, cosmosFailure, options);
    }
    let throttled = 0;
    let requestCharge = 0;
    const outcomes = operations.map((operation, index): WriteOutcome => {
      const answer = answers[index];
      const statusCode = answer?.statusCode ?? 0;
      const charge = answer?.requestCharge;
      requestCharge += charge ?? 0;
      this.charge(operation.kind, charge, options);
      if (statusCode === 429) throttled += 1;
      if (statusCode >= 200 && statusCode < 300) return { statusCode, ...(answer?.eTag && { etag: answer.eTag }) };
      const error = new CosmosOperationError(`Cosmos DB ${operation.kind} ${operation.doc.id} in a batch failed${statusCode ? ` with ${statusCode}` : ': no answer'}`, statusCode || undefined);
      // A throttled operation's answer says how long to wait (the SDK's type leaves it out).
      const retryAfterInMs = (answer as { retryAfterMilliseconds?: unknown } | undefined)?.retryAfterMilliseconds;
      if (typeof retryAfterInMs === 'number') error.retryAfterInMs = retryAfterInMs;
      return { statusCode, error };
    });
    // The call answered: each operation's own status is in its outcome (409 and 412 are answers the callers expect).
    this.observe('bulk', what, options, performance.now() - started, { statusCode: 200, requestCharge });
    if (throttled > 0) this.storeOptions.metrics?.increment('cosmos.throttled', throttled, { container: this.container.id, operation: 'bulk' });
    return outcomes;
  }

  /**
   * A batch call that failed without a status. `items.bulk` rethrows a failed batch request as a plain Error, its
   * status lost, so a refused token or a missing role (401, 403) would look like a request that got no answer — and
   * be sent again and again as one. The call's first operation, sent alone as a point write, answers with its status:
   * a refusal is the whole call's (the same identity, container and kind of write); any other answer is that
   * operation's own outcome, and the rest keep "no answer" (transient: the next round sends them again).
   */
  private async diagnoseBatchFailure(operations: readonly BulkWrite[], failure: CosmosOperationError, options: StoreCallOptions): Promise<WriteOutcome[]> {
    const [first, ...rest] = operations;
    const answer = await this.pointWrite(first!, options);
    if (answer.statusCode === 401 || answer.statusCode === 403) {
      const refused = new CosmosOperationError(`Cosmos DB refused a batch of ${operations.length} writes with ${answer.statusCode}`, answer.statusCode, answer.error);
      return operations.map(() => ({ statusCode: answer.statusCode, error: refused }));
    }
    return [answer, ...rest.map(() => ({ statusCode: 0, error: failure }))];
  }

  /** One operation of a batch, written alone: its outcome, as a batch call gives it; throws only when aborted. */
  private async pointWrite(operation: BulkWrite, options: StoreCallOptions): Promise<WriteOutcome> {
    try {
      return operation.kind === 'create'
        ? { statusCode: 201, etag: await this.createDocument(operation.doc, options) }
        : { statusCode: 200, etag: await this.replaceDocument(operation.doc, operation.ifMatch, options, operation.partitionKey) };
    } catch (error) {
      if (error instanceof OperationAbortedError) throw error;
      const failure = error as CosmosOperationError;
      return { statusCode: failure.statusCode ?? 0, error: failure };
    }
  }

  /**
   * Runs `round` over the operations, then again over those that failed transiently — still 429 after the SDK's own
   * throttling retries, or 408, 449, 5xx, or no answer at all — up to `throttleRetry.maxRetries` rounds, honouring
   * the largest `retryAfterInMs` Cosmos sent. Safe for the writes the stores make: a create that went in without its
   * answer comes back 409 and a conditional replace 412, which the callers already treat as "look again". Returns one
   * outcome per operation, in order (an operation still failing keeps its last outcome); throws only when the
   * caller's signal fires.
   */
  private async inRounds<Op>(operations: readonly Op[], round: (pending: readonly Op[]) => Promise<WriteOutcome[]>, options: StoreCallOptions): Promise<WriteOutcome[]> {
    const outcomes: WriteOutcome[] = new Array<WriteOutcome>(operations.length);
    let pending = operations.map((operation, index) => ({ operation, index }));
    const attempt = async () => {
      const results = await round(pending.map((item) => item.operation));
      const retryable: typeof pending = [];
      let retryAfterInMs: number | undefined;
      results.forEach((outcome, i) => {
        const item = pending[i]!;
        outcomes[item.index] = outcome;
        if (!outcome.error?.transient) return;
        retryable.push(item);
        if (outcome.error.retryAfterInMs !== undefined) retryAfterInMs = Math.max(retryAfterInMs ?? 0, outcome.error.retryAfterInMs);
      });
      pending = retryable;
      if (pending.length > 0) throw new RetryableWrites(pending.length, retryAfterInMs);
    };
    try {
      await withRetries(attempt, {
        ...this.storeOptions.throttleRetry,
        ...abortOnly(options),
        // Each 429 is already counted (cosmos.throttled) by the request that received it.
        shouldRetry: (error) => error instanceof RetryableWrites && { retryAfterInMs: error.retryAfterInMs },
      });
    } catch (error) {
      if (!(error instanceof RetryableWrites)) throw error;
    }
    return outcomes;
  }

  /**
   * The change-feed estimator's estimate, per lease: how many changes of this container's feed its processor has
   * still to read — the range's current LSN minus the LSN of the first change after the lease's continuation, plus
   * one (0 when there is none). An estimate, as the SDK's: the LSN also counts writes the latest-version feed
   * coalesces. Costs one feed read per physical range and one per lease, each at most one document.
   */
  protected async changeFeedBacklog(leases: readonly FeedLease[], options: StoreCallOptions = {}): Promise<number[]> {
    if (leases.length === 0) return [];
    const container = await this.request('metadata', 'read the container', options, (o) => this.container.read(o));
    const rid = container.resource!._rid;
    const positions = await this.changeFeedPositions(options);
    const byRangeId = leases.some((lease) => !lease.range && lease.partitionKeyRangeId !== undefined)
      ? new Map((await this.container.readPartitionKeyRanges().fetchAll()).resources.map((r) => [r.id, { min: r.minInclusive, max: r.maxExclusive }]))
      : new Map<string, { min: string; max: string }>();
    return Promise.all(
      leases.map(async (lease) => {
        const range = lease.range ?? (lease.partitionKeyRangeId !== undefined ? byRangeId.get(lease.partitionKeyRangeId) : undefined) ?? WHOLE_RANGE;
        const continuation: CompositeContinuation = {
          rid,
          Continuation: [{ minInclusive: range.min, maxExclusive: range.max, ...(lease.continuationToken && { continuationToken: lease.continuationToken }) }],
        };
        const iterator = this.container.items.getChangeFeedIterator({ changeFeedStartFrom: ChangeFeedStartFrom.Continuation(JSON.stringify(continuation)), maxItemCount: 1 });
        const page = await this.request('changefeed', `read the change feed after lease ${lease.id}`, options, () => iterator.readNext());
        const first = (page.result[0] as { _lsn?: unknown } | undefined)?._lsn;
        if (typeof first !== 'number') return 0;
        const overlapping = positions.filter((p) => p.min < range.max && p.max > range.min);
        const current = Math.max(first, ...overlapping.map((p) => p.lsn));
        return current - first + 1;
      }),
    );
  }

  /** The change feed's current LSN per physical range (a read from "now" of every range). */
  private async changeFeedPositions(options: StoreCallOptions): Promise<Array<{ min: string; max: string; lsn: number }>> {
    const ranges = await this.container.getFeedRanges();
    const iterator = this.container.items.getChangeFeedIterator({ changeFeedStartFrom: ChangeFeedStartFrom.Now(), maxItemCount: 1 });
    let continuation: string | undefined;
    for (let i = 0; i < Math.max(1, ranges.length); i += 1) {
      continuation = (await this.request('changefeed', 'read the change feed position', options, () => iterator.readNext())).continuationToken;
    }
    const composite = continuation ? (JSON.parse(continuation) as CompositeContinuation) : undefined;
    return (composite?.Continuation ?? []).flatMap((entry) => {
      const lsn = lsnOf(entry.continuationToken);
      return lsn === undefined ? [] : [{ min: entry.minInclusive, max: entry.maxExclusive, lsn }];
    });
  }

  private charge(operation: string, requestCharge: number | undefined, options: StoreCallOptions): void {
    options.charge?.add(operation, requestCharge);
    this.storeOptions.metrics?.record('cosmos.request_charge', requestCharge ?? 0, { operation, container: this.container.id });
  }
}

/** A change-feed processor's lease (the Functions host's format): the feed range it covers and the ETag it has read up to. */
export interface FeedLease {
  id: string;
  /** The feed range (effective partition keys) the lease covers. */
  range?: { min: string; max: string };
  /** A partition-key-range lease (no `range`): the id of its range. Neither = the whole container. */
  partitionKeyRangeId?: string;
  /** The range's ETag (`"<lsn>"`) after the last change handled; null before the first checkpoint. */
  continuationToken: string | null;
}

/** The SDK's composite continuation of a change-feed iterator: its container's rid and one ETag per feed range. */
export interface CompositeContinuation {
  rid: string;
  Continuation: Array<{ minInclusive: string; maxExclusive: string; continuationToken?: string }>;
}

const WHOLE_RANGE = { min: '', max: 'FF' };

function lsnOf(etag: string | null | undefined): number | undefined {
  const n = etag ? Number(etag.replace(/"/g, '')) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** Some operations of a round failed transiently; carries what the next round needs. */
class RetryableWrites extends Error {
  constructor(
    readonly count: number,
    readonly retryAfterInMs: number | undefined,
  ) {
    super(`${count} writes failed transiently`);
  }
}

/** At most `perWindow` log lines per key and window; says how many alike were dropped since the last one logged. */
export class LogAllowance {
  private readonly windows = new Map<string, { startedAt: number; logged: number; suppressed: number }>();

  constructor(
    private readonly perWindow: number,
    private readonly windowInMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  take(key: string): { allowed: boolean; suppressed: number } {
    const now = this.now();
    let window = this.windows.get(key);
    if (!window || now - window.startedAt >= this.windowInMs) {
      const carried = window?.suppressed ?? 0;
      window = { startedAt: now, logged: 0, suppressed: carried };
      this.windows.set(key, window);
    }
    if (window.logged >= this.perWindow) {
      window.suppressed += 1;
      return { allowed: false, suppressed: 0 };
    }
    window.logged += 1;
    const suppressed = window.suppressed;
    window.suppressed = 0;
    return { allowed: true, suppressed };
  }
}

/** Answers the code expects and handles (absent, exists already, changed meanwhile): not failures of the dependency. */
const EXPECTED_STATUS = new Set([404, 409, 412]);
/** Operations that are one point read or write; the rest are queries, feed reads and metadata reads. */
const POINT_OPERATIONS = new Set(['read', 'create', 'replace', 'upsert', 'delete', 'patch']);

interface CallOutcome {
  statusCode: number | string;
  subStatusCode?: number | undefined;
  requestCharge?: number | undefined;
  diagnostics?: CosmosDiagnostics | undefined;
  error?: Error;
}

interface DiagnosticsSummary {
  /** Attempts the SDK retried (throttling, timeouts, failovers). */
  retries: number;
  /** 429 answers among the retried attempts. */
  throttled: number;
  /** Time between a 429 and the next attempt, summed: the `retry-after` the SDK honoured. */
  throttleWaitInMs: number;
  /** The activity id of the last request the call made (the one a support case starts from). */
  activityId?: string;
}

/** What a call's diagnostics say about it (every field optional in the SDK: an early failure has none). Runs on every call. */
export function summarizeDiagnostics(diagnostics: CosmosDiagnostics | undefined): DiagnosticsSummary {
  const stats = diagnostics?.clientSideRequestStatistics;
  const failed = stats?.retryDiagnostics?.failedAttempts ?? [];
  const requests = stats?.gatewayStatistics ?? [];
  const activityId = requests[requests.length - 1]?.activityId ?? failed[failed.length - 1]?.activityId;
  let throttleWaitInMs = 0;
  if (failed.some((a) => a.statusCode === 429)) {
    const attempts = [...failed, ...requests].map((a) => ({ start: a.startTimeUTCInMs, end: a.startTimeUTCInMs + a.durationInMs, status: a.statusCode })).sort((a, b) => a.start - b.start);
    attempts.forEach((attempt, i) => {
      const next = attempts[i + 1];
      if (attempt.status === 429 && next) throttleWaitInMs += Math.max(0, next.start - attempt.end);
    });
  }
  return {
    retries: failed.length,
    throttled: failed.filter((a) => a.statusCode === 429).length,
    throttleWaitInMs: Math.round(throttleWaitInMs),
    ...(activityId && { activityId }),
  };
}

/** The diagnostics a log line carries: the last 5 requests and 5 failed attempts, the metadata lookups, the regions. */
export function trimDiagnostics(diagnostics: CosmosDiagnostics | undefined): Record<string, unknown> {
  const stats = diagnostics?.clientSideRequestStatistics;
  const failed = stats?.retryDiagnostics?.failedAttempts ?? [];
  const requests = stats?.gatewayStatistics ?? [];
  return {
    requests: requests.slice(-5).map((r) => ({
      activityId: r.activityId,
      operationType: r.operationType,
      resourceType: r.resourceType,
      statusCode: r.statusCode,
      subStatusCode: r.subStatusCode,
      requestCharge: r.requestCharge,
      durationInMs: r.durationInMs,
    })),
    failedAttempts: failed.slice(-5).map((a) => ({ attempt: a.attemptNumber, activityId: a.activityId, statusCode: a.statusCode, subStatusCode: a.substatusCode, durationInMs: a.durationInMs })),
    ...(requests.length > 5 && { requestsOmitted: requests.length - 5 }),
    ...(failed.length > 5 && { failedAttemptsOmitted: failed.length - 5 }),
    metadataLookups: stats?.metadataDiagnostics?.metadataLookups?.length ?? 0,
    ...(stats?.locationEndpointsContacted && { endpointsContacted: stats.locationEndpointsContacted.length }),
  };
}

function numberHeader(value: unknown): number | undefined {
  const n = typeof value === 'string' || typeof value === 'number' ? Number(value) : NaN;
  return Number.isFinite(n) ? n : undefined;
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
