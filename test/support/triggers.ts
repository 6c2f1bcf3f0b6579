/**
 * The app's two queue/feed functions run the way the dev host runs them — `syncEntity` on the session trigger,
 * `projectEdges` on the change-feed trigger — with test-friendly timings that each test may override.
 */
import { projectEdges } from '../../functions/projectEdges';
import { syncEntity } from '../../functions/syncEntity';
import { startChangeFeedTrigger, type ChangeFeedTrigger, type ChangeFeedTriggerOptions } from '../../local/functions-host/cosmos';
import { startSessionTrigger, type SessionTrigger, type SessionTriggerOptions } from '../../local/functions-host/service-bus';
import { getRuntime } from '../../shared/runtime';

/** `syncEntity` on the `entity-sync` queue of the broker at `connection`. */
export function startSyncTrigger(connection: string, options: Partial<Omit<SessionTriggerOptions, 'connection' | 'handler'>> = {}): SessionTrigger {
  return startSessionTrigger({
    connection,
    queueName: 'entity-sync',
    functionName: 'syncEntity',
    sessionIdleTimeoutInMs: 200,
    ...options,
    handler: (input, context) => syncEntity(input, context),
  });
}

/** `projectEdges` on the change feed of the process runtime's `entities` container, from the beginning. */
export function startProjectionTrigger(options: Partial<Omit<ChangeFeedTriggerOptions, 'monitored' | 'leases' | 'handler'>> = {}): ChangeFeedTrigger {
  const { cosmosClient, config } = getRuntime();
  const database = cosmosClient.database(config.cosmos.databaseName);
  return startChangeFeedTrigger({
    functionName: 'projectEdges',
    monitored: database.container(config.cosmos.entitiesContainer),
    leases: database.container(config.cosmos.leasesContainer),
    leaseContainerPrefix: 'projectEdges-',
    startFromBeginning: true,
    maxItemsPerInvocation: 100,
    feedPollDelayInMs: 100,
    retry: { maxRetryCount: 3, minimumIntervalInMs: 100, maximumIntervalInMs: 1_000 },
    ...options,
    handler: (documents, context) => projectEdges(documents, context),
  });
}
