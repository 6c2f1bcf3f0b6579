/**
 * Configuration: every setting is read from the environment (Functions app settings) and validated once,
 * at start-up. A bad configuration raises one {@link ConfigurationError} that names every problem.
 *
 * Settings that Azure Functions itself reads for trigger connections use the host's identity-based names
 * (`CosmosDBConnection__accountEndpoint`, `ServiceBusConnection__fullyQualifiedNamespace`), and the SDK clients
 * read the same settings, so one value configures both. See docs/configuration.md for the full list.
 */
import { Cron } from 'croner';
import { z } from 'zod';
import { ConfigurationError, type ConfigurationIssue } from './errors';

export type AppMode = 'production' | 'local';

export interface CosmosConfig {
  endpoint: string;
  /** Account key; only from a connection string, only in local mode. */
  key?: string;
  databaseName: string;
  entitiesContainer: string;
  edgesContainer: string;
  leasesContainer: string;
  /** PEM file of a CA to trust for the local emulator's certificate; local mode only. */
  caCertPath?: string;
  maxRetryAttempts: number;
  maxRetryWaitInMs: number;
  requestTimeoutInMs: number;
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
}

export interface AuthConfig {
  issuers: string[];
  audiences: string[];
  jwksUri?: string;
  readRole: string;
  adminRole: string;
  senderRole: string;
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

export type IntakeAuthMode = 'entra' | 'standard-webhooks';

export interface IntakeConfig {
  authModes: IntakeAuthMode[];
  /** Standard Webhooks secrets (`whsec_…`); several while rotating. */
  webhookSecrets: string[];
  webhookToleranceInSeconds: number;
  maxBodyBytes: number;
  maxBatchEvents: number;
}

export interface TelemetrySettings {
  connectionString?: string;
  entraAuthentication: boolean;
  samplingRatio: number;
  tracesPerSecond: number;
}

export interface QueueRetryConfig {
  /** Attempts per message (the first delivery included) before it is dead-lettered. */
  maxAttempts: number;
  baseDelayInMs: number;
  maxDelayInMs: number;
}

export interface AppConfig {
  mode: AppMode;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Client id of the user-assigned managed identity; absent = system-assigned / developer credential. */
  managedIdentityClientId?: string;
  cosmos: CosmosConfig;
  backstage: BackstageConfig;
  sync: { tombstoneTtlInSeconds: number; maxAttempts: number };
  reconcile: {
    schedule: string;
    maxDeleteRatio: number;
    fetchBatchSize: number;
    concurrency: number;
    writeMaxRetries: number;
  };
  auth: AuthConfig;
  serviceBus: ServiceBusConfig;
  intake: IntakeConfig;
  queueRetry: QueueRetryConfig;
  telemetry: TelemetrySettings;
}

export type Environment = Record<string, string | undefined>;

/** Every 30 minutes, at second 0. */
export const DEFAULT_RECONCILE_SCHEDULE = '0 */30 * * * *';

/**
 * The timer schedule the reconcile function registers with. Read at registration time (module load),
 * before the rest of the configuration is validated; an invalid value is reported by {@link loadConfig}.
 */
export function reconcileSchedule(env: Environment = process.env): string {
  return env.RECONCILE_SCHEDULE?.trim() || DEFAULT_RECONCILE_SCHEDULE;
}

/** Database and container names the Cosmos DB trigger registers with, read at registration time. */
export function cosmosNames(env: Environment = process.env): { databaseName: string; entitiesContainer: string; leasesContainer: string } {
  return {
    databaseName: env.COSMOS_DATABASE_NAME?.trim() || 'catalog',
    entitiesContainer: env.COSMOS_ENTITIES_CONTAINER?.trim() || 'entities',
    leasesContainer: env.COSMOS_LEASES_CONTAINER?.trim() || 'leases',
  };
}

export const DEFAULT_QUEUE_NAME = 'entity-sync';

/** The queue the sync trigger listens on, read at registration time like {@link reconcileSchedule}. */
export function syncQueueName(env: Environment = process.env): string {
  return env.SERVICEBUS_QUEUE_NAME?.trim() || DEFAULT_QUEUE_NAME;
}

const notANumber = (issue: { code: string }) => (issue.code === 'invalid_type' ? 'must be a number' : undefined);
const number = (min: number, max: number) =>
  z.coerce.number({ error: notANumber }).min(min, `must be at least ${min}`).max(max, `must be at most ${max}`);
const int = (min: number, max: number) => number(min, max).int('must be a whole number');
const optionalString = z.string().trim().min(1).optional();
const httpUrl = z
  .string()
  .trim()
  .refine((v) => isUrl(v, ['http:', 'https:']), 'must be an absolute http(s) URL');
const csv = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean));

