/**
 * Cosmos DB: the client (built once per process, Entra-authenticated) and the `entities` store.
 *
 * Every operation's request charge (RU) is recorded: into the caller's {@link RequestChargeTracker}
 * (so a reconcile or a sync can report its own cost) and into the process metrics.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { readFileSync } from 'node:fs';
import type { TokenCredential } from '@azure/core-auth';
import { CosmosClient, type Container, type ErrorResponse, type JSONObject } from '@azure/cosmos';
import pLimit from 'p-limit';
import { retryDelay, sleep } from './backoff';
import type { AppMode, CosmosConfig } from './config';
import type { EntityDocument, EntityIdentity, SystemProperties } from '../model/documents';
import { CosmosOperationError, OperationAbortedError } from './errors';
import type { Metrics } from './metrics';

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

export interface StoreCallOptions {
  abortSignal?: AbortSignal;
  charge?: RequestChargeTracker;
}

/** What reconciliation needs of each mirror document. */
export interface MirrorIndexItem extends EntityIdentity {
  sourceEtag: string | null;
  deleted: boolean;
  _etag: string;
}

export type WriteOperation =
  | { kind: 'create'; doc: EntityDocument }
  | { kind: 'replace'; doc: EntityDocument; ifMatch: string };

export interface WriteResult {
  statusCode: number;
  etag?: string;
  error?: CosmosOperationError;
}

export interface WriteRetryOptions {
  maxRetries: number;
  baseDelayInMs: number;
  maxDelayInMs: number;
  /** Writes in flight at once (default 16). */
  concurrency?: number;
}

export type StoredEntityDocument = EntityDocument & SystemProperties;

export class EntityStore {
  constructor(
    readonly container: Container,
    private readonly metrics?: Metrics,
  ) {}

  /** The document (tombstones included) with its `_etag`, or undefined. */
  async read(id: string, options: StoreCallOptions = {}): Promise<StoredEntityDocument | undefined> {
    try {
      const response = await this.container.item(id, id).read<StoredEntityDocument>(requestOptions(options));
      this.charge('read', response.requestCharge, options);
      if (response.statusCode === 404) return undefined;
      return response.resource;
    } catch (error) {
      this.charge('read', chargeOf(error), options);
      if (statusOf(error) === 404) return undefined;
      throw toCosmosError(`read ${id}`, error, options);
    }
  }

  /** Creates the document; throws {@link CosmosOperationError} 409 when it already exists. Returns the new `_etag`. */
  async create(doc: EntityDocument, options: StoreCallOptions = {}): Promise<string> {
    try {
      const response = await this.container.items.create(doc as unknown as JSONObject, requestOptions(options));
      this.charge('create', response.requestCharge, options);
      return response.etag;
    } catch (error) {
      this.charge('create', chargeOf(error), options);
      throw toCosmosError(`create ${doc.id}`, error, options);
    }
  }

  /** Replaces the document if its `_etag` is still `ifMatch`; throws {@link CosmosOperationError} 412 otherwise. */
  async replace(doc: EntityDocument, ifMatch: string, options: StoreCallOptions = {}): Promise<string> {
    try {
      const response = await this.container
        .item(doc.id, doc.id)
        .replace(doc as unknown as JSONObject, { ...requestOptions(options), accessCondition: { type: 'IfMatch', condition: ifMatch } });
      this.charge('replace', response.requestCharge, options);
      return response.etag;
    } catch (error) {
      this.charge('replace', chargeOf(error), options);
      throw toCosmosError(`replace ${doc.id}`, error, options);
    }
  }

