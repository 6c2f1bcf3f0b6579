/**
 * The catalog reader: everything this service asks Backstage, over `@backstage/catalog-client`.
 *
 * Every HTTP call goes through one policy (see {@link CatalogReader.fetchWithPolicy}):
 * a bearer token from the {@link BackstageTokenProvider}; a per-attempt timeout combined with the caller's
 * `abortSignal`; retries of 429/502/503/504, timeouts and network errors with exponential backoff and jitter,
 * honouring `Retry-After`, bounded by `maxRetries`; and one token refresh + retry on 401.
 */
import { CatalogClient } from '@backstage/catalog-client';
import type { Entity } from '@backstage/catalog-model';
import type { FilterPredicate } from '@backstage/filter-predicates';
import { parseRetryAfter, withRetries } from '../platform/backoff';
import {
  BackstageAuthError,
  BackstageRequestError,
  BackstageUnavailableError,
  OperationAbortedError,
} from '../platform/errors';
import type { BackstageTokenProvider } from '../platform/identity';
import { silentLogger, type Logger } from '../platform/logger';
import { withDeadline } from '../platform/options';
import { noAnswerStatus, recordDependencyCall } from '../platform/dependencies';
import type { Metrics } from '../platform/metrics';
import { entityNameOf, formatEntityRef, toDocumentId } from '../model/refs';
import { injectTraceContext, inSpan, SpanKind } from '../platform/telemetry';
import { SCOPE_ANNOTATION_FIELDS, scopeAnnotationsOf } from './scope';

export interface CatalogReaderOptions {
  baseUrl: string;
  tokenProvider: BackstageTokenProvider;
  requestTimeoutInMs: number;
  maxRetries: number;
  retryBaseDelayInMs: number;
  retryMaxDelayInMs: number;
  pageSize: number;
  /** The encoding to ask Backstage's answers in (see {@link BackstageCompression}); `none` by default. */
  compression?: BackstageCompression;
  logger?: Logger;
  metrics?: Metrics;
  /** The fetch implementation; Node's global fetch by default. */
  fetch?: typeof fetch;
}

/**
 * How Backstage's answers travel. Backstage compresses what it sends when the client offers an encoding (brotli first,
 * which Node's fetch offers by default); compressing a page of 500 whole entities costs Backstage ≈ 30 ms of CPU, and
 * the reader a few more to decompress — several times what sending it plain costs on a fast link. `none` asks for plain
 * answers (`Accept-Encoding: identity`): the choice next to Backstage, e.g. in the same virtual network; `gzip` or `br`
 * trade that CPU for about a tenth of the bytes, for a slow or metered link.
 */
export type BackstageCompression = 'none' | 'gzip' | 'br';

const ACCEPT_ENCODING: Record<BackstageCompression, string> = { none: 'identity', gzip: 'gzip', br: 'br' };

export interface CallOptions {
  abortSignal?: AbortSignal;
  /** Retries of transient failures for this call; the reader's setting by default. */
  maxRetries?: number;
  /**
   * Called for each HTTP request this call sends to Backstage, retries included: what one operation sent, where
   * {@link CatalogReader.requestCount} also counts every other operation running in the process at the same time.
   */
  onRequest?: () => void;
}

/** What reconciliation needs to know about a catalog entity without reading it whole. */
export interface CatalogProjectionItem {
  id: string;
  entityRef: string;
  uid: string | undefined;
  etag: string | undefined;
  /** The entity's scope annotations (scope.ts), when it has any. */
  annotations?: Record<string, string>;
}

export interface StreamProjectionOptions extends CallOptions {
  /** Only entities matching this Backstage filter predicate (sent with the query: the rest are never fetched). */
  query?: FilterPredicate;
}

export interface StreamCatalogOptions extends StreamProjectionOptions {
  /**
   * Asked before each page after the first: `true` reads that page's entities whole instead of their projection (the
   * same cursor serves both). A reconcile that must fetch most of what it sees reads it in the stream, rather than
   * the projection first and the entities again by ref.
   */
  readWhole?: () => boolean;
}

