/**
 * The app's two queue/feed functions run the way the dev host runs them — `syncEntity` on the session trigger,
 * `projectEdges` on the change-feed trigger — with test-friendly timings that each test may override.
 */
import { projectEdges } from '../../functions/projectEdges';
import { recordHistory } from '../../functions/recordHistory';
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

type FeedTriggerOptions = Partial<Omit<ChangeFeedTriggerOptions, 'monitored' | 'leases' | 'handler'>>;

/** A function on the change feed of the process runtime's `entities` container, with the runtime's `leases`. */
function startEntitiesFeedTrigger(functionName: string, handler: ChangeFeedTriggerOptions['handler'], options: FeedTriggerOptions): ChangeFeedTrigger {
  const { cosmosClient, config } = getRuntime();
  const database = cosmosClient.database(config.cosmos.databaseName);
  return startChangeFeedTrigger({
    functionName,
    monitored: database.container(config.cosmos.entitiesContainer),
    leases: database.container(config.cosmos.leasesContainer),
    leaseContainerPrefix: `${functionName}-`,
    startFromBeginning: true,
    maxItemsPerInvocation: 100,
    feedPollDelayInMs: 100,
    retry: { maxRetryCount: 3, minimumIntervalInMs: 100, maximumIntervalInMs: 1_000 },
    ...options,
    handler,
  });
}

/**
 * `recordHistory` on the change feed of the process runtime's `entities` container, from the beginning; `observe`
 * sees each batch the feed delivers before the function does.
 */
export function startHistoryTrigger(options: FeedTriggerOptions & { observe?: (documents: unknown[]) => void } = {}): ChangeFeedTrigger {
  const { observe, ...rest } = options;
  return startEntitiesFeedTrigger(
    'recordHistory',
    (documents, context) => {
      observe?.(documents);
      return recordHistory(documents, context);
    },
    rest,
  );
}

/** `projectEdges` on the change feed of the process runtime's `entities` container, from the beginning. */
export function startProjectionTrigger(options: FeedTriggerOptions = {}): ChangeFeedTrigger {
  return startEntitiesFeedTrigger('projectEdges', (documents, context) => projectEdges(documents, context), options);
}
