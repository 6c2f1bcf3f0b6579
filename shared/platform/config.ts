/**
 * Configuration: every setting is read from the environment (Functions app settings) and validated once, at
 * start-up, by the one schema of settings.ts (each setting's rule and default, and the rules across settings) into
 * one typed {@link AppConfig}. A bad configuration raises one {@link ConfigurationError} that names every problem.
 *
 * Function registrations (trigger names, schedules) and the telemetry bootstrap run before the full validation, at
 * module load; they read their few settings through the same field rules and defaults ({@link registrationSettings},
 * {@link telemetrySettings}), falling back to the default when a value is invalid — which the full validation reports.
 *
 * Settings that Azure Functions itself reads for trigger connections use the host's identity-based names
 * (`CosmosDBConnection__accountEndpoint`, `ServiceBusConnection__fullyQualifiedNamespace`), and the SDK clients
 * read the same settings, so one value configures both. See docs/configuration.md for the full list.
 */
import type { z } from 'zod';
import type { AuthoringPolicy } from '../authored/validate';
import type { BackstageCompression } from '../sync/catalog-reader';
import type { SyncScopeSettings } from '../sync/scope';
import { ConfigurationError, type ConfigurationIssue } from './errors';
import { fields, parseCosmosConnectionString, settingsSchema, type IntakeAuthMode, type SettingName, type Settings } from './settings';

export type AppMode = 'production' | 'local';
export type Environment = Record<string, string | undefined>;

export interface CosmosConfig {
  endpoint: string;
  /** Account key; only from a connection string, only in local mode. */
  key?: string;
  databaseName: string;
  entitiesContainer: string;
  edgesContainer: string;
  leasesContainer: string;
  /** The webhook replay guard's records (one per accepted webhook-id, with a TTL). */
  deliveriesContainer: string;
  /** Entities authored in Cosmos DB, for the Backstage entity provider (docs/authoring.md). */
  authoredContainer: string;
  /** One record per version of every mirrored entity (docs/history.md). */
  historyContainer: string;
  /** Maintenance runs requested through the admin API (`POST /api/admin/reconcile`), a week each. */
  runsContainer: string;
  /** PEM file of a CA to trust for the local emulator's certificate; local mode only. */
  caCertPath?: string;
  /** The SDK's own retries of 429 per request, and their cumulative wait. */
  maxRetryAttempts: number;
  maxRetryWaitInMs: number;
  requestTimeoutInMs: number;
  /** Rounds of retrying the writes the SDK's own 429 retries gave up on (only those), with backoff. */
  throttleRetry: { maxRetries: number; baseDelayInMs: number; maxDelayInMs: number };
  /** A call that takes longer is logged with its diagnostics (point operations, and queries or feed reads). */
  slowCallThresholds: SlowCallThresholds;
}

export interface SlowCallThresholds {
  pointOperationInMs: number;
  queryInMs: number;
}

export interface BackstageConfig {
  baseUrl: string;
  /** Entra scope of the Backstage app registration, e.g. `api://<app-id>/.default`. */
  tokenScope?: string;
  /** A static external-access token; local mode only. */
  staticToken?: string;
  requestTimeoutInMs: number;
  maxRetries: number;
  retryBaseDelayInMs: number;
  retryMaxDelayInMs: number;
  pageSize: number;
  /** The encoding the reader asks Backstage's answers in (`Accept-Encoding`): `none` (default), `gzip` or `br`. */
  compression: BackstageCompression;
}

/** An issuer whose tokens this API accepts, and how its tokens carry roles. */
export interface TrustedIssuer {
  /** `entra`: Entra ID (only access tokens: `azp`/`appid` required). `federated`: any other OpenID issuer. */
  kind: 'entra' | 'federated';
  /** For logs and errors. */
  name: string;
  /** The `iss` values of this trust (Entra's v1 and v2 issuers may both be listed). */
  issuers: string[];
  audiences: string[];
  /** Signing keys; by default from the first issuer's OpenID discovery document. */
  jwksUri?: string;
  /** The claim that carries roles: `roles` (Entra), `scp` or `groups` (Okta), `sub` (a Kubernetes service account)… */
  rolesClaim: string;
  /** Claim value → app roles; without it the claim's values are the roles. */
  roleMap?: Record<string, string[]>;
}

export interface AuthConfig {
  trusts: TrustedIssuer[];
  /** Role → the client ids (`azp`/`appid`/`client_id`) that may hold it; roles not listed are not pinned. */
  roleClients: Record<string, string[]>;
  readRole: string;
  adminRole: string;
  senderRole: string;
  /** Writes entities through the authoring API. */
  writeRole: string;
  clockToleranceInSeconds: number;
}

