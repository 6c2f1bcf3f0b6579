/**
 * The scheduled safety net, in one place so the timer and `POST /api/admin/reconcile` do the same thing: a full
 * reconcile of the catalog into the mirror (for events that were lost), then a replay of recorded projection
 * failures (for edges that could not be written during an outage).
 */
import type { EdgeProjector } from './edges/projector';
import type { Logger } from './platform/logger';
import type { ReconcileOptions, ReconcileResult, Reconciler } from './sync/reconcile';

export interface MaintenanceResult extends ReconcileResult {
  projectionFailures: { replayed: number; failed: Array<{ id: string; error: string }> };
}

export interface MaintenanceOptions {
  reconciler: Reconciler;
  projector: EdgeProjector;
  logger: Logger;
}

export class Maintenance {
  constructor(private readonly options: MaintenanceOptions) {}

  async run(options: ReconcileOptions = {}): Promise<MaintenanceResult> {
    const logger = options.logger ?? this.options.logger;
    const result = await this.options.reconciler.reconcile(options);
    const projections = await this.options.projector.replayFailures(options);
    if (projections.failed.length > 0) logger.warn('Some projection failures could not be replayed yet', { failed: projections.failed.slice(0, 20) });
    return { ...result, projectionFailures: { replayed: projections.replayed.length, failed: projections.failed.slice(0, 100) } };
  }
}
