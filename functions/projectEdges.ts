import './lib/bootstrap';
import { app, type InvocationContext } from '@azure/functions';
import { registrationSettings } from '../shared/platform/config';
import { PROJECTION_FEED_POLL_DELAY_IN_MS } from '../shared/edges/projector';
import { ENTITY_FEED_PROCESSORS } from '../shared/monitoring/backlogs';
import { getRuntime } from '../shared/runtime';
import { withInvocation } from './lib/invocation';

/**
 * Cosmos DB change feed of `entities` → `edges` (only the difference), drift repair, failures recorded for replay.
 * Throws only when a batch could not even be recorded, so the host retries it without moving the checkpoint.
 */
export async function projectEdges(documents: unknown[], context: InvocationContext): Promise<void> {
  await withInvocation(context, (options) => getRuntime().projector.projectBatch(documents, options));
}

const names = registrationSettings();
app.cosmosDB('projectEdges', {
  connection: 'CosmosDBConnection',
  databaseName: names.databaseName,
  containerName: names.entitiesContainer,
  leaseContainerName: names.leasesContainer,
  // With Entra auth the trigger cannot create containers; infrastructure declares `leases`.
  createLeaseContainerIfNotExists: false,
  leaseContainerPrefix: ENTITY_FEED_PROCESSORS.projectEdges.leasePrefix,
  maxItemsPerInvocation: 100,
  // A new deployment projects everything already in the mirror once.
  startFromBeginning: true,
  feedPollDelay: PROJECTION_FEED_POLL_DELAY_IN_MS,
  retry: { strategy: 'exponentialBackoff', maxRetryCount: 5, minimumInterval: { seconds: 5 }, maximumInterval: { minutes: 5 } },
  handler: projectEdges,
});
