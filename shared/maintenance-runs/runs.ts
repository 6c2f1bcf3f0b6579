/**
 * The maintenance on request, in the background (the asynchronous request-reply pattern): `POST
 * /api/admin/reconcile` records a run and queues a command for it; the `syncEntity` trigger receives the command and
 * runs the maintenance; the caller follows the run at `GET /api/admin/reconcile/runs/{id}`.
 *
 * A full reconcile of a large catalog takes minutes — longer than the Azure front end waits for an HTTP answer
 * (230 s) — so the request never runs it. The command travels on the sync queue in a session of its own
 * ({@link MAINTENANCE_SESSION_ID}, which no entity id can take), so requested runs execute one at a time and never
 * hold up an entity's messages. The worker marks the run `running` (if-match, so a redelivered command cannot start it
 * twice), completes the message, and only then runs: a run longer than the message lock is never delivered again. While
 * it runs it writes a heartbeat with its progress; a run whose heartbeat stops (its worker was scaled in or restarted)
 * reads as `abandoned`, and the next scheduled reconcile does what it would have done.
 */
import { randomUUID } from 'node:crypto';
import type { ServiceBusMessage, ServiceBusReceivedMessage } from '@azure/service-bus';
import { z } from 'zod';
import type { Maintenance } from '../maintenance';
import { sleep } from '../platform/backoff';
import { CosmosOperationError, describeError, OperationAbortedError } from '../platform/errors';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { abortOnly, type OperationOptions } from '../platform/options';
import type { Settlement } from '../queue/processor';
import type { EventQueue } from '../queue/queue';
import type { ReconcileProgress } from '../sync/reconcile';
import { RUN_RETENTION_IN_SECONDS, type MaintenanceRun, type MaintenanceRunStore, type RunStatus } from './run-store';

/** The queue message subject of a maintenance command (entity messages carry `upserted` or `deleted`). */
export const MAINTENANCE_SUBJECT = 'maintenance';
/** The session of maintenance commands: entity sessions are document ids (`kind:namespace:name`), never this. */
export const MAINTENANCE_SESSION_ID = '~maintenance';

const commandSchema = z.strictObject({ runId: z.uuid() });

/** What a caller sees of a run: its document without storage fields, and `abandoned` for a run whose heartbeat stopped. */
export type RunView = Omit<MaintenanceRun, 'kind' | 'ttl' | 'status'> & { status: RunStatus | 'abandoned' };

export type RunCommandOutcome =
  | { action: 'maintenance-run'; runId: string; status: RunStatus }
  | { action: 'maintenance-skipped'; runId?: string; reason: string };

export interface MaintenanceRunsOptions {
  store: MaintenanceRunStore;
  maintenance: Maintenance;
  queue: EventQueue;
  logger: Logger;
  metrics?: Metrics;
  /** How often a running run writes its heartbeat and progress. Default 10 s. */
  heartbeatIntervalInMs?: number;
  /** A running run without a heartbeat for this long reads as `abandoned`. Default 2 min. */
  abandonedAfterInMs?: number;
  now?: () => number;
}

export interface RequestRunOptions extends OperationOptions {
  force?: boolean;
}

export class MaintenanceRuns {
  private readonly now: () => number;
  private readonly heartbeatIntervalInMs: number;
  private readonly abandonedAfterInMs: number;

  constructor(private readonly options: MaintenanceRunsOptions) {
    this.now = options.now ?? Date.now;
    this.heartbeatIntervalInMs = options.heartbeatIntervalInMs ?? 10_000;
    this.abandonedAfterInMs = options.abandonedAfterInMs ?? 120_000;
  }

  /**
   * Records a queued run and sends its command. If the command cannot be sent, the run is marked failed and the
   * {@link QueueUnavailableError} is thrown (the caller answers 503): no run is left queued that nothing will start.
   */
  async request(options: RequestRunOptions = {}): Promise<RunView> {
    const time = new Date(this.now()).toISOString();
    const run: MaintenanceRun = {
      id: randomUUID(),
      kind: 'maintenance-run',
      status: 'queued',
      force: options.force === true,
      requestedAt: time,
      updatedAt: time,
      ttl: RUN_RETENTION_IN_SECONDS,
    };
    const etag = await this.options.store.create(run, options);
    try {
      await this.options.queue.enqueue([commandMessage(run.id)], abortOnly(options));
    } catch (error) {
      const failed = { ...run, status: 'failed' as const, updatedAt: new Date(this.now()).toISOString(), error: { title: 'Could not be queued', detail: describeError(error) } };
      await this.options.store.replace(failed, etag).catch(() => undefined);
      throw error;
    }
    this.options.metrics?.increment('maintenance.runs_requested', 1, { force: run.force });
    return this.view(run);
  }

  /** The run as a caller sees it, or undefined when there is none (never requested, or expired after a week). */
  async read(id: string, options: OperationOptions = {}): Promise<RunView | undefined> {
    const found = await this.options.store.read(id, options);
    return found && this.view(found.run);
  }

  /**
   * Reads the run until it has ended or `waitInMs` has passed — after 100 ms, then twice as long each time up to once
   * a second — and returns its last state. For callers that prefer an answer with the result when the run is short
   * (`Prefer: wait=`).
   */
  async waitFor(id: string, waitInMs: number, options: OperationOptions = {}): Promise<RunView | undefined> {
    const deadline = this.now() + waitInMs;
    for (let interval = 100; ; interval = Math.min(interval * 2, 1_000)) {
      const run = await this.read(id, options);
      if (!run || isFinal(run.status) || this.now() >= deadline) return run;
      await sleep(Math.min(interval, Math.max(0, deadline - this.now())), options.abortSignal);
    }
  }

