/**
 * The admin operations — role `Catalog.Admin`:
 * - `POST /api/admin/reconcile[?force=true]`: the scheduled maintenance (self-check, reconcile, projection-failure
 *   replay) as a run in the background — `202` with the run and its `Location`; with `Prefer: wait=N`, the finished run
 *   when it ends within N seconds (at most 60);
 * - `GET /api/admin/reconcile/runs/{id}`: that run — queued, running (with its progress), succeeded, refused by the
 *   deletion guard, failed, or abandoned — and, once it ended, its result;
 * - `GET /api/admin/deadletters[?max&from]`, `POST /api/admin/deadletters/replay`: the sync queue's dead letters;
 * - `GET /api/admin/projection-failures[?max]`, `POST /api/admin/projection-failures/replay`: documents the edge
 *   projection could not handle;
 * - `GET /api/admin/self-check`: every dependency's token and one harmless call, and what is wrong where one fails.
 */
import { z } from 'zod';
import type { EdgeProjector } from '../edges/projector';
import type { ProjectionFailureStore } from '../edges/failure-store';
import type { Endpoints } from '../http/endpoint';
import { json, problem, ProblemType, type ApiRequest, type ApiResponse } from '../http/problem';
import { parseBody, parseParams, parseQuery, queryFlag, queryInteger } from '../http/request';
import { isFinal, type MaintenanceRuns, type RunView } from '../maintenance-runs/runs';
import { NotFoundError } from '../platform/errors';
import { abortOnly, type OperationOptions } from '../platform/options';
import type { DeadLetterAdmin } from '../queue/deadletters';
import type { SelfCheck } from '../self-check';

const reconcileQuery = z.object({ force: queryFlag.optional() });
const reconcileBody = z.object({ force: z.boolean({ error: 'must be a boolean, e.g. {"force": true}' }).optional() });
const runParams = z.object({ id: z.uuid({ error: 'must be a run id as POST /api/admin/reconcile returned it' }) });

/** The longest `Prefer: wait=` honoured: well inside the 230 s the Azure front end waits for an answer. */
export const MAX_WAIT_IN_SECONDS = 60;
/** What a caller following a run that has not ended should wait before asking again. */
const RUN_RETRY_AFTER_IN_SECONDS = '5';

const deadLettersQuery = z.object({
  max: queryInteger(1, 500).default(50),
  from: queryInteger(0, Number.MAX_SAFE_INTEGER).optional(),
});
const deadLettersReplayBody = z.object({
  max: z.int({ error: 'must be a whole number from 1 to 1000' }).min(1, 'must be a whole number from 1 to 1000').max(1000, 'must be a whole number from 1 to 1000').default(100),
  sequenceNumbers: z
    .array(z.string().regex(/^\d{1,19}$/, 'must be a decimal string'), { error: 'must be an array of decimal strings, as listed by GET /api/admin/deadletters' })
    .max(1000, 'may hold at most 1000 sequence numbers')
    .optional(),
});

/**
 * A projection failure's id is a Cosmos DB item id: 1–300 characters without control characters or any of / \ ? #,
 * which Cosmos DB refuses in ids and which would change the request's path (`web?x` would address `web`).
 */