const schema = z
  .object({
    APP_MODE: z.enum(['production', 'local'], { error: "must be 'production' or 'local'" }).default('production'),
    LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error'], { error: 'must be debug, info, warn or error' }).default('info'),
    AZURE_CLIENT_ID: optionalString,

    CosmosDBConnection__accountEndpoint: httpUrl.optional(),
    CosmosDBConnection: optionalString,
    COSMOS_DATABASE_NAME: z.string().trim().min(1).default('catalog'),
    COSMOS_ENTITIES_CONTAINER: z.string().trim().min(1).default('entities'),
    COSMOS_EDGES_CONTAINER: z.string().trim().min(1).default('edges'),
    COSMOS_LEASES_CONTAINER: z.string().trim().min(1).default('leases'),
    COSMOS_CA_CERT_PATH: optionalString,
    COSMOS_MAX_RETRY_ATTEMPTS: int(0, 100).default(9),
    COSMOS_MAX_RETRY_WAIT_MS: int(0, 600_000).default(30_000),
    COSMOS_REQUEST_TIMEOUT_MS: int(100, 600_000).default(10_000),

    BACKSTAGE_BASE_URL: httpUrl,
    BACKSTAGE_TOKEN_SCOPE: optionalString,
    BACKSTAGE_STATIC_TOKEN: optionalString,
    BACKSTAGE_REQUEST_TIMEOUT_MS: int(100, 600_000).default(10_000),
    BACKSTAGE_MAX_RETRIES: int(0, 20).default(4),
    BACKSTAGE_RETRY_BASE_DELAY_MS: int(1, 60_000).default(500),
    BACKSTAGE_RETRY_MAX_DELAY_MS: int(1, 600_000).default(30_000),
    BACKSTAGE_PAGE_SIZE: int(1, 10_000).default(500),

    SYNC_TOMBSTONE_TTL_SECONDS: int(60, 365 * 24 * 3600).default(7 * 24 * 3600),
    SYNC_MAX_ATTEMPTS: int(1, 50).default(5),

    RECONCILE_SCHEDULE: z
      .string()
      .trim()
      .default(DEFAULT_RECONCILE_SCHEDULE)
      .refine(isNcrontab, 'must be a six-field NCRONTAB expression ({second} {minute} {hour} {day} {month} {day-of-week})'),
    RECONCILE_MAX_DELETE_RATIO: number(0, 1).default(0.2),
    RECONCILE_FETCH_BATCH_SIZE: int(1, 1000).default(100),
    RECONCILE_CONCURRENCY: int(1, 64).default(4),
    RECONCILE_WRITE_MAX_RETRIES: int(0, 20).default(5),

    AUTH_ISSUER: csv,
    AUTH_AUDIENCE: csv,
    AUTH_JWKS_URI: httpUrl.optional(),
    AUTH_READ_ROLE: z.string().trim().min(1).default('Catalog.Read'),
    AUTH_ADMIN_ROLE: z.string().trim().min(1).default('Catalog.Admin'),
    AUTH_SENDER_ROLE: z.string().trim().min(1).default('Events.Send'),

    ServiceBusConnection__fullyQualifiedNamespace: z
      .string()
      .trim()
      .refine((v) => /^[a-z0-9.-]+(:\d+)?$/i.test(v), 'must be a host name, e.g. <namespace>.servicebus.windows.net')
      .optional(),
    ServiceBusConnection: optionalString,
    SERVICEBUS_QUEUE_NAME: z.string().trim().min(1).max(260).default(DEFAULT_QUEUE_NAME),
    SERVICEBUS_SEND_TIMEOUT_MS: int(100, 600_000).default(10_000),

    INTAKE_AUTH: z
      .string()
      .trim()
      .default('entra')
      .transform((v) => v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean))
      .refine((modes) => modes.length > 0 && modes.every((m) => m === 'entra' || m === 'standard-webhooks'), {
        message: "must be 'entra', 'standard-webhooks' or both, comma-separated",
      }),
    WEBHOOK_SECRETS: optionalString,
    WEBHOOK_TOLERANCE_SECONDS: int(1, 300).default(300), // the Standard Webhooks library enforces ±5 min itself
    INTAKE_MAX_BODY_BYTES: int(1024, 100 * 1024 * 1024).default(1024 * 1024),
    INTAKE_MAX_BATCH_EVENTS: int(1, 10_000).default(500),

    APPLICATIONINSIGHTS_CONNECTION_STRING: optionalString,
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: optionalString,
    TELEMETRY_SAMPLING_RATIO: number(0, 1).default(1),
    TELEMETRY_TRACES_PER_SECOND: number(0, 10_000).default(5),

    QUEUE_MAX_ATTEMPTS: int(1, 100).default(8),
    QUEUE_RETRY_BASE_DELAY_MS: int(1, 3_600_000).default(5_000),
    QUEUE_RETRY_MAX_DELAY_MS: int(1, 86_400_000).default(15 * 60_000),
    AUTH_CLOCK_TOLERANCE_SECONDS: int(0, 600).default(60),
  });