  /**
   * The worker side, for a maintenance command received from the queue: claims the run, completes the message, runs the
   * maintenance with a heartbeat, and records how it ended. A command that does not parse is dead-lettered; one for a
   * run that is unknown or already started is completed and skipped.
   */
  async execute(message: ServiceBusReceivedMessage, settle: Settlement, call: OperationOptions = {}): Promise<RunCommandOutcome> {
    const logger = (call.logger ?? this.options.logger).child({ messageId: message.messageId, operation: 'maintenance-run' });
    const parsed = commandSchema.safeParse(message.body);
    if (!parsed.success) {
      const reason = 'The maintenance command does not follow its contract: the body must be {"runId": "<uuid>"}';
      await settle.deadLetter('InvalidMessage', reason);
      logger.error('Maintenance command dead-lettered', { reason });
      return { action: 'maintenance-skipped', reason };
    }
    const { runId } = parsed.data;
    const runLogger = logger.child({ runId });
    const found = await this.options.store.read(runId, { ...abortOnly(call), logger: runLogger });
    if (!found || found.run.status !== 'queued') {
      const reason = found ? `the run is already ${found.run.status}` : 'no such run (expired, or never recorded)';
      await settle.complete();
      runLogger.warn('Maintenance command skipped', { reason });
      return { action: 'maintenance-skipped', runId, reason };
    }
    const startedAt = new Date(this.now()).toISOString();
    let run: MaintenanceRun = { ...found.run, status: 'running', startedAt, updatedAt: startedAt };
    let etag: string;
    try {
      etag = await this.options.store.replace(run, found.etag, { ...abortOnly(call), logger: runLogger });
    } catch (error) {
      // A redelivery of the same command claimed it first.
      if (error instanceof CosmosOperationError && error.statusCode === 412) {
        await settle.complete();
        return { action: 'maintenance-skipped', runId, reason: 'another delivery of the command started the run' };
      }
      throw error;
    }
    // The run is ours: nothing may deliver the command again, however long the run takes.
    await settle.complete();
    runLogger.info('Maintenance run started', { force: run.force });

    // Heartbeats: at most one write in flight; each carries the latest progress. A write that failed does not stop
    // the ones after it (the last of which records how the run ended).
    let writing: Promise<void> = Promise.resolve();
    let progress: ReconcileProgress | undefined;
    const write = (next: MaintenanceRun, options: OperationOptions) => {
      writing = writing.catch(() => undefined).then(async () => {
        etag = await this.options.store.replace(next, etag, options);
        run = next;
      });
      return writing;
    };
    const heartbeat = setInterval(() => {
      const next = { ...run, updatedAt: new Date(this.now()).toISOString(), ...(progress && { progress }) };
      write(next, { ...abortOnly(call), logger: runLogger }).catch((error: unknown) => runLogger.warn('Maintenance run heartbeat failed', { error }));
    }, this.heartbeatIntervalInMs);
    heartbeat.unref?.();

    let ended: MaintenanceRun;
    try {
      const result = await this.options.maintenance.run({
        ...abortOnly(call),
        logger: runLogger,
        force: run.force,
        trigger: 'admin',
        onProgress: (p) => (progress = p),
      });
      const refused = result.deletionGuard.tripped && !result.deletionGuard.allowed;
      ended = {
        ...run,
        status: refused ? 'refused' : 'succeeded',
        result: { ...result, failures: result.failures.slice(0, 100) },
        ...(refused && {
          error: { title: 'Mass-deletion guard refused to tombstone', detail: `${result.deletionGuard.reason}. Everything else was synced. Request a run with force=true if the removal is intended.` },
        }),
      };
    } catch (error) {
      const interrupted = error instanceof OperationAbortedError || call.abortSignal?.aborted === true;
      ended = { ...run, status: 'failed', error: { title: interrupted ? 'Interrupted' : 'Maintenance failed', detail: describeError(error) } };
      runLogger.error('Maintenance run failed', { error });
    } finally {
      clearInterval(heartbeat);
    }
    await writing.catch(() => undefined);
    const finishedAt = new Date(this.now()).toISOString();
    const { progress: _lastProgress, ...final } = ended;
    ended = { ...final, finishedAt, updatedAt: finishedAt };
    try {
      // Not cancelled with the invocation: a worker shutting down still records that its run was interrupted.
      await write(ended, { logger: runLogger });
    } catch (error) {
      runLogger.error('Could not record the end of the maintenance run; it will read as abandoned', { error, status: ended.status });
    }
    this.options.metrics?.increment('maintenance.runs_finished', 1, { status: ended.status });
    runLogger.info('Maintenance run finished', { status: ended.status, durationInMs: Date.parse(finishedAt) - Date.parse(startedAt) });
    return { action: 'maintenance-run', runId, status: ended.status };
  }

  private view(run: MaintenanceRun): RunView {
    const { kind: _kind, ttl: _ttl, ...rest } = run;
    const silentFor = this.now() - Date.parse(run.updatedAt);
    return run.status === 'running' && silentFor > this.abandonedAfterInMs ? { ...rest, status: 'abandoned' } : rest;
  }
}

/** Whether a run has ended (or will never end by itself). */
export function isFinal(status: RunView['status']): boolean {
  return status !== 'queued' && status !== 'running';
}

function commandMessage(runId: string): ServiceBusMessage {
  return {
    messageId: `maintenance:${runId}`,
    sessionId: MAINTENANCE_SESSION_ID,
    subject: MAINTENANCE_SUBJECT,
    contentType: 'application/json',
    body: { runId },
    applicationProperties: { attempt: 1 },
  };
}
