/**
 * The core's HTTP endpoints, free of any Functions types: entity reads, admin reconcile, health.
 * Every failure becomes an RFC 9457 problem; nothing internal (stack traces, tokens) leaks to callers.
 */
import { AuthenticationError, AuthorizationError, AuthUnavailableError, type Principal, type TokenValidator } from '../http/auth';
import type { EntityStore } from '../platform/cosmos';
import type { DeadLetterAdmin } from '../queue/deadletters';
import { toDot, toMermaid, type Direction, type GraphService } from '../graph/traverse';
import type { ProjectionFailureStore } from '../edges/failure-store';
import type { EdgeProjector } from '../edges/projector';
import { isTombstone, withoutSystemProperties } from '../model/documents';
import { InvalidEntityRefError, SyncServiceError } from '../platform/errors';
import type { Logger } from '../platform/logger';
import { json, problem, ProblemType, text, type ApiRequest, type ApiResponse } from '../http/problem';
import { toDocumentId, validateEntityName } from '../model/refs';
import type { SyncEngine } from '../sync/engine';

export interface ApiOptions {
  engine: SyncEngine;
  store: EntityStore;
  deadLetters: DeadLetterAdmin;
  graph: GraphService;
  projector: EdgeProjector;
  projectionFailures: ProjectionFailureStore;
  validator: TokenValidator;
  roles: { read: string; admin: string };
  logger: Logger;
  version: string;
  mode: string;
}

export interface ApiCallOptions {
  abortSignal?: AbortSignal;
  logger?: Logger;
}

export class Api {
  constructor(private readonly options: ApiOptions) {}

  /** GET /api/health — anonymous; says whether the mirror's database answers. */
  async health(_request: ApiRequest, call: ApiCallOptions = {}): Promise<ApiResponse> {
    const started = performance.now();
    let cosmos: { status: 'ok' | 'unavailable'; durationInMs: number };
    try {
      await this.options.store.container.read(call.abortSignal ? { abortSignal: call.abortSignal } : {});
      cosmos = { status: 'ok', durationInMs: Math.round(performance.now() - started) };
    } catch (error) {
      (call.logger ?? this.options.logger).warn('Health check: Cosmos DB unavailable', { error });
      cosmos = { status: 'unavailable', durationInMs: Math.round(performance.now() - started) };
    }
    const healthy = cosmos.status === 'ok';
    return json(healthy ? 200 : 503, {
      status: healthy ? 'ok' : 'degraded',
      version: this.options.version,
      mode: this.options.mode,
      checks: { cosmos },
    });
  }

  /** GET /api/entities/{kind}/{namespace}/{name} — read role; the mirror document, 404 when absent or tombstoned. */
  async getEntity(request: ApiRequest, call: ApiCallOptions = {}): Promise<ApiResponse> {
    return this.guarded(request, call, [this.options.roles.read, this.options.roles.admin], async () => {
      const { kind, namespace, name } = request.params;
      const parts = validateEntityName({ kind: kind ?? '', namespace: namespace ?? '', name: name ?? '' });
      const id = toDocumentId(parts);
      const doc = await this.options.store.read(id, call.abortSignal ? { abortSignal: call.abortSignal } : {});
      if (!doc || isTombstone(doc)) {
        return problem(404, ProblemType.notFound, 'Entity not found', `The mirror has no entity ${kind}:${namespace}/${name}`);
      }
      const etag = doc._etag ? `"${doc._etag.replace(/"/g, '')}"` : undefined;
      if (etag && request.headers.get('if-none-match') === etag) return { status: 304, headers: { etag } };
      return json(200, withoutSystemProperties(doc), etag ? { etag } : {});
    });
  }