export interface ServiceBusConfig {
  /** e.g. `<namespace>.servicebus.windows.net` (identity-based). */
  fullyQualifiedNamespace?: string;
  /** Local broker only. */
  connectionString?: string;
  queueName: string;
  sendTimeoutInMs: number;
}

export interface IntakeConfig {
  authModes: IntakeAuthMode[];
  /** Standard Webhooks secrets (`whsec_…`); several while rotating. */
  webhookSecrets: string[];
  webhookToleranceInSeconds: number;
  maxBodyBytes: number;
  maxBatchEvents: number;
  /**
   * A request carrying at least this many entities (after coalescing) is queued as batch messages of up to
   * 100 entities, synced a batch at a time (a burst costs what a reconcile of it costs);
   * fewer go one message per entity. 0: always one message per entity.
   */
  batchSyncMinEvents: number;
}

export interface TelemetrySettings {
  connectionString?: string;
  /** Ingestion authenticated with Entra (the authentication string's `Authorization=AAD`). */
  entraAuthentication: boolean;
  /** Share of traces kept, 0–1. */
  samplingRatio: number;
  /** Rate limit of sampled traces per second; 0 = use `samplingRatio` only. */
  tracesPerSecond: number;
}

export interface QueueRetryConfig {
  /** Attempts per message (the first delivery included) before it is dead-lettered. */
  maxAttempts: number;
  baseDelayInMs: number;
  maxDelayInMs: number;
}

export interface ReconcileConfig {
  schedule: string;
  maxDeleteRatio: number;
  fetchBatchSize: number;
  concurrency: number;
  /** A run with at least this many entities to write writes them as batch requests, in bulk groups; 0 = never. */
  bulkMinEntities: number;
}

export interface AppConfig {
  mode: AppMode;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Client id of the user-assigned managed identity; absent = system-assigned / developer credential. */
  managedIdentityClientId?: string;
  cosmos: CosmosConfig;
  backstage: BackstageConfig;
  sync: { tombstoneTtlInSeconds: number; maxAttempts: number; scope: SyncScopeSettings };
  /** What the authoring API accepts (docs/authoring.md). */
  authoring: AuthoringPolicy;
  /** The entity history (docs/history.md): how long its records are kept. */
  history: { retentionInSeconds: number };
  reconcile: ReconcileConfig;
  auth: AuthConfig;
  serviceBus: ServiceBusConfig;
  intake: IntakeConfig;
  queueRetry: QueueRetryConfig;
  telemetry: TelemetrySettings;
}