/** Settings only a local stack may use; production mode refuses them and infrastructure never sets them. */
export const LOCAL_ONLY_SETTINGS: readonly string[] = ['CosmosDBConnection', 'ServiceBusConnection', 'COSMOS_CA_CERT_PATH', 'BACKSTAGE_STATIC_TOKEN'];

/** Every app setting the code reads (the infrastructure checks compare it with what the Function App sets). */
export function settingNames(): string[] {
  return Object.keys(schema.shape);
}

/**
 * Rules across settings and the production-mode policy. Checked on the raw values, independently of the
 * per-setting schema, so one start-up reports every problem at once.
 */
function policyIssues(s: Environment): ConfigurationIssue[] {
  const issues: ConfigurationIssue[] = [];
  const issue = (setting: string, message: string) => issues.push({ setting, message });
  const production = (s.APP_MODE ?? 'production') === 'production';
  const cosmosEndpoint = s.CosmosDBConnection__accountEndpoint;

  if (!cosmosEndpoint && !s.CosmosDBConnection) {
    issue('CosmosDBConnection__accountEndpoint', 'required: the Cosmos DB account endpoint, e.g. https://<account>.documents.azure.com:443/');
  }
  if (cosmosEndpoint && s.CosmosDBConnection) {
    issue('CosmosDBConnection', 'set either CosmosDBConnection__accountEndpoint (managed identity) or CosmosDBConnection, not both');
  }
  if (s.CosmosDBConnection) {
    if (production) {
      issue(
        'CosmosDBConnection',
        'key-based connection strings are refused in production mode; set CosmosDBConnection__accountEndpoint and grant the managed identity a Cosmos DB data-plane role',
      );
    } else if (!parseCosmosConnectionString(s.CosmosDBConnection)) {
      issue('CosmosDBConnection', 'must look like AccountEndpoint=https://…;AccountKey=…;');
    }
  }
  if (production && cosmosEndpoint && isUrl(cosmosEndpoint, ['http:'])) {
    issue('CosmosDBConnection__accountEndpoint', 'must be https in production mode (Entra tokens are only sent over TLS)');
  }
  if (production && s.COSMOS_CA_CERT_PATH) {
    issue('COSMOS_CA_CERT_PATH', 'trusting an extra CA is for the local emulator only; refused in production mode');
  }

  if (s.BACKSTAGE_STATIC_TOKEN && production) {
    issue('BACKSTAGE_STATIC_TOKEN', 'static tokens are refused in production mode; set BACKSTAGE_TOKEN_SCOPE so the managed identity gets Entra tokens');
  }
  if (s.BACKSTAGE_STATIC_TOKEN && s.BACKSTAGE_TOKEN_SCOPE) {
    issue('BACKSTAGE_STATIC_TOKEN', 'set either BACKSTAGE_TOKEN_SCOPE or BACKSTAGE_STATIC_TOKEN, not both');
  }
  if (!s.BACKSTAGE_STATIC_TOKEN && !s.BACKSTAGE_TOKEN_SCOPE) {
    issue('BACKSTAGE_TOKEN_SCOPE', 'required: the Entra scope of the Backstage app registration, e.g. api://<app-id>/.default');
  }
  if (s.BACKSTAGE_TOKEN_SCOPE && !s.BACKSTAGE_TOKEN_SCOPE.trim().endsWith('/.default')) {
    issue('BACKSTAGE_TOKEN_SCOPE', "must end with /.default (managed identities can only ask for an application's default scope)");
  }
  const base = Number(s.BACKSTAGE_RETRY_BASE_DELAY_MS ?? 500);
  const max = Number(s.BACKSTAGE_RETRY_MAX_DELAY_MS ?? 30_000);
  if (Number.isFinite(base) && Number.isFinite(max) && max < base) {
    issue('BACKSTAGE_RETRY_MAX_DELAY_MS', 'must not be smaller than BACKSTAGE_RETRY_BASE_DELAY_MS');
  }
  for (const issuer of (s.AUTH_ISSUER ?? '').split(',').map((v) => v.trim()).filter(Boolean)) {
    if (!isUrl(issuer, ['https:', 'http:'])) issue('AUTH_ISSUER', `${JSON.stringify(issuer)} is not an absolute URL`);
    else if (production && !issuer.startsWith('https:')) issue('AUTH_ISSUER', 'must be https in production mode');
  }
  if (production && s.AUTH_JWKS_URI && isUrl(s.AUTH_JWKS_URI, ['http:'])) {
    issue('AUTH_JWKS_URI', 'must be https in production mode');
  }

  const serviceBusNamespace = s.ServiceBusConnection__fullyQualifiedNamespace;
  if (!serviceBusNamespace && !s.ServiceBusConnection) {
    issue('ServiceBusConnection__fullyQualifiedNamespace', 'required: the Service Bus namespace host, e.g. <namespace>.servicebus.windows.net');
  }
  if (serviceBusNamespace && s.ServiceBusConnection) {
    issue('ServiceBusConnection', 'set either ServiceBusConnection__fullyQualifiedNamespace (managed identity) or ServiceBusConnection, not both');
  }
  if (s.ServiceBusConnection && production) {
    issue(
      'ServiceBusConnection',
      'connection strings are refused in production mode; set ServiceBusConnection__fullyQualifiedNamespace and grant the managed identity the Service Bus data roles',
    );
  } else if (s.ServiceBusConnection && !/Endpoint=sb:\/\/[^;]+/i.test(s.ServiceBusConnection)) {
    issue('ServiceBusConnection', 'must look like Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…;');
  }
  const modes = (s.INTAKE_AUTH ?? 'entra').toLowerCase();
  const secrets = (s.WEBHOOK_SECRETS ?? '').split(',').map((v) => v.trim()).filter(Boolean);
  if (modes.includes('standard-webhooks') && secrets.length === 0) {
    issue('WEBHOOK_SECRETS', 'required when INTAKE_AUTH includes standard-webhooks: one or more whsec_… secrets, comma-separated');
  }
  for (const secret of secrets) {
    if (!/^whsec_[A-Za-z0-9+/]{24,}={0,2}$/.test(secret)) {
      issue('WEBHOOK_SECRETS', 'each secret must be whsec_ followed by at least 18 bytes of base64');
      break;
    }
  }
  const aiConnection = s.APPLICATIONINSIGHTS_CONNECTION_STRING;
  if (aiConnection && !/InstrumentationKey=[0-9a-f-]{36}/i.test(aiConnection)) {
    issue('APPLICATIONINSIGHTS_CONNECTION_STRING', 'must be an Application Insights connection string (InstrumentationKey=…;IngestionEndpoint=…)');
  }
  const aiAuth = s.APPLICATIONINSIGHTS_AUTHENTICATION_STRING;
  if (aiAuth && !/Authorization=AAD/i.test(aiAuth)) {
    issue('APPLICATIONINSIGHTS_AUTHENTICATION_STRING', "must be 'Authorization=AAD' (with ';ClientId=<managed identity client id>' for a user-assigned identity)");
  }
  if (production && aiConnection && !aiAuth) {
    issue(
      'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
      'required in production mode with APPLICATIONINSIGHTS_CONNECTION_STRING: ingestion is Entra-authenticated (local auth disabled), e.g. ClientId=<client id>;Authorization=AAD',
    );
  }
  const retryBase = Number(s.QUEUE_RETRY_BASE_DELAY_MS ?? 5_000);
  const retryMax = Number(s.QUEUE_RETRY_MAX_DELAY_MS ?? 15 * 60_000);
  if (Number.isFinite(retryBase) && Number.isFinite(retryMax) && retryMax < retryBase) {
    issue('QUEUE_RETRY_MAX_DELAY_MS', 'must not be smaller than QUEUE_RETRY_BASE_DELAY_MS');
  }
  return issues;
}