/** A page of the catalog: every entity's projection, and the entities themselves when the page was read whole. */
export interface CatalogPage {
  items: CatalogProjectionItem[];
  /** The page's entities, index for index with `items`, when it was read whole. */
  entities?: Entity[];
}

const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);
const PROJECTION_FIELDS = ['kind', 'metadata.namespace', 'metadata.name', 'metadata.uid', 'metadata.etag', ...SCOPE_ANNOTATION_FIELDS];

export class CatalogReader {
  private readonly fetchImpl: typeof fetch;
  private readonly logger: Logger;
  /** Number of HTTP requests sent to Backstage by this reader, retries included (for benchmarks; per call: `onRequest`). */
  requestCount = 0;

  constructor(private readonly options: CatalogReaderOptions) {
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.logger = options.logger ?? silentLogger;
  }

  /**
   * Streams the `kind/namespace/name/uid/etag` projection (and the scope annotations) of every entity, or of those
   * matching `query`, a page at a time, following the `queryEntities` cursor.
   */
  async *streamProjection(options: StreamProjectionOptions = {}): AsyncGenerator<CatalogProjectionItem[]> {
    for await (const page of this.streamCatalog(options)) yield page.items;
  }

  /** {@link streamProjection}, with pages read whole when `readWhole` says so. */
  async *streamCatalog(options: StreamCatalogOptions = {}): AsyncGenerator<CatalogPage> {
    const client = this.client(options);
    let cursor: string | undefined;
    do {
      const whole = cursor !== undefined && options.readWhole?.() === true;
      const fields = whole ? {} : { fields: PROJECTION_FIELDS };
      const page = cursor
        ? await client.queryEntities({ cursor, limit: this.options.pageSize, ...fields })
        : await client.queryEntities({
            limit: this.options.pageSize,
            ...fields,
            ...(options.query && { query: options.query }),
            totalItems: 'exclude',
          });
      const items: CatalogProjectionItem[] = [];
      for (const entity of page.items) {
        const name = entityNameOf(entity);
        const annotations = whole ? scopeAnnotationsOf(entity) : entity.metadata.annotations;
        items.push({
          id: toDocumentId(name),
          entityRef: formatEntityRef(name),
          uid: entity.metadata.uid,
          etag: entity.metadata.etag,
          ...(annotations && { annotations }),
        });
      }
      if (items.length > 0) yield whole ? { items, entities: page.items } : { items };
      cursor = page.pageInfo.nextCursor;
    } while (cursor);
  }

  /** The self-check's harmless call: the name of one entity, read as every sync reads (token, errors), in one attempt. */
  async probe(options: CallOptions = {}): Promise<void> {
    await this.client({ ...options, maxRetries: 0 }).queryEntities({ limit: 1, fields: ['metadata.name'], totalItems: 'exclude' });
  }

  /** How many entities match `query`: counted by the catalog, one request, no entity read. */
  async countEntities(query: FilterPredicate, options: CallOptions = {}): Promise<number> {
    const page = await this.client(options).queryEntities({ query, limit: 1, fields: ['metadata.name'], totalItems: 'include' });
    return page.totalItems;
  }

  /** Full entities for `refs`, in the same order; `undefined` where the catalog has no such entity. */
  async getEntitiesByRefs(refs: readonly string[], options: CallOptions = {}): Promise<Array<Entity | undefined>> {
    if (refs.length === 0) return [];
    const response = await this.client(options).getEntitiesByRefs({ entityRefs: [...refs] });
    return response.items;
  }

  /** One full entity, or `undefined` when Backstage answers 404. */
  async getEntityByRef(ref: string, options: CallOptions = {}): Promise<Entity | undefined> {
    return this.client(options).getEntityByRef(ref);
  }

