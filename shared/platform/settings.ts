/**
 * The app settings: every setting the code reads, with its rule and its default — the one place defaults live — and the
 * rules across settings, the production-mode policy among them. One zod schema, {@link settingsSchema}; config.ts
 * turns what it parses into the typed configuration.
 */
import { parseFilterPredicate, type FilterPredicate } from '@backstage/filter-predicates';
import { Cron } from 'croner';
import { z } from 'zod';

export type IntakeAuthMode = 'entra' | 'standard-webhooks';

const notANumber = (issue: { code: string }) => (issue.code === 'invalid_type' ? 'must be a number' : undefined);
const number = (min: number, max: number) =>
  z.coerce.number({ error: notANumber }).min(min, `must be at least ${min}`).max(max, `must be at most ${max}`);
const int = (min: number, max: number) => number(min, max).int('must be a whole number');
const optionalString = z.string().trim().min(1).optional();
const name = (fallback: string) => z.string().trim().min(1).max(255).default(fallback);
const httpUrl = z
  .string()
  .trim()
  .refine((v) => isUrl(v, ['http:', 'https:']), 'must be an absolute http(s) URL');
const csv = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean));

/** Comma-separated names matching `pattern` (kinds, namespaces); compared case-insensitively, so kept as written. */
const nameList = (pattern: RegExp, what: string) =>
  csv.refine((names) => names.every((n) => pattern.test(n)), `must be comma-separated ${what}`).transform((names) => [...new Set(names)]);
const KIND_PATTERN = /^[A-Za-z][A-Za-z0-9]{0,62}$/;
const NAMESPACE_PATTERN = /^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$/;

/** A Backstage filter predicate, as the catalog's `POST /entities/by-query` takes it; `relations.*` paths are refused (scope.ts). */
const filterPredicate = z.unknown().transform((value, ctx) => {
  try {
    const predicate = parseFilterPredicate(value);
    const relationPath = predicatePaths(predicate).find((path) => /^relations(\.|$)/i.test(path));
    if (relationPath) {
      ctx.addIssue({ code: 'custom', message: `cannot filter on ${relationPath}: the event path evaluates the filter on the entity, whose relations are a list; filter on spec fields instead` });
      return z.NEVER;
    }
    return predicate;
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `is not a filter predicate: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` });
    return z.NEVER;
  }
});

/** A setting holding JSON, parsed, then checked by `schema`. */
function json<S extends z.ZodType>(schema: S, example: string) {
  return z
    .string()
    .trim()
    .transform((value, ctx) => {
      try {
        return JSON.parse(value) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: `must be JSON, e.g. ${example}` });
        return z.NEVER;
      }
    })
    .pipe(schema);
}

const federatedIssuer = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, ".", "_" and "-", at most 64').optional(),
  issuer: z.string().refine((v) => isUrl(v, ['http:', 'https:']), 'must be an absolute URL'),
  audiences: z.array(z.string().min(1)).min(1, 'must name at least one audience'),
  jwksUri: z.string().refine((v) => isUrl(v, ['http:', 'https:']), 'must be an absolute URL').optional(),
  rolesClaim: z.string().regex(/^[A-Za-z_][A-Za-z0-9_:.-]{0,63}$/, 'must be a claim name').default('roles'),
  roleMap: z.record(z.string(), z.array(z.string().min(1))).optional(),
});