/** The typed configuration the settings describe (called only on valid settings). */
function toAppConfig(s: Settings): AppConfig {
  const fromConnectionString = s.CosmosDBConnection ? parseCosmosConnectionString(s.CosmosDBConnection) : undefined;
  return {
    mode: s.APP_MODE,
    logLevel: s.LOG_LEVEL,
    ...(s.AZURE_CLIENT_ID && { managedIdentityClientId: s.AZURE_CLIENT_ID }),
    cosmos: {
      endpoint: (s.CosmosDBConnection__accountEndpoint ?? fromConnectionString!.endpoint).trim(),
      ...(fromConnectionString && { key: fromConnectionString.key }),
      databaseName: s.COSMOS_DATABASE_NAME,
      entitiesContainer: s.COSMOS_ENTITIES_CONTAINER,
      edgesContainer: s.COSMOS_EDGES_CONTAINER,
      leasesContainer: s.COSMOS_LEASES_CONTAINER,
      deliveriesContainer: s.COSMOS_DELIVERIES_CONTAINER,
      authoredContainer: s.COSMOS_AUTHORED_CONTAINER,
      historyContainer: s.COSMOS_HISTORY_CONTAINER,
      runsContainer: s.COSMOS_RUNS_CONTAINER,
      ...(s.COSMOS_CA_CERT_PATH && { caCertPath: s.COSMOS_CA_CERT_PATH }),
      maxRetryAttempts: s.COSMOS_MAX_RETRY_ATTEMPTS,
      maxRetryWaitInMs: s.COSMOS_MAX_RETRY_WAIT_MS,
      requestTimeoutInMs: s.COSMOS_REQUEST_TIMEOUT_MS,
      throttleRetry: {
        maxRetries: s.COSMOS_THROTTLE_RETRIES,
        baseDelayInMs: s.COSMOS_THROTTLE_RETRY_BASE_DELAY_MS,
        maxDelayInMs: s.COSMOS_THROTTLE_RETRY_MAX_DELAY_MS,
      },
      slowCallThresholds: { pointOperationInMs: s.COSMOS_SLOW_POINT_OPERATION_MS, queryInMs: s.COSMOS_SLOW_QUERY_MS },
    },
    backstage: {
      baseUrl: s.BACKSTAGE_BASE_URL.replace(/\/+$/, ''),
      ...(s.BACKSTAGE_TOKEN_SCOPE && { tokenScope: s.BACKSTAGE_TOKEN_SCOPE }),
      ...(s.BACKSTAGE_STATIC_TOKEN && { staticToken: s.BACKSTAGE_STATIC_TOKEN }),
      requestTimeoutInMs: s.BACKSTAGE_REQUEST_TIMEOUT_MS,
      maxRetries: s.BACKSTAGE_MAX_RETRIES,
      retryBaseDelayInMs: s.BACKSTAGE_RETRY_BASE_DELAY_MS,
      retryMaxDelayInMs: s.BACKSTAGE_RETRY_MAX_DELAY_MS,
      pageSize: s.BACKSTAGE_PAGE_SIZE,
      compression: s.BACKSTAGE_COMPRESSION,
    },
    sync: {
      tombstoneTtlInSeconds: s.SYNC_TOMBSTONE_TTL_SECONDS,
      maxAttempts: s.SYNC_MAX_ATTEMPTS,
      scope: {
        includeKinds: s.SYNC_INCLUDE_KINDS,
        excludeKinds: s.SYNC_EXCLUDE_KINDS,
        includeNamespaces: s.SYNC_INCLUDE_NAMESPACES,
        excludeNamespaces: s.SYNC_EXCLUDE_NAMESPACES,
        ...(s.SYNC_CATALOG_FILTER && { catalogFilter: s.SYNC_CATALOG_FILTER }),
      },
    },
    authoring: { kinds: s.AUTHORED_KINDS, namespaces: s.AUTHORED_NAMESPACES, maxBytes: s.AUTHORED_MAX_BYTES },
    history: { retentionInSeconds: s.HISTORY_RETENTION_DAYS * 86_400 },
    reconcile: {
      schedule: s.RECONCILE_SCHEDULE,
      maxDeleteRatio: s.RECONCILE_MAX_DELETE_RATIO,
      fetchBatchSize: s.RECONCILE_FETCH_BATCH_SIZE,
      concurrency: s.RECONCILE_CONCURRENCY,
      bulkMinEntities: s.RECONCILE_BULK_MIN_ENTITIES,
    },
    auth: {
      trusts: [
        {
          kind: 'entra',
          name: 'entra',
          issuers: s.AUTH_ISSUER,
          audiences: s.AUTH_AUDIENCE,
          ...(s.AUTH_JWKS_URI && { jwksUri: s.AUTH_JWKS_URI }),
          rolesClaim: 'roles',
        },
        ...s.AUTH_FEDERATED_ISSUERS.map((f, index) => ({
          kind: 'federated' as const,
          name: f.name ?? `federated-${index + 1}`,
          issuers: [f.issuer],
          audiences: f.audiences,
          ...(f.jwksUri && { jwksUri: f.jwksUri }),
          rolesClaim: f.rolesClaim,
          ...(f.roleMap && { roleMap: f.roleMap }),
        })),
      ],
      roleClients: s.AUTH_ROLE_CLIENTS,
      readRole: s.AUTH_READ_ROLE,
      adminRole: s.AUTH_ADMIN_ROLE,
      senderRole: s.AUTH_SENDER_ROLE,
      writeRole: s.AUTH_WRITE_ROLE,
      clockToleranceInSeconds: s.AUTH_CLOCK_TOLERANCE_SECONDS,
    },
    serviceBus: {
      ...(s.ServiceBusConnection__fullyQualifiedNamespace && { fullyQualifiedNamespace: s.ServiceBusConnection__fullyQualifiedNamespace }),
      ...(s.ServiceBusConnection && { connectionString: s.ServiceBusConnection }),
      queueName: s.SERVICEBUS_QUEUE_NAME,
      sendTimeoutInMs: s.SERVICEBUS_SEND_TIMEOUT_MS,
    },
    intake: {
      authModes: s.INTAKE_AUTH,
      webhookSecrets: s.WEBHOOK_SECRETS,
      webhookToleranceInSeconds: s.WEBHOOK_TOLERANCE_SECONDS,
      maxBodyBytes: s.INTAKE_MAX_BODY_BYTES,
      maxBatchEvents: s.INTAKE_MAX_BATCH_EVENTS,
      batchSyncMinEvents: s.INTAKE_BATCH_SYNC_MIN_EVENTS,
    },
    queueRetry: { maxAttempts: s.QUEUE_MAX_ATTEMPTS, baseDelayInMs: s.QUEUE_RETRY_BASE_DELAY_MS, maxDelayInMs: s.QUEUE_RETRY_MAX_DELAY_MS },
    telemetry: telemetryOf(s),
  };
}