  /** POST /api/admin/reconcile[?force=true] — admin role; runs a full reconcile and returns its stats. */
  async reconcile(request: ApiRequest, call: ApiCallOptions = {}): Promise<ApiResponse> {
    return this.guarded(request, call, [this.options.roles.admin], async (principal) => {
      const force = await readForce(request);
      if (force instanceof Error) return problem(400, ProblemType.invalidRequest, 'Invalid request', force.message);
      (call.logger ?? this.options.logger).info('Reconcile requested', { by: principal.appId ?? principal.subject, force });
      const result = await this.options.engine.reconcile({ force, ...(call.abortSignal && { abortSignal: call.abortSignal }) });
      if (result.deletionGuard.tripped && !result.deletionGuard.allowed) {
        return problem(
          409,
          ProblemType.deletionGuard,
          'Mass-deletion guard refused to tombstone',
          `${result.deletionGuard.reason}. Everything else was synced. Re-run with ?force=true if the removal is intended.`,
          { result },
        );
      }
      return json(200, result);
    });
  }

  /**
   * GET /api/graph/{kind}/{namespace}/{name}?direction=downstream|upstream|both&depth=1..10&relations=a,b
   * &format=json|mermaid|dot&limit=<max nodes> — read role.
   */
  async graph(request: ApiRequest, call: ApiCallOptions = {}): Promise<ApiResponse> {
    return this.guarded(request, call, [this.options.roles.read, this.options.roles.admin], async () => {
      const { kind, namespace, name } = request.params;
      const parts = validateEntityName({ kind: kind ?? '', namespace: namespace ?? '', name: name ?? '' });
      const q = request.query;
      const bad = (detail: string) => problem(400, ProblemType.invalidRequest, 'Invalid graph query', detail);
      const direction = q.get('direction') ?? 'downstream';
      if (!['downstream', 'upstream', 'both'].includes(direction)) return bad("'direction' must be downstream, upstream or both");
      const depth = boundedInteger(q.get('depth'), 3, 1, 10);
      if (depth instanceof Error) return bad(`'depth': ${depth.message}`);
      const limit = boundedInteger(q.get('limit'), 500, 1, 5000);
      if (limit instanceof Error) return bad(`'limit': ${limit.message}`);
      const format = q.get('format') ?? 'json';
      if (!['json', 'mermaid', 'dot'].includes(format)) return bad("'format' must be json, mermaid or dot");
      const relationsParam = q.get('relations');
      const relations = relationsParam === null ? undefined : relationsParam.split(',').map((r) => r.trim()).filter(Boolean);
      if (relations && (relations.length === 0 || relations.length > 20 || relations.some((r) => !/^[A-Za-z][A-Za-z0-9_.-]{0,62}$/.test(r)))) {
        return bad("'relations' must be a comma-separated list of up to 20 relation types, e.g. dependsOn,consumesApi");
      }
      const result = await this.options.graph.traverse(
        { root: toDocumentId(parts), direction: direction as Direction, depth, maxNodes: limit, ...(relations && { relations }) },
        call.abortSignal ? { abortSignal: call.abortSignal } : {},
      );
      if (!result) return problem(404, ProblemType.notFound, 'Entity not found', `The mirror has no entity ${kind}:${namespace}/${name}`);
      if (format === 'mermaid') return text(toMermaid(result), 'text/plain; charset=utf-8');
      if (format === 'dot') return text(toDot(result), 'text/vnd.graphviz; charset=utf-8');
      return json(200, result);
    });
  }

  /** GET /api/admin/projection-failures[?max=100] — admin role. */
  async listProjectionFailures(request: ApiRequest, call: ApiCallOptions = {}): Promise<ApiResponse> {
    return this.guarded(request, call, [this.options.roles.admin], async () => {
      const max = boundedInteger(request.query.get('max'), 100, 1, 1000);
      if (max instanceof Error) return problem(400, ProblemType.invalidRequest, 'Invalid request', `'max': ${max.message}`);
      const items = await this.options.projectionFailures.list(max);
      return json(200, { items, count: items.length });
    });
  }