/** Every setting the code reads, with its rule and its default: the one place defaults live. */
export const fields = {
  APP_MODE: z.enum(['production', 'local'], { error: "must be 'production' or 'local'" }).default('production'),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error'], { error: 'must be debug, info, warn or error' }).default('info'),
  AZURE_CLIENT_ID: optionalString,

  CosmosDBConnection__accountEndpoint: httpUrl.optional(),
  CosmosDBConnection: optionalString,
  COSMOS_DATABASE_NAME: name('catalog'),
  COSMOS_ENTITIES_CONTAINER: name('entities'),
  COSMOS_EDGES_CONTAINER: name('edges'),
  COSMOS_LEASES_CONTAINER: name('leases'),
  COSMOS_DELIVERIES_CONTAINER: name('webhook-deliveries'),
  COSMOS_AUTHORED_CONTAINER: name('authored'),
  COSMOS_HISTORY_CONTAINER: name('history'),
  COSMOS_RUNS_CONTAINER: name('maintenance-runs'),
  COSMOS_CA_CERT_PATH: optionalString,
  COSMOS_MAX_RETRY_ATTEMPTS: int(0, 100).default(9),
  COSMOS_MAX_RETRY_WAIT_MS: int(0, 600_000).default(30_000),
  COSMOS_REQUEST_TIMEOUT_MS: int(100, 600_000).default(10_000),
  COSMOS_THROTTLE_RETRIES: int(0, 20).default(5),
  COSMOS_THROTTLE_RETRY_BASE_DELAY_MS: int(1, 60_000).default(500),
  COSMOS_THROTTLE_RETRY_MAX_DELAY_MS: int(1, 600_000).default(30_000),
  COSMOS_SLOW_POINT_OPERATION_MS: int(1, 600_000).default(1_000),
  COSMOS_SLOW_QUERY_MS: int(1, 600_000).default(3_000),

  BACKSTAGE_BASE_URL: httpUrl,
  BACKSTAGE_TOKEN_SCOPE: optionalString,
  BACKSTAGE_STATIC_TOKEN: optionalString,
  BACKSTAGE_REQUEST_TIMEOUT_MS: int(100, 600_000).default(10_000),
  BACKSTAGE_MAX_RETRIES: int(0, 20).default(4),
  BACKSTAGE_RETRY_BASE_DELAY_MS: int(1, 60_000).default(500),
  BACKSTAGE_RETRY_MAX_DELAY_MS: int(1, 600_000).default(30_000),
  BACKSTAGE_PAGE_SIZE: int(1, 10_000).default(500),
  BACKSTAGE_COMPRESSION: z.enum(['none', 'gzip', 'br'], { error: "must be 'none', 'gzip' or 'br'" }).default('none'),

  SYNC_TOMBSTONE_TTL_SECONDS: int(60, 365 * 24 * 3600).default(7 * 24 * 3600),
  SYNC_MAX_ATTEMPTS: int(1, 50).default(5),
  SYNC_INCLUDE_KINDS: nameList(KIND_PATTERN, 'entity kinds, e.g. Component,API').default([]),
  SYNC_EXCLUDE_KINDS: nameList(KIND_PATTERN, 'entity kinds, e.g. User,Group').default([]),
  SYNC_INCLUDE_NAMESPACES: nameList(NAMESPACE_PATTERN, 'namespaces, e.g. default,payments').default([]),
  SYNC_EXCLUDE_NAMESPACES: nameList(NAMESPACE_PATTERN, 'namespaces, e.g. sandbox').default([]),
  AUTHORED_KINDS: nameList(KIND_PATTERN, 'entity kinds, e.g. Component,API,Resource').default(['Component', 'API', 'Resource', 'System']),
  AUTHORED_NAMESPACES: nameList(NAMESPACE_PATTERN, 'namespaces, e.g. default,provisioned').default([]),
  AUTHORED_MAX_BYTES: int(1024, 1024 * 1024).default(64 * 1024),
  HISTORY_RETENTION_DAYS: int(1, 3650).default(90),
  SYNC_CATALOG_FILTER: json(filterPredicate, '{"spec.lifecycle":{"$in":["production","experimental"]}}').optional(),

  RECONCILE_SCHEDULE: z
    .string()
    .trim()
    .default('0 */30 * * * *')
    .refine(isNcrontab, 'must be a six-field NCRONTAB expression ({second} {minute} {hour} {day} {month} {day-of-week})'),
  MONITOR_SCHEDULE: z
    .string()
    .trim()
    .default('0 * * * * *')
    .refine(isNcrontab, 'must be a six-field NCRONTAB expression ({second} {minute} {hour} {day} {month} {day-of-week})'),
  RECONCILE_MAX_DELETE_RATIO: number(0, 1).default(0.2),
  RECONCILE_FETCH_BATCH_SIZE: int(1, 1000).default(100),
  RECONCILE_CONCURRENCY: int(1, 64).default(4),
  RECONCILE_BULK_MIN_ENTITIES: int(0, 10_000_000).default(1000),

  AUTH_ISSUER: csv,
  AUTH_AUDIENCE: csv,
  AUTH_JWKS_URI: httpUrl.optional(),
  AUTH_READ_ROLE: z.string().trim().min(1).default('Catalog.Read'),
  AUTH_ADMIN_ROLE: z.string().trim().min(1).default('Catalog.Admin'),
  AUTH_SENDER_ROLE: z.string().trim().min(1).default('Events.Send'),
  AUTH_WRITE_ROLE: z.string().trim().min(1).default('Catalog.Write'),
  AUTH_CLOCK_TOLERANCE_SECONDS: int(0, 600).default(60),
  AUTH_FEDERATED_ISSUERS: json(
    z.array(federatedIssuer, { error: 'must be a JSON array of issuers' }),
    '[{"issuer":"https://oidc.example/","audiences":["api://sync"],"rolesClaim":"sub","roleMap":{"system:serviceaccount:backstage:backstage":["Events.Send"]}}]',
  ).default([]),
  AUTH_ROLE_CLIENTS: json(
    z.record(z.string(), z.array(z.string().min(1)).min(1, 'must list at least one client id'), { error: 'must be a JSON object of role → client ids' }),
    '{"Catalog.Admin":["<client id>"]}',
  ).default({}),

  ServiceBusConnection__fullyQualifiedNamespace: z
    .string()
    .trim()
    .refine((v) => /^[a-z0-9.-]+(:\d+)?$/i.test(v), 'must be a host name, e.g. <namespace>.servicebus.windows.net')
    .optional(),
  ServiceBusConnection: optionalString,
  SERVICEBUS_QUEUE_NAME: z.string().trim().min(1).max(260).default('entity-sync'),
  SERVICEBUS_SEND_TIMEOUT_MS: int(100, 600_000).default(10_000),

  INTAKE_AUTH: z
    .string()
    .trim()
    .default('entra')
    .transform((v) => [...new Set(v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean))])
    .refine((modes): modes is IntakeAuthMode[] => modes.length > 0 && modes.every((m) => m === 'entra' || m === 'standard-webhooks'), {
      message: "must be 'entra', 'standard-webhooks' or both, comma-separated",
    }),
  WEBHOOK_SECRETS: z
    .string()
    .refine((v) => !/^\s*@Microsoft\.KeyVault\(/i.test(v), {
      message:
        "is a Key Vault reference the platform could not resolve: give the app's identity Key Vault Secrets User on the secret, name that identity in keyVaultReferenceIdentity, and check that the secret exists and the vault is reachable",
      abort: true,
    })
    .default('')
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .refine((secrets) => secrets.every((s) => /^whsec_[A-Za-z0-9+/]{24,}={0,2}$/.test(s)), 'each secret must be whsec_ followed by at least 18 bytes of base64'),
  WEBHOOK_TOLERANCE_SECONDS: int(1, 300).default(300), // the Standard Webhooks library enforces ±5 min itself
  INTAKE_MAX_BODY_BYTES: int(1024, 100 * 1024 * 1024).default(1024 * 1024),
  INTAKE_MAX_BATCH_EVENTS: int(1, 10_000).default(500),
  INTAKE_BATCH_SYNC_MIN_EVENTS: int(0, 10_000).default(20),

  APPLICATIONINSIGHTS_CONNECTION_STRING: z
    .string()
    .trim()
    .refine((v) => /InstrumentationKey=[0-9a-f-]{36}/i.test(v), 'must be an Application Insights connection string (InstrumentationKey=…;IngestionEndpoint=…)')
    .optional(),
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: z
    .string()
    .trim()
    .refine((v) => /Authorization=AAD/i.test(v), "must be 'Authorization=AAD' (with ';ClientId=<managed identity client id>' for a user-assigned identity)")
    .optional(),
  TELEMETRY_SAMPLING_RATIO: number(0, 1).default(1),
  TELEMETRY_TRACES_PER_SECOND: number(0, 10_000).default(5),

  QUEUE_MAX_ATTEMPTS: int(1, 100).default(8),
  QUEUE_RETRY_BASE_DELAY_MS: int(1, 3_600_000).default(5_000),
  QUEUE_RETRY_MAX_DELAY_MS: int(1, 86_400_000).default(15 * 60_000),
};

