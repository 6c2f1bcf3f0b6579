import './lib/bootstrap';
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { registrationSettings } from '../shared/platform/config';
import { getRuntime } from '../shared/runtime';
import { withInvocation } from './lib/invocation';

/**
 * Timer (every minute by default): how far behind the change-feed processors and the sync queue are — the estimated
 * backlog per lease of `projectEdges` and `recordHistory`, the queue's oldest message and its dead letters — as
 * metrics and one log line (docs/operations.md#backlogs). Never throws: a part it cannot measure is logged.
 */
export async function monitorBacklogs(_timer: Timer, context: InvocationContext): Promise<void> {
  await withInvocation(context, async (options) => {
    await getRuntime().backlogs.measure(options);
  });
}

app.timer('monitorBacklogs', {
  schedule: registrationSettings().monitorSchedule,
  runOnStartup: false,
  handler: monitorBacklogs,
});