function telemetryOf(s: Pick<Settings, 'APPLICATIONINSIGHTS_CONNECTION_STRING' | 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING' | 'TELEMETRY_SAMPLING_RATIO' | 'TELEMETRY_TRACES_PER_SECOND'>): TelemetrySettings {
  return {
    ...(s.APPLICATIONINSIGHTS_CONNECTION_STRING && { connectionString: s.APPLICATIONINSIGHTS_CONNECTION_STRING }),
    entraAuthentication: s.APPLICATIONINSIGHTS_AUTHENTICATION_STRING !== undefined,
    samplingRatio: s.TELEMETRY_SAMPLING_RATIO,
    tracesPerSecond: s.TELEMETRY_TRACES_PER_SECOND,
  };
}

/** Reads and validates the configuration; throws {@link ConfigurationError} naming every bad setting. */
export function loadConfig(env: Environment = process.env): AppConfig {
  const cleaned = withoutEmptyValues(env);
  const result = settingsSchema.safeParse(cleaned);
  if (!result.success) {
    const issues: ConfigurationIssue[] = result.error.issues.map((i) => {
      const setting = String(i.path[0] ?? '(configuration)');
      return { setting, message: i.code === 'invalid_type' && cleaned[setting] === undefined ? 'required' : i.message };
    });
    throw new ConfigurationError(dedupe(issues));
  }
  return toAppConfig(result.data);
}

/** What function registrations read at module load: trigger targets and the timer schedule. */
export interface RegistrationSettings {
  reconcileSchedule: string;
  /** When the backlog monitor measures (NCRONTAB). */
  monitorSchedule: string;
  databaseName: string;
  entitiesContainer: string;
  leasesContainer: string;
  queueName: string;
}

export function registrationSettings(env: Environment = process.env): RegistrationSettings {
  const s = pick(env, ['RECONCILE_SCHEDULE', 'MONITOR_SCHEDULE', 'COSMOS_DATABASE_NAME', 'COSMOS_ENTITIES_CONTAINER', 'COSMOS_LEASES_CONTAINER', 'SERVICEBUS_QUEUE_NAME']);
  return {
    reconcileSchedule: s.RECONCILE_SCHEDULE,
    monitorSchedule: s.MONITOR_SCHEDULE,
    databaseName: s.COSMOS_DATABASE_NAME,
    entitiesContainer: s.COSMOS_ENTITIES_CONTAINER,
    leasesContainer: s.COSMOS_LEASES_CONTAINER,
    queueName: s.SERVICEBUS_QUEUE_NAME,
  };
}

/** What the telemetry bootstrap reads before anything else loads (an invalid value leaves telemetry off). */
export function telemetrySettings(env: Environment = process.env): TelemetrySettings {
  return telemetryOf(pick(env, ['APPLICATIONINSIGHTS_CONNECTION_STRING', 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', 'TELEMETRY_SAMPLING_RATIO', 'TELEMETRY_TRACES_PER_SECOND']));
}

/** Parses only `names` with their own rules; an invalid value falls back to its default (or unset). */
function pick<K extends SettingName>(env: Environment, names: readonly K[]): Pick<Settings, K> {
  const cleaned = withoutEmptyValues(env);
  const out: Partial<Settings> = {};
  for (const key of names) {
    const field: z.ZodType = fields[key];
    const parsed = field.safeParse(cleaned[key]);
    const fallback = field.safeParse(undefined);
    const value: unknown = parsed.success ? parsed.data : fallback.success ? fallback.data : undefined;
    if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  }
  return out as Pick<Settings, K>;
}

/** Empty values count as unset: app settings are often declared with an empty value. */
function withoutEmptyValues(env: Environment): Environment {
  const cleaned: Environment = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v.trim() !== '') cleaned[k] = v;
  return cleaned;
}

function dedupe(issues: ConfigurationIssue[]): ConfigurationIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const key = `${i.setting}\u0000${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
