/**
 * The scheduled safety net, in one place so the timer and `POST /api/admin/reconcile` do the same thing: the
 * self-check (so a missing role or a refused token is named before it fails a sync), a full reconcile of the catalog
 * into the mirror (for events that were lost), then a replay of recorded projection failures (for edges that could
 * not be written during an outage). A failed self-check is reported and logged; the reconcile runs regardless.
 */
import type { EdgeProjector } from './edges/projector';
import type { Logger } from './platform/logger';
import type { SelfCheck, SelfCheckTrigger } from './self-check';
import type { ReconcileOptions, ReconcileResult, Reconciler } from './sync/reconcile';

export interface MaintenanceResult extends ReconcileResult {
  projectionFailures: { replayed: number; failed: Array<{ id: string; error: string }> };
  /** The self-check that ran first: its status and the dependencies that failed (details in the logs). */
  selfCheck: { status: 'ok' | 'failed'; failed: string[] };
}

export interface MaintenanceOptions {
  reconciler: Reconciler;
  projector: EdgeProjector;
  selfCheck: SelfCheck;
  logger: Logger;
}

export interface MaintenanceRunOptions extends ReconcileOptions {
  /** Who asked (the timer, or an admin): recorded with the self-check's metrics. */
  trigger?: Extract<SelfCheckTrigger, 'timer' | 'admin'>;
}

export class Maintenance {
  constructor(private readonly options: MaintenanceOptions) {}

  async run(options: MaintenanceRunOptions = {}): Promise<MaintenanceResult> {
    const logger = options.logger ?? this.options.logger;
    const check = await this.options.selfCheck.run(options.trigger ?? 'timer', { ...(options.abortSignal && { abortSignal: options.abortSignal }), logger });
    const selfCheck = { status: check.status, failed: check.checks.filter((c) => c.status === 'failed').map((c) => c.dependency) };
    const result = await this.options.reconciler.reconcile(options);
    const projections = await this.options.projector.replayFailures(options);
    if (projections.failed.length > 0) logger.warn('Some projection failures could not be replayed yet', { failed: projections.failed.slice(0, 20) });
    return { ...result, projectionFailures: { replayed: projections.replayed.length, failed: projections.failed.slice(0, 100) }, selfCheck };
  }
}
