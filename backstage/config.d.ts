import type { SchedulerServiceTaskScheduleDefinitionConfig } from '@backstage/backend-plugin-api';
import type { HumanDuration } from '@backstage/types';

export interface Config {
  catalog?: {
    /**
     * Publish catalog entity changes (created, updated, deleted) as CloudEvents to webhook endpoints.
     * Configured by `@backstage-cosmos-sync/plugin-catalog-backend-module-change-events`.
     */
    changeEvents?: {
      /** How often the catalog is diffed against the last snapshot. Default: every 30 seconds. */
      schedule?: SchedulerServiceTaskScheduleDefinitionConfig;
      /** Events per delivery request. Default 100, at most 500. */
      batchSize?: number;
      /** Entities per catalog page while diffing. Default 500. */
      pageSize?: number;
      /** Undelivered events older than this are dropped with a warning. Default 24 hours. */
      maxAge?: HumanDuration | string;
      /** Backoff between failed deliveries to one endpoint: doubles from `initialDelay` up to `maxDelay`. */
      retry?: {
        initialDelay?: HumanDuration | string;
        maxDelay?: HumanDuration | string;
      };
      /** The CloudEvents `source`; defaults to `backend.baseUrl`. */
      source?: string;
      /** Where the events go. Each endpoint has its own outbox and retries. */
      endpoints: Array<{
        /** A stable name for this endpoint (it keys the endpoint's outbox). */
        name: string;
        /** e.g. https://<app>.azurewebsites.net/api/catalog/events */
        url: string;
        /** Per-request timeout. Default 10 seconds. */
        timeout?: HumanDuration | string;
        auth:
          | {
              /** Entra ID bearer tokens from the Backstage backend's identity (DefaultAzureCredential). */
              type: 'entra';
              /** The receiving API's scope, e.g. api://<app-id>/.default */
              scope: string;
              /** Client id of a user-assigned managed identity to use. */
              clientId?: string;
            }
          | {
              /** Standard Webhooks HMAC signatures, for senders that cannot get Entra tokens. */
              type: 'standardWebhooks';
              /**
               * The shared secret, whsec_… (base64).
               * @visibility secret
               */
              secret: string;
            };
      }>;
    };
  };
}