export type Settings = z.output<z.ZodObject<typeof fields>>;
export type SettingName = keyof typeof fields;

/** Settings that were renamed: setting the old name is an error that names the new one. */
const RENAMED: Readonly<Record<string, SettingName>> = {
  RECONCILE_WRITE_MAX_RETRIES: 'COSMOS_THROTTLE_RETRIES',
};

/**
 * Variables that make the Azure SDKs' environment credential authenticate with a secret, a certificate or a password
 * instead of the managed identity. The production credential ignores them; their presence is refused all the same,
 * so nobody believes a secret is in use (or leaves one lying in app settings).
 */
const CREDENTIAL_SECRET_VARIABLES = ['AZURE_CLIENT_SECRET', 'AZURE_CLIENT_CERTIFICATE_PATH', 'AZURE_CLIENT_CERTIFICATE_PASSWORD', 'AZURE_USERNAME', 'AZURE_PASSWORD'];

/** Set by the Azure Functions platform (App Service) on every instance, never by Core Tools or the local stack. */
const AZURE_PLATFORM_VARIABLES = ['WEBSITE_INSTANCE_ID', 'WEBSITE_OWNER_NAME', 'WEBSITE_SITE_NAME'];

/**
 * The rules across settings and the production-mode policy. They run even when single settings failed (so one
 * start-up reports every problem), which is why each reads its inputs as possibly missing. `s` also holds the
 * environment's other variables (the schema passes them through), for the rules about variables the code never reads.
 */
