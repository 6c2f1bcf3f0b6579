import type { SchedulerServiceTaskScheduleDefinitionConfig } from '@backstage/backend-plugin-api';
import type { HumanDuration } from '@backstage/types';

export interface Config {
  catalog?: {
    providers?: {
      /**
       * Bring entities authored in Cosmos DB (the `authored` container of backstage-cosmos-sync) into the catalog.
       * Read with the Backstage backend's own identity — AKS workload identity, then managed identity; no key — which
       * needs the read-only `backstage-authored` data-plane role on that container. Off unless configured.
       */
      cosmosAuthored?: {
        /** The account endpoint, e.g. https://<account>.documents.azure.com:443/ (https only). */
        endpoint: string;
        /** The database, e.g. catalog. */
        database: string;
        /** The container. Default: authored. */
        container?: string;
        /** Client id of the user-assigned managed identity (or the workload identity's app) to use. */
        clientId?: string;
        /**
         * `workload-or-managed` (default): only those two. `default`: DefaultAzureCredential, which also tries
         * environment secrets and a developer's sign-in (for running Backstage on a workstation).
         */
        credential?: 'workload-or-managed' | 'default';
        /** How often the change feed is read (each run applies everything new). Default: every 2 seconds. */
        schedule?: SchedulerServiceTaskScheduleDefinitionConfig;
        /**
         * How often a full mutation replaces everything the provider gave the catalog (it also runs once after every
         * start). Catches documents removed without a trace on the change feed. Default 30 minutes, at least 1 minute.
         */
        fullMutationInterval?: HumanDuration | string;
        /** Documents per change-feed page and per query page. Default 100, at most 1000. */
        pageSize?: number;
      };
    };
    /**
     * Publish catalog entity changes (created, updated, deleted) as CloudEvents to webhook endpoints.
     * Configured by `@backstage-cosmos-sync/plugin-catalog-backend-module-cosmos-sync`.
     */
    changeEvents?: {
      /**
       * How often the module looks for changes and delivers what is queued. Default: every second — with
       * publication generations one indexed query when nothing changed.
       */
      schedule?: SchedulerServiceTaskScheduleDefinitionConfig;
      /**
       * `generations` (default): read only what the catalog published since the last run, from the catalog's own
       * database (`final_entities.generation`, catalog-backend 4.0.3 and later); a catalog without it, or a query that
       * fails, falls back to `diff`. `diff`: always diff the catalog's uid/etag projection (through the catalog API).
       */
      detection?: 'generations' | 'diff';
      /**
       * How often the whole catalog is diffed against the snapshot — with generations, to publish deletions (which
       * generations cannot show) and as a safety net; without, the only detection. Default 10 minutes with
       * generations, 30 seconds without. `0s`: every run.
       */
      fullDiffInterval?: HumanDuration | string;
      /**
       * With generations: how often the module looks for entities the catalog no longer has (deletions leave no
       * generation behind), by joining its snapshot against the catalog's table in the database. Default 30 seconds.
       * `0s`: every run.
       */
      deletionCheckInterval?: HumanDuration | string;
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
      /**
       * Only entities matching this catalog filter predicate (`$all`, `$any`, `$not`, `$in`, `$exists`, e.g.
       * `{ kind: { $in: [Component, API] } }`) are published; one that stops matching is published as deleted. Sent
       * with the catalog query, so needs a catalog that answers predicate queries (`POST /entities/by-query`).
       * Whatever the filter, an entity annotated `backstage-cosmos-sync/exclude: "true"` is never published.
       */
      filter?: object;
      /** Where the events go. Each endpoint has its own outbox and retries. */
      endpoints: Array<{
        /** A stable name for this endpoint (it keys the endpoint's outbox). */
        name: string;
        /** e.g. https://<app>.azurewebsites.net/api/catalog/events — https, or plain http to a loopback address only. */
        url: string;
        /** Per-request timeout. Default 10 seconds. */
        timeout?: HumanDuration | string;
        auth:
          | {
              /**
               * Entra ID bearer tokens from the Backstage backend's own identity: AKS workload identity when its
               * environment variables are present, then managed identity.
               */
              type: 'entra';
              /** The receiving API's scope, e.g. api://<app-id>/.default */
              scope: string;
              /** Client id of the user-assigned managed identity (or the workload identity's app) to use. */
              clientId?: string;
              /**
               * `workload-or-managed` (default): only those two. `default`: DefaultAzureCredential, which also tries
               * environment secrets and a developer's sign-in (for running Backstage on a workstation).
               */
              credential?: 'workload-or-managed' | 'default';
            }
          | {
              /**
               * A projected Kubernetes service-account token, sent as the bearer token. The receiver trusts the
               * cluster's OIDC issuer (AUTH_FEDERATED_ISSUERS). The file is read for every request, so the kubelet's
               * rotation is picked up.
               */
              type: 'serviceAccountToken';
              /** e.g. /var/run/secrets/tokens/backstage-cosmos-sync (a projected volume with the receiver's audience). */
              tokenPath: string;
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