  /** A client whose every request runs under this call's abort signal. Construction is two field writes. */
  private client(options: CallOptions): CatalogClient {
    return new CatalogClient({
      discoveryApi: { getBaseUrl: (pluginId: string) => Promise.resolve(`${this.options.baseUrl}/api/${pluginId}`) },
      fetchApi: { fetch: (input, init) => this.fetchWithPolicy(input, init, options) },
    });
  }

  /** One HTTP call under the policy: retries of transient failures (see {@link RETRYABLE_STATUS}) around {@link send}. */
  private async fetchWithPolicy(input: string | URL | Request, init: RequestInit | undefined, options: CallOptions): Promise<Response> {
    const o = this.options;
    const { abortSignal, maxRetries } = options;
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const method = init?.method ?? 'GET';
    const path = safePath(url);
    let attempts = 0;
    const started = performance.now();
    let outcome: { status: number | string; success: boolean } = { status: 'network', success: false };
    try {
      const response = await withRetries(
        () => {
          attempts += 1;
          return this.send(url, method, path, init, options);
        },
        {
          maxRetries: maxRetries ?? o.maxRetries,
          baseDelayInMs: o.retryBaseDelayInMs,
          maxDelayInMs: o.retryMaxDelayInMs,
          ...(abortSignal && { abortSignal }),
          shouldRetry: (error) => error instanceof TransientFailure && { retryAfterInMs: error.retryAfterInMs },
          onRetry: (error, attempt, delayInMs) => {
            const failure = error as TransientFailure;
            o.metrics?.increment('backstage.retries', 1, { status: failure.status ?? 'error' });
            this.logger.warn('Backstage request failed; retrying', { path, reason: failure.reason, attempt: attempt + 1, delayInMs });
          },
        },
      );
      outcome = { status: response.status, success: true };
      return response;
    } catch (error) {
      outcome = { status: failureStatus(error), success: false };
      if (!(error instanceof TransientFailure)) throw error;
      o.metrics?.increment('backstage.errors', 1, { status: error.status ?? 'error' });
      throw new BackstageUnavailableError(`Backstage ${method} ${path} still failing after ${attempts} attempts (${error.reason})`, error.status, error.cause);
    } finally {
      recordDependencyCall(o.metrics, { dependency: 'backstage', operation: `${method} ${routeOf(path)}`, status: outcome.status, retries: Math.max(0, attempts - 1), durationInMs: performance.now() - started, success: outcome.success });
    }
  }