  /**
   * POST /api/admin/projection-failures/replay — admin role. Body `{"ids": [...]}` or empty for all (up to 100):
   * projects each entity again from its current mirror document and removes the record on success.
   */
  async replayProjectionFailures(request: ApiRequest, call: ApiCallOptions = {}): Promise<ApiResponse> {
    return this.guarded(request, call, [this.options.roles.admin], async () => {
      const body = await readJsonObject(request, ['ids']);
      if (body instanceof Error) return problem(400, ProblemType.invalidRequest, 'Invalid request', body.message);
      const ids = body.ids;
      if (ids !== undefined && (!Array.isArray(ids) || ids.length > 1000 || !ids.every(isFailureId))) {
        return problem(400, ProblemType.invalidRequest, 'Invalid request', "'ids' must be an array of failure ids, as listed by GET /api/admin/projection-failures");
      }
      const { replayed, failed } = await this.options.projector.replayFailures((id) => this.options.store.read(id), {
        ...(ids !== undefined && { ids: ids as string[] }),
        ...(call.abortSignal && { abortSignal: call.abortSignal }),
      });
      return json(200, { replayed, failed });
    });
  }

  /** GET /api/admin/deadletters[?max=50&from=<sequence number>] — admin role; peeks the dead-letter queue. */
  async listDeadLetters(request: ApiRequest, call: ApiCallOptions = {}): Promise<ApiResponse> {
    return this.guarded(request, call, [this.options.roles.admin], async () => {
      const max = boundedInteger(request.query.get('max'), 50, 1, 500);
      const from = boundedInteger(request.query.get('from'), undefined, 0, Number.MAX_SAFE_INTEGER);
      if (max instanceof Error || from instanceof Error) {
        return problem(400, ProblemType.invalidRequest, 'Invalid request', (max instanceof Error ? max : (from as Error)).message);
      }
      const items = await this.options.deadLetters.list({ max, ...(from !== undefined && { fromSequenceNumber: from }) });
      return json(200, { items, count: items.length });
    });
  }

  /**
   * POST /api/admin/deadletters/replay — admin role. Body `{"max": 100}` replays up to that many;
   * `{"sequenceNumbers": ["12", "15"]}` replays exactly those.
   */
  async replayDeadLetters(request: ApiRequest, call: ApiCallOptions = {}): Promise<ApiResponse> {
    return this.guarded(request, call, [this.options.roles.admin], async (principal) => {
      const body = await readJsonObject(request, ['max', 'sequenceNumbers']);
      if (body instanceof Error) return problem(400, ProblemType.invalidRequest, 'Invalid request', body.message);
      const max = body.max === undefined ? 100 : body.max;
      if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > 1000) {
        return problem(400, ProblemType.invalidRequest, 'Invalid request', "'max' must be a whole number from 1 to 1000");
      }
      const sequenceNumbers = body.sequenceNumbers;
      if (
        sequenceNumbers !== undefined &&
        (!Array.isArray(sequenceNumbers) || sequenceNumbers.length > 1000 || !sequenceNumbers.every((n) => typeof n === 'string' && /^\d{1,19}$/.test(n)))
      ) {
        return problem(400, ProblemType.invalidRequest, 'Invalid request', "'sequenceNumbers' must be an array of decimal strings, as listed by GET /api/admin/deadletters");
      }
      (call.logger ?? this.options.logger).info('Dead-letter replay requested', { by: principal.appId ?? principal.subject });
      const result = await this.options.deadLetters.replay({
        max,
        ...(sequenceNumbers !== undefined && { sequenceNumbers: sequenceNumbers as string[] }),
        ...(call.abortSignal && { abortSignal: call.abortSignal }),
      });
      return json(200, result);
    });
  }

  private async guarded(
    request: ApiRequest,
    call: ApiCallOptions,
    roles: readonly string[],
    handler: (principal: Principal) => Promise<ApiResponse>,
  ): Promise<ApiResponse> {
    const logger = call.logger ?? this.options.logger;
    try {
      const principal = await this.options.validator.authenticate(request.headers.get('authorization'), roles);
      const repeated = repeatedParameter(request.query);
      if (repeated !== undefined) {
        return problem(400, ProblemType.invalidRequest, 'Invalid request', `Query parameter '${repeated}' must not be repeated`);
      }
      return await handler(principal);
    } catch (error) {
      return toProblem(error, logger);
    }
  }
}

