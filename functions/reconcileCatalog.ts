import './lib/bootstrap';
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { reconcileSchedule } from '../shared/platform/config';
import { getRuntime } from '../shared/runtime';
import { inSpan } from '../shared/platform/telemetry';
import { contextLogger } from './lib/http';

/**
 * Timer: full reconcile of the catalog into the mirror, the safety net for lost events — and a replay of recorded
 * projection failures, the safety net for edges.
 * A failure throws, so the host's retry policy runs it again; a tripped deletion guard does not throw
 * (everything but the tombstones was synced) but is logged as an error.
 */
export async function reconcileCatalog(timer: Timer, context: InvocationContext): Promise<void> {
  const logger = contextLogger(context);
  if (timer.isPastDue) logger.warn('Reconcile timer is past due');
  const runtime = getRuntime();
  const result = await inSpan('reconcileCatalog', {}, () => runtime.engine.reconcile());
  const { failures, ...stats } = result;
  // Edges too: projections that failed since the last run (e.g. during an outage) are replayed.
  const projections = await runtime.projector.replayFailures((id) => runtime.entityStore.read(id));
  logger.info('Scheduled reconcile finished', { ...stats, failures: failures.length, projectionsReplayed: projections.replayed.length });
  if (projections.failed.length > 0) logger.warn('Some projection failures could not be replayed yet', { failed: projections.failed.slice(0, 20) });
}

app.timer('reconcileCatalog', {
  schedule: reconcileSchedule(),
  useMonitor: true,
  runOnStartup: false,
  retry: { strategy: 'exponentialBackoff', maxRetryCount: 3, minimumInterval: { seconds: 30 }, maximumInterval: { minutes: 5 } },
  handler: reconcileCatalog,
});