function crossFieldRules(s: Partial<Settings> & Record<string, unknown>, ctx: z.RefinementCtx): void {
  const issue = (setting: string, message: string) => ctx.addIssue({ code: 'custom', path: [setting], message });
  const production = s.APP_MODE !== 'local';

  for (const [old, current] of Object.entries(RENAMED)) if (s[old] !== undefined) issue(old, `renamed to ${current}`);
  const inAzure = AZURE_PLATFORM_VARIABLES.find((name) => s[name] !== undefined);
  if (!production && inAzure) {
    issue('APP_MODE', `'local' is refused where the Functions platform runs the app (${inAzure} is set): local mode accepts keys and static tokens`);
  }
  if (production) {
    for (const name of CREDENTIAL_SECRET_VARIABLES) {
      if (s[name] !== undefined) issue(name, 'refused in production mode: the app authenticates only with its managed identity; remove the setting');
    }
  }

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
  notBelow('COSMOS_THROTTLE_RETRY_MAX_DELAY_MS', s.COSMOS_THROTTLE_RETRY_MAX_DELAY_MS, 'COSMOS_THROTTLE_RETRY_BASE_DELAY_MS', s.COSMOS_THROTTLE_RETRY_BASE_DELAY_MS, issue);

  if (s.BACKSTAGE_STATIC_TOKEN && production) {
    issue('BACKSTAGE_STATIC_TOKEN', 'static tokens are refused in production mode; set BACKSTAGE_TOKEN_SCOPE so the managed identity gets Entra tokens');
  }
  if (s.BACKSTAGE_STATIC_TOKEN && s.BACKSTAGE_TOKEN_SCOPE) {
    issue('BACKSTAGE_STATIC_TOKEN', 'set either BACKSTAGE_TOKEN_SCOPE or BACKSTAGE_STATIC_TOKEN, not both');
  }
  if (!s.BACKSTAGE_STATIC_TOKEN && !s.BACKSTAGE_TOKEN_SCOPE) {
    issue('BACKSTAGE_TOKEN_SCOPE', 'required: the Entra scope of the Backstage app registration, e.g. api://<app-id>/.default');
  }
  if (production && s.BACKSTAGE_BASE_URL && isUrl(s.BACKSTAGE_BASE_URL, ['http:'])) {
    issue('BACKSTAGE_BASE_URL', 'must be https in production mode (the bearer token would travel in clear text)');
  }
  if (s.BACKSTAGE_TOKEN_SCOPE && !s.BACKSTAGE_TOKEN_SCOPE.endsWith('/.default')) {
    issue('BACKSTAGE_TOKEN_SCOPE', "must end with /.default (managed identities can only ask for an application's default scope)");
  }
  notBelow('BACKSTAGE_RETRY_MAX_DELAY_MS', s.BACKSTAGE_RETRY_MAX_DELAY_MS, 'BACKSTAGE_RETRY_BASE_DELAY_MS', s.BACKSTAGE_RETRY_BASE_DELAY_MS, issue);

  for (const issuer of s.AUTH_ISSUER ?? []) {
    if (!isUrl(issuer, ['https:', 'http:'])) issue('AUTH_ISSUER', `${JSON.stringify(issuer)} is not an absolute URL`);
    else if (production && !issuer.startsWith('https:')) issue('AUTH_ISSUER', 'must be https in production mode');
  }
  if (production && s.AUTH_JWKS_URI && isUrl(s.AUTH_JWKS_URI, ['http:'])) issue('AUTH_JWKS_URI', 'must be https in production mode');
  // Only a list that parsed (a value that failed its own rule may still be the raw string here).
  const federatedIssuers = Array.isArray(s.AUTH_FEDERATED_ISSUERS) ? s.AUTH_FEDERATED_ISSUERS : [];
  for (const [index, federated] of federatedIssuers.entries()) {
    const at = `[${index}] (${federated.name ?? federated.issuer})`;
    if (production && [federated.issuer, federated.jwksUri].some((url) => url !== undefined && isUrl(url, ['http:']))) {
      issue('AUTH_FEDERATED_ISSUERS', `${at}: issuer and jwksUri must be https in production mode`);
    }
    if (federated.rolesClaim === 'sub' && !federated.roleMap) {
      issue('AUTH_FEDERATED_ISSUERS', `${at}: rolesClaim "sub" needs a roleMap naming the subjects (e.g. system:serviceaccount:<namespace>:<name>) and their roles`);
    }
    if ((s.AUTH_ISSUER ?? []).includes(federated.issuer)) issue('AUTH_FEDERATED_ISSUERS', `${at}: the issuer is already trusted as Entra (AUTH_ISSUER)`);
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

  if (s.INTAKE_AUTH?.includes('standard-webhooks') && (s.WEBHOOK_SECRETS ?? []).length === 0) {
    issue('WEBHOOK_SECRETS', 'required when INTAKE_AUTH includes standard-webhooks: one or more whsec_… secrets, comma-separated');
  }
  if (production && s.APPLICATIONINSIGHTS_CONNECTION_STRING && !s.APPLICATIONINSIGHTS_AUTHENTICATION_STRING) {
    issue(
      'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
      'required in production mode with APPLICATIONINSIGHTS_CONNECTION_STRING: ingestion is Entra-authenticated (local auth disabled), e.g. ClientId=<client id>;Authorization=AAD',
    );
  }
  for (const [include, exclude] of [
    ['SYNC_INCLUDE_KINDS', 'SYNC_EXCLUDE_KINDS'],
    ['SYNC_INCLUDE_NAMESPACES', 'SYNC_EXCLUDE_NAMESPACES'],
  ] as const) {
    const included = new Set((Array.isArray(s[include]) ? s[include] : []).map((v) => v.toLowerCase()));
    const both = (Array.isArray(s[exclude]) ? s[exclude] : []).filter((v) => included.has(v.toLowerCase()));
    if (both.length > 0) issue(exclude, `${both.join(', ')} ${both.length === 1 ? 'is' : 'are'} also in ${include}: a name may be included or excluded, not both`);
  }
  notBelow('QUEUE_RETRY_MAX_DELAY_MS', s.QUEUE_RETRY_MAX_DELAY_MS, 'QUEUE_RETRY_BASE_DELAY_MS', s.QUEUE_RETRY_BASE_DELAY_MS, issue);
}

function notBelow(maxName: SettingName, max: number | undefined, baseName: SettingName, base: number | undefined, issue: (s: SettingName, m: string) => void): void {
  if (max !== undefined && base !== undefined && max < base) issue(maxName, `must not be smaller than ${baseName}`);
}

// Loose: the cross-field rules see the environment's other variables too; the typed configuration takes only `fields`.
export const settingsSchema = z.looseObject(fields).superRefine(crossFieldRules, { when: () => true });

/** Settings only a local stack may use; production mode refuses them and infrastructure never sets them. */
export const LOCAL_ONLY_SETTINGS: readonly string[] = ['CosmosDBConnection', 'ServiceBusConnection', 'COSMOS_CA_CERT_PATH', 'BACKSTAGE_STATIC_TOKEN'];

/** Every app setting the code reads (the infrastructure checks compare it with what the Function App sets). */
export function settingNames(): string[] {
  return Object.keys(fields);
}

/** The settings that have a default (a deployment sets them only to change it). */
export function settingDefaults(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(fields)) {
    const fallback = (field as z.ZodType).safeParse(undefined);
    if (fallback.success && fallback.data !== undefined) out[key] = fallback.data;
  }
  return out;
}

/** Every field path a filter predicate tests. */
function predicatePaths(predicate: FilterPredicate): string[] {
  if (typeof predicate !== 'object' || predicate === null) return [];
  const paths: string[] = [];
  for (const [key, value] of Object.entries(predicate)) {
    if (key === '$all' || key === '$any') for (const inner of value as FilterPredicate[]) paths.push(...predicatePaths(inner));
    else if (key === '$not') paths.push(...predicatePaths(value as FilterPredicate));
    else if (!key.startsWith('$')) paths.push(key);
  }
  return paths;
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