/** Maps an error to its problem response; unknown errors are logged and answered without detail. */
export function toProblem(error: unknown, logger: Logger): ApiResponse {
  if (error instanceof AuthenticationError) {
    return problem(401, ProblemType.unauthorized, 'Unauthorized', error.message, {}, { 'www-authenticate': error.wwwAuthenticate });
  }
  if (error instanceof AuthorizationError) {
    return problem(403, ProblemType.forbidden, 'Forbidden', error.message, { requiredRoles: error.requiredRoles });
  }
  if (error instanceof InvalidEntityRefError) {
    return problem(400, ProblemType.invalidEntityRef, 'Invalid entity reference', error.message);
  }
  if (error instanceof AuthUnavailableError || (error instanceof SyncServiceError && error.transient)) {
    logger.warn('Request failed on a dependency', { error });
    return problem(503, ProblemType.unavailable, 'Service unavailable', 'A dependency is unavailable; try again later.', {}, { 'retry-after': '5' });
  }
  logger.error('Request failed', { error });
  return problem(500, ProblemType.internal, 'Internal error', 'The request failed; the error was logged.');
}

function boundedInteger<T extends number | undefined>(value: string | null, fallback: T, min: number, max: number): number | T | Error {
  if (value === null || value === '') return fallback;
  if (!/^\d+$/.test(value)) return new Error(`'${value}' is not a whole number`);
  const n = Number(value);
  if (n < min || n > max) return new Error(`${n} is outside ${min}–${max}`);
  return n;
}

/** The first query parameter given more than once: which value counts would be a guess (and proxies guess differently). */
function repeatedParameter(query: URLSearchParams): string | undefined {
  const seen = new Set<string>();
  for (const name of query.keys()) {
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}

/**
 * The body as a JSON object with only the `allowed` fields (empty = `{}`). An unknown field is refused rather than
 * ignored, so a typo such as `sequenceNumber` cannot turn "replay these" into "replay everything".
 */
async function readJsonObject(request: ApiRequest, allowed: readonly string[]): Promise<Record<string, unknown> | Error> {
  const text = (await request.text()).trim();
  if (!text) return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return new Error('The body must be a JSON object or empty');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return new Error('The body must be a JSON object');
  const unknown = Object.keys(body).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) {
    return new Error(`Unknown field ${unknown.map((key) => JSON.stringify(key)).join(', ')}; the body may hold ${allowed.map((key) => `'${key}'`).join(', ')}`);
  }
  return body as Record<string, unknown>;
}

/**
 * A projection failure's id is a Cosmos DB item id: 1–300 characters without control characters or any of / \ ? #,
 * which Cosmos DB refuses in ids and which would change the request's path (`web?x` would address `web`).
 */
function isFailureId(id: unknown): boolean {
  return typeof id === 'string' && id.length > 0 && id.length <= 300 && !/[/\\?#\p{Cc}]/u.test(id);
}

async function readForce(request: ApiRequest): Promise<boolean | Error> {
  const query = request.query.get('force');
  if (query !== null && !['true', 'false', ''].includes(query)) return new Error("Query parameter 'force' must be true or false");
  const body = await readJsonObject(request, ['force']);
  if (body instanceof Error) return new Error(`${body.message}, e.g. {"force": true}`);
  if (body.force !== undefined && typeof body.force !== 'boolean') return new Error("'force' must be a boolean");
  return query === 'true' || query === '' || body.force === true;
}