const failureId = z.string().min(1).max(300).refine((id) => !/[/\\?#\p{Cc}]/u.test(id), 'is not a failure id');
const failuresQuery = z.object({ max: queryInteger(1, 1000).default(100) });
const failuresReplayBody = z.object({
  ids: z
    .array(failureId, { error: 'must be an array of failure ids, as listed by GET /api/admin/projection-failures' })
    .max(1000, 'may hold at most 1000 ids')
    .optional(),
});

export interface AdminApiOptions {
  endpoints: Endpoints;
  runs: MaintenanceRuns;
  deadLetters: DeadLetterAdmin;
  projector: EdgeProjector;
  projectionFailures: ProjectionFailureStore;
  selfCheck: SelfCheck;
  roles: { admin: string };
}

export class AdminApi {
  constructor(private readonly options: AdminApiOptions) {}

  /**
   * Requests a maintenance run: `202` with the queued run, `Location` (where to follow it) and `Retry-After`. With
   * `Prefer: wait=N` the answer waits up to N seconds (at most {@link MAX_WAIT_IN_SECONDS}) and is `200` with the run
   * when it has ended by then.
   */
  async reconcile(request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    return this.admin(request, options, async (call) => {
      const query = parseQuery(request, reconcileQuery);
      const body = await parseBody(request, reconcileBody);
      const waitInSeconds = preferredWait(request.headers.get('prefer'));
      const force = query.force === true || body.force === true;
      const queued = await this.options.runs.request({ ...abortOnly(call), logger: call.logger, force });
      call.logger.info('Maintenance run requested', { runId: queued.id, by: call.principal.appId ?? call.principal.subject, force });
      const run = waitInSeconds > 0 ? ((await this.options.runs.waitFor(queued.id, waitInSeconds * 1000, { ...abortOnly(call), logger: call.logger })) ?? queued) : queued;
      const location = new URL(`/api/admin/reconcile/runs/${run.id}`, request.url).toString();
      return isFinal(run.status) ? json(200, run, { 'content-location': location }) : json(202, run, { location, 'retry-after': RUN_RETRY_AFTER_IN_SECONDS });
    });
  }

  /** A maintenance run: `200` whatever its status (`Retry-After` while it has not ended), `404` when there is none. */
  async getRun(request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    return this.admin(request, options, async (call) => {
      const { id } = parseParams(request, runParams);
      const run: RunView | undefined = await this.options.runs.read(id, { ...abortOnly(call), logger: call.logger });
      if (!run) throw new NotFoundError(`No maintenance run ${id}: runs are kept for a week after their last change`);
      return json(200, run, isFinal(run.status) ? {} : { 'retry-after': RUN_RETRY_AFTER_IN_SECONDS });
    });
  }

  async listDeadLetters(request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    return this.admin(request, options, async () => {
      const { max, from } = parseQuery(request, deadLettersQuery);
      const items = await this.options.deadLetters.list({ max, ...(from !== undefined && { fromSequenceNumber: from }) });
      return json(200, { items, count: items.length });
    });
  }

  /** Body `{"max": 100}` replays up to that many; `{"sequenceNumbers": ["12", "15"]}` replays exactly those. */
  async replayDeadLetters(request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    return this.admin(request, options, async (call) => {
      const { max, sequenceNumbers } = await parseBody(request, deadLettersReplayBody);
      call.logger.info('Dead-letter replay requested', { by: call.principal.appId ?? call.principal.subject });
      return json(200, await this.options.deadLetters.replay({ ...abortOnly(call), max, ...(sequenceNumbers && { sequenceNumbers }) }));
    });
  }

  async listProjectionFailures(request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    return this.admin(request, options, async (call) => {
      const { max } = parseQuery(request, failuresQuery);
      const items = await this.options.projectionFailures.list(max, { ...abortOnly(call), logger: call.logger });
      return json(200, { items, count: items.length });
    });
  }

  /** Body `{"ids": [...]}`, or empty for all (up to 100): projects each entity again from its current mirror document. */
  async replayProjectionFailures(request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    return this.admin(request, options, async (call) => {
      const { ids } = await parseBody(request, failuresReplayBody);
      return json(200, await this.options.projector.replayFailures({ ...abortOnly(call), logger: call.logger, ...(ids && { ids }) }));
    });
  }

  /** `200` with the report when every dependency is fine; `503 self-check-failed` with the same report when one is not. */
  async selfCheck(request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    return this.admin(request, options, async (call) => {
      const report = await this.options.selfCheck.run('admin', { ...abortOnly(call), logger: call.logger });
      if (report.status === 'ok') return json(200, report);
      const failed = report.checks.filter((c) => c.status === 'failed');
      // The report's fields as extensions, but not its `status`: a problem's `status` is the HTTP status (RFC 9457).
      const { status: _status, ...extensions } = report;
      return problem(
        503,
        ProblemType.selfCheckFailed,
        'Self-check failed',
        `${failed.length} of ${report.checks.length} dependencies failed: ${failed.map((c) => `${c.dependency} (${c.problem!.title})`).join(', ')}. Each check says what to fix.`,
        extensions,
      );
    });
  }

  private admin(request: ApiRequest, options: OperationOptions, handler: Parameters<Endpoints['authorized']>[3]): Promise<ApiResponse> {
    return this.options.endpoints.authorized(request, options, [this.options.roles.admin], handler);
  }
}


/**
 * The `wait` preference of a `Prefer` header (RFC 7240), in seconds, capped at {@link MAX_WAIT_IN_SECONDS}; 0 when
 * absent or not a number (a preference that cannot be honoured is ignored, as the RFC asks).
 */
export function preferredWait(header: string | null): number {
  if (!header) return 0;
  for (const preference of header.split(',')) {
    const match = /^\s*wait\s*=\s*"?(\d{1,6})"?\s*(?:;.*)?$/i.exec(preference);
    if (match) return Math.min(Number(match[1]), MAX_WAIT_IN_SECONDS);
  }
  return 0;
}
