import './lib/bootstrap';
import { app, type InvocationContext } from '@azure/functions';
import { registrationSettings } from '../shared/platform/config';
import { HISTORY_FEED_POLL_DELAY_IN_MS } from '../shared/history/history-recorder';
import { ENTITY_FEED_PROCESSORS } from '../shared/monitoring/backlogs';
import { getRuntime } from '../shared/runtime';
import { withInvocation } from './lib/invocation';

/**
 * Cosmos DB change feed of `entities` → `history`: records the versions the sync's write path did not (docs/history.md);
 * one it finds recorded costs a point read. Its own lease prefix, so it reads the feed independently of the edge
 * projection. Throws when a batch could not be recorded, so the host
 * retries it without moving the checkpoint (a retried batch records nothing twice).
 */
export async function recordHistory(documents: unknown[], context: InvocationContext): Promise<void> {
  await withInvocation(context, (options) => getRuntime().history.recordBatch(documents, options));
}

const names = registrationSettings();
app.cosmosDB('recordHistory', {
  connection: 'CosmosDBConnection',
  databaseName: names.databaseName,
  containerName: names.entitiesContainer,
  leaseContainerName: names.leasesContainer,
  createLeaseContainerIfNotExists: false,
  leaseContainerPrefix: ENTITY_FEED_PROCESSORS.recordHistory.leasePrefix,
  maxItemsPerInvocation: 100,
  // A new deployment records the mirror as it is: every entity's current version becomes its first record.
  startFromBeginning: true,
  feedPollDelay: HISTORY_FEED_POLL_DELAY_IN_MS,
  retry: { strategy: 'exponentialBackoff', maxRetryCount: 5, minimumInterval: { seconds: 5 }, maximumInterval: { minutes: 5 } },
  handler: recordHistory,
});