  /** Streams the index of every document (tombstones included), a page at a time. */
  async *streamIndex(options: StoreCallOptions & { pageSize?: number } = {}): AsyncGenerator<MirrorIndexItem[]> {
    const iterator = this.container.items.query<MirrorIndexItem>(
      'SELECT c.id, c.entityRef, c.kind, c["namespace"], c.name, c.uid, c.sourceEtag, c.deleted, c._etag FROM c',
      { maxItemCount: options.pageSize ?? 1000, ...requestOptions(options) },
    );
    try {
      while (iterator.hasMoreResults()) {
        const page = await iterator.fetchNext();
        this.charge('query', page.requestCharge, options);
        if (page.resources.length > 0) {
          yield page.resources.map((r) => ({ ...r, uid: r.uid ?? null, sourceEtag: r.sourceEtag ?? null, deleted: r.deleted === true }));
        }
      }
    } catch (error) {
      this.charge('query', chargeOf(error), options);
      throw toCosmosError('query the mirror index', error, options);
    }
  }

  /**
   * Runs `operations` as concurrent point writes (at most `retry.concurrency` in flight). Operations that still end
   * in 429 after the SDK's own throttling retries are retried here with backoff honouring `retryAfterInMs`, up to
   * `maxRetries` rounds. Returns one result per operation, in order; never throws for a per-operation failure.
   *
   * Why not the SDK's bulk executor: `executeBulkOperations` waits in steps of one second for partial batches, so
   * every call costs at least a second — slower than point writes at the batch sizes a sync produces.
   */
  async writeMany(operations: readonly WriteOperation[], retry: WriteRetryOptions, options: StoreCallOptions = {}): Promise<WriteResult[]> {
    const results: WriteResult[] = new Array(operations.length);
    const limit = pLimit(retry.concurrency ?? 16);
    let pending = operations.map((operation, index) => ({ operation, index }));
    for (let round = 0; pending.length > 0; round += 1) {
      const throttled: typeof pending = [];
      let retryAfterInMs: number | undefined;
      await Promise.all(
        pending.map((item) =>
          limit(async () => {
            try {
              const { doc } = item.operation;
              const etag = item.operation.kind === 'create' ? await this.create(doc, options) : await this.replace(doc, item.operation.ifMatch, options);
              results[item.index] = { statusCode: item.operation.kind === 'create' ? 201 : 200, etag };
            } catch (error) {
              if (error instanceof OperationAbortedError) throw error;
              const statusCode = error instanceof CosmosOperationError ? (error.statusCode ?? 0) : 0;
              if (statusCode === 429 && round < retry.maxRetries) {
                throttled.push(item);
                const after = (error as CosmosOperationError).retryAfterInMs;
                if (after !== undefined) retryAfterInMs = Math.max(retryAfterInMs ?? 0, after);
                return;
              }
              results[item.index] = {
                statusCode,
                error: error instanceof CosmosOperationError ? error : new CosmosOperationError(String(error), undefined, error),
              };
            }
          }),
        ),
      );
      if (throttled.length > 0) {
        this.metrics?.increment('cosmos.throttled', throttled.length, { operation: 'write' });
        await sleep(retryDelay(round, retryAfterInMs, { baseDelayInMs: retry.baseDelayInMs, maxDelayInMs: retry.maxDelayInMs }), options.abortSignal);
      }
      pending = throttled.sort((a, b) => a.index - b.index);
    }
    return results;
  }

  private charge(operation: string, requestCharge: number | undefined, options: StoreCallOptions): void {
    options.charge?.add(operation, requestCharge);
    this.metrics?.record('cosmos.request_charge', requestCharge ?? 0, { operation, container: this.container.id });
  }
}

function requestOptions(options: StoreCallOptions): { abortSignal?: AbortSignal } {
  return options.abortSignal ? { abortSignal: options.abortSignal } : {};
}

/** The HTTP status of a Cosmos SDK error, if it has one. */
export function statusOf(error: unknown): number | undefined {
  const code = (error as ErrorResponse | undefined)?.code ?? (error as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

function chargeOf(error: unknown): number | undefined {
  const headers = (error as ErrorResponse | undefined)?.headers;
  const value = headers?.['x-ms-request-charge'];
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
