import './lib/bootstrap';
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { reconcileSchedule } from '../shared/config';
import { getRuntime } from '../shared/runtime';
import { inSpan } from '../shared/telemetry';
import { contextLogger } from './lib/http';

/**
 * Timer: full reconcile of the catalog into the mirror, the safety net for lost events.
 * A failure throws, so the host's retry policy runs it again; a tripped deletion guard does not throw
 * (everything but the tombstones was synced) but is logged as an error.
 */
export async function reconcileCatalog(timer: Timer, context: InvocationContext): Promise<void> {
  const logger = contextLogger(context);
  if (timer.isPastDue) logger.warn('Reconcile timer is past due');
  const result = await inSpan('reconcileCatalog', {}, () => getRuntime().engine.reconcile());
  const { failures, ...stats } = result;
  logger.info('Scheduled reconcile finished', { ...stats, failures: failures.length });
}

app.timer('reconcileCatalog', {
  schedule: reconcileSchedule(),
  useMonitor: true,
  runOnStartup: false,
  retry: { strategy: 'exponentialBackoff', maxRetryCount: 3, minimumInterval: { seconds: 30 }, maximumInterval: { minutes: 5 } },
  handler: reconcileCatalog,
});