  /**
   * One attempt: a bearer token, a per-attempt timeout combined with the caller's signal, one span. A 401 refreshes
   * the token and tries once more at once; a transient failure throws {@link TransientFailure} for the retry policy.
   */
  private async send(url: string, method: string, path: string, init: RequestInit | undefined, options: CallOptions): Promise<Response> {
    const o = this.options;
    const { abortSignal } = options;
    for (let forceRefresh = false; ; forceRefresh = true) {
      const token = await o.tokenProvider.getToken({ forceRefresh, ...(abortSignal && { abortSignal }) });
      const headers = new Headers(init?.headers);
      headers.set('authorization', `Bearer ${token}`);
      headers.set('accept-encoding', ACCEPT_ENCODING[o.compression ?? 'none']);
      const started = performance.now();
      this.requestCount += 1;
      options.onRequest?.();
      // One dependency per attempt, carrying the trace to Backstage; the timeout covers the whole body.
      const { response, failure } = await withDeadline(abortSignal, o.requestTimeoutInMs, (signal, timedOut) =>
        inSpan(
          `${method} ${path}`,
          { kind: SpanKind.CLIENT, attributes: { 'http.request.method': method, 'url.full': url.split('?')[0], 'server.address': safeHost(url) } },
          async (span): Promise<Attempt> => {
            injectTraceContext(headers);
            try {
              const answer = await this.fetchImpl(url, { ...init, headers, signal, redirect: 'error' });
              span.setAttribute('http.response.status_code', answer.status);
              const body = await answer.arrayBuffer();
              return { response: new Response(answer.status === 204 || answer.status === 304 ? null : body, { status: answer.status, headers: answer.headers }) };
            } catch (error) {
              if (abortSignal?.aborted) throw new OperationAbortedError(`Backstage ${method} ${path} aborted`, error);
              const reason = timedOut() ? 'timed out' : describeFailure(error);
              span.setAttribute('error.type', reason);
              return { failure: { reason, cause: error } };
            }
          },
        ),
      );
      const status = response?.status;
      o.metrics?.record('backstage.request.duration', performance.now() - started, { method, status: status ?? 'error' });

      if (!response) throw new TransientFailure(failure.reason, undefined, undefined, failure.cause);
      if (status === 401 && !forceRefresh) {
        await discard(response);
        this.logger.warn('Backstage answered 401; refreshing the token and retrying once', { path });
        continue;
      }
      if (status === 401 || status === 403) {
        const detail = await errorDetail(response);
        o.metrics?.increment('backstage.errors', 1, { status: status });
        throw new BackstageAuthError(
          status === 401
            ? `Backstage rejected the token (401) for ${method} ${path}${detail}. Check that backend.auth.externalAccess trusts this identity's issuer and audience.`
            : `Backstage refused ${method} ${path} (403)${detail}. Check the permission policy for this service's principal.`,
          status,
        );
      }
      if (RETRYABLE_STATUS.has(response.status)) {
        const retryAfterInMs = parseRetryAfter(response.headers.get('retry-after'));
        await discard(response);
        throw new TransientFailure(`HTTP ${response.status}`, response.status, retryAfterInMs);
      }
      // 404 is meaningful (entity absent) and left to the catalog client; other 4xx are our fault.
      if (response.status >= 500) {
        throw new BackstageUnavailableError(`Backstage failed ${method} ${path} with ${response.status}${await errorDetail(response)}`, response.status);
      }
      if (response.status >= 400 && response.status !== 404) {
        throw new BackstageRequestError(`Backstage rejected ${method} ${path} with ${response.status}${await errorDetail(response)}`, response.status);
      }
      return response;
    }
  }
}

/** What one attempt came to: a response (its body read whole, within the timeout), or why there was none. */
type Attempt = { response: Response; failure?: undefined } | { response?: undefined; failure: { reason: string; cause: unknown } };

/** A failure worth another attempt (429/502/503/504, a timeout, a network error), with what the server asked for. */
class TransientFailure extends Error {
  constructor(
    readonly reason: string,
    readonly status: number | undefined,
    readonly retryAfterInMs: number | undefined,
    cause?: unknown,
  ) {
    super(reason, cause === undefined ? undefined : { cause });
  }
}

/** Backstage's error bodies are `{ error: { name, message } }`; a short, token-free detail for messages. */
async function errorDetail(response: Response): Promise<string> {
  try {
    const text = (await response.text()).slice(0, 2000);
    const parsed = JSON.parse(text) as { error?: { message?: unknown } };
    const message = parsed?.error?.message;
    return typeof message === 'string' ? `: ${message.slice(0, 300)}` : '';
  } catch {
    return '';
  }
}

async function discard(response: Response): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // nothing to release
  }
}

function describeFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown } })?.cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  return error instanceof Error ? error.message : String(error);
}

function safeHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
}

/** The status dimension of a failed call: Backstage's answer, or why there was none. */
function failureStatus(error: unknown): number | string {
  if (error instanceof TransientFailure) return error.status ?? (error.reason === 'timed out' ? 'timeout' : 'network');
  const status = (error as { status?: unknown }).status;
  return typeof status === 'number' ? status : noAnswerStatus(error, error instanceof OperationAbortedError);
}

/** A request path as a route (`/api/catalog/entities/by-name/{ref}`): one series per endpoint, not per entity. */
export function routeOf(path: string): string {
  return path.replace(/\/(by-name|by-uid)\/.*$/, '/$1/{ref}').replace(/\/locations\/[^/]+.*$/, '/locations/{id}');
}

function safePath(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return url;
  }
}