/** Reads and validates the configuration; throws {@link ConfigurationError} naming every bad setting. */
export function loadConfig(env: Environment = process.env): AppConfig {
  // Treat empty strings as unset: app settings are often declared with an empty value.
  const cleaned: Environment = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v.trim() !== '') cleaned[k] = v;

  const result = schema.safeParse(cleaned);
  const issues: ConfigurationIssue[] = result.success
    ? []
    : result.error.issues.map((i) => ({
        setting: String(i.path[0] ?? '(configuration)'),
        message: i.code === 'invalid_type' && cleaned[String(i.path[0])] === undefined ? 'required' : i.message,
      }));
  issues.push(...policyIssues(cleaned));
  if (!result.success || issues.length > 0) throw new ConfigurationError(dedupe(issues));
  const s = result.data;
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
      ...(s.COSMOS_CA_CERT_PATH && { caCertPath: s.COSMOS_CA_CERT_PATH }),
      maxRetryAttempts: s.COSMOS_MAX_RETRY_ATTEMPTS,
      maxRetryWaitInMs: s.COSMOS_MAX_RETRY_WAIT_MS,
      requestTimeoutInMs: s.COSMOS_REQUEST_TIMEOUT_MS,
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
    },
    sync: { tombstoneTtlInSeconds: s.SYNC_TOMBSTONE_TTL_SECONDS, maxAttempts: s.SYNC_MAX_ATTEMPTS },
    reconcile: {
      schedule: s.RECONCILE_SCHEDULE,
      maxDeleteRatio: s.RECONCILE_MAX_DELETE_RATIO,
      fetchBatchSize: s.RECONCILE_FETCH_BATCH_SIZE,
      concurrency: s.RECONCILE_CONCURRENCY,
      writeMaxRetries: s.RECONCILE_WRITE_MAX_RETRIES,
    },
    auth: {
      issuers: s.AUTH_ISSUER,
      audiences: s.AUTH_AUDIENCE,
      ...(s.AUTH_JWKS_URI && { jwksUri: s.AUTH_JWKS_URI }),
      readRole: s.AUTH_READ_ROLE,
      adminRole: s.AUTH_ADMIN_ROLE,
      senderRole: s.AUTH_SENDER_ROLE,
      clockToleranceInSeconds: s.AUTH_CLOCK_TOLERANCE_SECONDS,
    },
    serviceBus: {
      ...(s.ServiceBusConnection__fullyQualifiedNamespace && { fullyQualifiedNamespace: s.ServiceBusConnection__fullyQualifiedNamespace }),
      ...(s.ServiceBusConnection && { connectionString: s.ServiceBusConnection }),
      queueName: s.SERVICEBUS_QUEUE_NAME,
      sendTimeoutInMs: s.SERVICEBUS_SEND_TIMEOUT_MS,
    },
    intake: {
      authModes: [...new Set(s.INTAKE_AUTH)] as IntakeAuthMode[],
      webhookSecrets: (s.WEBHOOK_SECRETS ?? '').split(',').map((v) => v.trim()).filter(Boolean),
      webhookToleranceInSeconds: s.WEBHOOK_TOLERANCE_SECONDS,
      maxBodyBytes: s.INTAKE_MAX_BODY_BYTES,
      maxBatchEvents: s.INTAKE_MAX_BATCH_EVENTS,
    },
    queueRetry: {
      maxAttempts: s.QUEUE_MAX_ATTEMPTS,
      baseDelayInMs: s.QUEUE_RETRY_BASE_DELAY_MS,
      maxDelayInMs: s.QUEUE_RETRY_MAX_DELAY_MS,
    },
    telemetry: {
      ...(s.APPLICATIONINSIGHTS_CONNECTION_STRING && { connectionString: s.APPLICATIONINSIGHTS_CONNECTION_STRING }),
      entraAuthentication: /Authorization=AAD/i.test(s.APPLICATIONINSIGHTS_AUTHENTICATION_STRING ?? ''),
      samplingRatio: s.TELEMETRY_SAMPLING_RATIO,
      tracesPerSecond: s.TELEMETRY_TRACES_PER_SECOND,
    },
  };
}

/** `AccountEndpoint=…;AccountKey=…;` → its parts, or undefined when either is missing. */
export function parseCosmosConnectionString(value: string): { endpoint: string; key: string } | undefined {
  const parts = new Map<string, string>();
  for (const piece of value.split(';')) {
    const eq = piece.indexOf('=');
    if (eq > 0) parts.set(piece.slice(0, eq).trim().toLowerCase(), piece.slice(eq + 1).trim());
  }
  const endpoint = parts.get('accountendpoint');
  const key = parts.get('accountkey');
  if (!endpoint || !key || !isUrl(endpoint, ['http:', 'https:'])) return undefined;
  return { endpoint, key };
}

/** Azure Functions timer schedules are six-field NCRONTAB expressions. */
export function isNcrontab(value: string): boolean {
  if (value.split(/\s+/).length !== 6) return false;
  try {
    new Cron(value, { paused: true });
    return true;
  } catch {
    return false;
  }
}

function isUrl(value: string, protocols: string[]): boolean {
  try {
    return protocols.includes(new URL(value).protocol);
  } catch {
    return false;
  }
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
