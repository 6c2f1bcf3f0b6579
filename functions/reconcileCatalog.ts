import './lib/bootstrap';
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { registrationSettings } from '../shared/platform/config';
import { inSpan } from '../shared/platform/telemetry';
import { getRuntime } from '../shared/runtime';
import { withInvocation } from './lib/invocation';

/**
 * Timer: the scheduled maintenance — a full reconcile of the catalog into the mirror (the safety net for lost events),
 * then a replay of recorded projection failures (the safety net for edges); `POST /api/admin/reconcile` runs the same.
 * A failure throws, so the host's retry policy runs it again; a tripped deletion guard does not throw
 * (everything but the tombstones was synced) but is logged as an error.
 */
export async function reconcileCatalog(timer: Timer, context: InvocationContext): Promise<void> {
  await withInvocation(context, async (options) => {
    if (timer.isPastDue) options.logger.warn('Reconcile timer is past due');
    const result = await inSpan('reconcileCatalog', {}, () => getRuntime().maintenance.run(options));
    const { failures, projectionFailures, ...stats } = result;
    options.logger.info('Scheduled reconcile finished', { ...stats, failures: failures.length, projectionsReplayed: projectionFailures.replayed });
  });
}

app.timer('reconcileCatalog', {
  schedule: registrationSettings().reconcileSchedule,
  useMonitor: true,
  runOnStartup: false,
  retry: { strategy: 'exponentialBackoff', maxRetryCount: 3, minimumInterval: { seconds: 30 }, maximumInterval: { minutes: 5 } },
  handler: reconcileCatalog,
});
