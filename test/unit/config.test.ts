import { loadConfig, registrationSettings, telemetrySettings } from '../../shared/platform/config';
import { isNcrontab, parseCosmosConnectionString, settingDefaults } from '../../shared/platform/settings';
import { ConfigurationError } from '../../shared/platform/errors';

const production = {
  CosmosDBConnection__accountEndpoint: 'https://acct.documents.azure.com:443/',
  BACKSTAGE_BASE_URL: 'https://backstage.example.com/',
  BACKSTAGE_TOKEN_SCOPE: 'api://11111111-2222-3333-4444-555555555555/.default',
  AUTH_ISSUER: 'https://login.microsoftonline.com/tenant/v2.0',
  AUTH_AUDIENCE: 'api://sync, 6666',
  AZURE_CLIENT_ID: 'client-id',
  ServiceBusConnection__fullyQualifiedNamespace: 'sb-ns.servicebus.windows.net',
};

/** Each bad setting with its messages joined by ' | '. */
function issuesOf(env: Record<string, string | undefined>): Record<string, string> {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError);
    const out: Record<string, string> = {};
    for (const i of (error as ConfigurationError).issues) out[i.setting] = out[i.setting] ? `${out[i.setting]} | ${i.message}` : i.message;
    return out;
  }
  throw new Error('expected a ConfigurationError');
}

test('a complete production configuration with defaults', () => {
  const config = loadConfig(production);
  expect(config).toMatchObject({
    mode: 'production',
    managedIdentityClientId: 'client-id',
    cosmos: { endpoint: 'https://acct.documents.azure.com:443/', databaseName: 'catalog', entitiesContainer: 'entities', maxRetryAttempts: 9 },
    backstage: { baseUrl: 'https://backstage.example.com', requestTimeoutInMs: 10_000, maxRetries: 4, pageSize: 500, compression: 'none' },
    sync: { tombstoneTtlInSeconds: 604_800, maxAttempts: 5 },
    reconcile: { schedule: '0 */30 * * * *', maxDeleteRatio: 0.2 },
    auth: {
      trusts: [{ kind: 'entra', issuers: ['https://login.microsoftonline.com/tenant/v2.0'], audiences: ['api://sync', '6666'], rolesClaim: 'roles' }],
      roleClients: {},
      readRole: 'Catalog.Read',
      adminRole: 'Catalog.Admin',
    },
  });
  expect(config.cosmos.key).toBeUndefined();
  expect(config.backstage.staticToken).toBeUndefined();
});

test('an empty environment names every required setting at once', () => {
  expect(issuesOf({})).toEqual({
    CosmosDBConnection__accountEndpoint: expect.stringMatching(/^required/),
    BACKSTAGE_BASE_URL: 'required',
    BACKSTAGE_TOKEN_SCOPE: expect.stringMatching(/^required/),
    AUTH_ISSUER: 'required',
    AUTH_AUDIENCE: 'required',
    ServiceBusConnection__fullyQualifiedNamespace: expect.stringMatching(/^required/),
  });
});

test('the error message lists each setting on its own line', () => {
  expect(() => loadConfig({ ...production, BACKSTAGE_BASE_URL: 'backstage.example.com', BACKSTAGE_PAGE_SIZE: 'lots' })).toThrow(
    /Invalid configuration \(2 problems\):\n {2}- BACKSTAGE_BASE_URL: must be an absolute http\(s\) URL\n {2}- BACKSTAGE_PAGE_SIZE: must be a number/,
  );
});

test('BACKSTAGE_COMPRESSION takes none, gzip or br', () => {
  expect(loadConfig({ ...production, BACKSTAGE_COMPRESSION: 'gzip' }).backstage.compression).toBe('gzip');
  expect(loadConfig({ ...production, BACKSTAGE_COMPRESSION: 'br' }).backstage.compression).toBe('br');
  expect(issuesOf({ ...production, BACKSTAGE_COMPRESSION: 'deflate' })).toEqual({ BACKSTAGE_COMPRESSION: "must be 'none', 'gzip' or 'br'" });
});

test('production mode refuses keys, static tokens and extra CAs', () => {
  const issues = issuesOf({
    ...production,
    CosmosDBConnection__accountEndpoint: undefined,
    CosmosDBConnection: 'AccountEndpoint=https://acct.documents.azure.com:443/;AccountKey=c2VjcmV0;',
    BACKSTAGE_TOKEN_SCOPE: undefined,
    BACKSTAGE_STATIC_TOKEN: 'static-token-value',
    COSMOS_CA_CERT_PATH: '/tmp/ca.pem',
  });
  expect(issues.CosmosDBConnection).toMatch(/key-based connection strings are refused in production mode/);
  expect(issues.BACKSTAGE_STATIC_TOKEN).toMatch(/refused in production mode/);
  expect(issues.COSMOS_CA_CERT_PATH).toMatch(/refused in production mode/);
  // Values are never echoed back.
  expect(JSON.stringify(issues)).not.toMatch(/c2VjcmV0|static-token-value/);
});

test('Service Bus: identity by default, connection strings for the local broker only', () => {
  expect(loadConfig(production).serviceBus).toEqual({ fullyQualifiedNamespace: 'sb-ns.servicebus.windows.net', queueName: 'entity-sync', sendTimeoutInMs: 10_000 });
  const local = 'Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;';
  expect(issuesOf({ ...production, ServiceBusConnection__fullyQualifiedNamespace: undefined, ServiceBusConnection: local }).ServiceBusConnection).toMatch(
    /connection strings are refused in production mode/,
  );
  expect(loadConfig({ ...production, APP_MODE: 'local', ServiceBusConnection__fullyQualifiedNamespace: undefined, ServiceBusConnection: local }).serviceBus.connectionString).toBe(local);
  expect(issuesOf({ ...production, ServiceBusConnection__fullyQualifiedNamespace: 'https://sb-ns/' }).ServiceBusConnection__fullyQualifiedNamespace).toMatch(/host name/);
});

test('intake authentication modes and webhook secrets', () => {
  expect(loadConfig(production).intake).toMatchObject({ authModes: ['entra'], webhookSecrets: [], maxBodyBytes: 1_048_576, maxBatchEvents: 500 });
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  expect(loadConfig({ ...production, INTAKE_AUTH: 'entra, standard-webhooks', WEBHOOK_SECRETS: `${secret},${secret}` }).intake).toMatchObject({
    authModes: ['entra', 'standard-webhooks'],
    webhookSecrets: [secret, secret],
  });
  expect(issuesOf({ ...production, INTAKE_AUTH: 'standard-webhooks' }).WEBHOOK_SECRETS).toMatch(/required when INTAKE_AUTH/);
  expect(issuesOf({ ...production, INTAKE_AUTH: 'standard-webhooks', WEBHOOK_SECRETS: 'hunter2' }).WEBHOOK_SECRETS).toMatch(/whsec_/);
  // The platform leaves a reference it could not resolve in place: say that, not "must be whsec_…".
  const unresolved = issuesOf({ ...production, INTAKE_AUTH: 'standard-webhooks', WEBHOOK_SECRETS: '@Microsoft.KeyVault(VaultName=kv-x;SecretName=webhook-secrets)' }).WEBHOOK_SECRETS;
  expect(unresolved).toMatch(/Key Vault reference the platform could not resolve: give the app's identity Key Vault Secrets User on the secret/);
  expect(unresolved).not.toMatch(/whsec_/);
  expect(issuesOf({ ...production, INTAKE_AUTH: 'basic' }).INTAKE_AUTH).toMatch(/'entra', 'standard-webhooks' or both/);
  expect(issuesOf({ ...production, QUEUE_RETRY_BASE_DELAY_MS: '1000', QUEUE_RETRY_MAX_DELAY_MS: '10' }).QUEUE_RETRY_MAX_DELAY_MS).toMatch(/must not be smaller/);
});

test('production mode requires TLS endpoints', () => {
  const issues = issuesOf({ ...production, CosmosDBConnection__accountEndpoint: 'http://acct:8081/', AUTH_ISSUER: 'http://issuer/v2.0' });
  expect(issues.CosmosDBConnection__accountEndpoint).toMatch(/must be https/);
  expect(issues.AUTH_ISSUER).toMatch(/must be https/);
});

test('local mode accepts a connection string and a static token', () => {
  const config = loadConfig({
    ...production,
    APP_MODE: 'local',
    CosmosDBConnection__accountEndpoint: undefined,
    CosmosDBConnection: 'AccountEndpoint=https://127.0.0.1:8081/;AccountKey=a2V5;',
    BACKSTAGE_TOKEN_SCOPE: undefined,
    BACKSTAGE_STATIC_TOKEN: 'local-static-token',
  });
  expect(config.cosmos).toMatchObject({ endpoint: 'https://127.0.0.1:8081/', key: 'a2V5' });
  expect(config.backstage.staticToken).toBe('local-static-token');
});

test('conflicting and malformed settings', () => {
  const issues = issuesOf({
    ...production,
    APP_MODE: 'local',
    CosmosDBConnection: 'nonsense',
    BACKSTAGE_STATIC_TOKEN: 'x'.repeat(10),
    BACKSTAGE_RETRY_BASE_DELAY_MS: '1000',
    BACKSTAGE_RETRY_MAX_DELAY_MS: '10',
    RECONCILE_MAX_DELETE_RATIO: '1.5',
    RECONCILE_SCHEDULE: '*/5 * * * *',
    APP_MODE_TYPO: 'ignored',
  });
  expect(issues).toMatchObject({
    CosmosDBConnection: expect.stringMatching(/not both.*must look like AccountEndpoint/),
    BACKSTAGE_STATIC_TOKEN: expect.stringMatching(/not both/),
    BACKSTAGE_RETRY_MAX_DELAY_MS: expect.stringMatching(/must not be smaller/),
    RECONCILE_MAX_DELETE_RATIO: 'must be at most 1',
    RECONCILE_SCHEDULE: expect.stringMatching(/six-field NCRONTAB/),
  });
  expect(issuesOf({ ...production, APP_MODE: 'staging' }).APP_MODE).toMatch(/'production' or 'local'/);
  expect(issuesOf({ ...production, BACKSTAGE_TOKEN_SCOPE: 'api://backstage' }).BACKSTAGE_TOKEN_SCOPE).toMatch(/\/\.default/);
  expect(issuesOf({ ...production, BACKSTAGE_MAX_RETRIES: '2.5' }).BACKSTAGE_MAX_RETRIES).toMatch(/whole number/);
});

test('empty values count as unset', () => {
  expect(loadConfig({ ...production, COSMOS_DATABASE_NAME: '', LOG_LEVEL: '  ' }).cosmos.databaseName).toBe('catalog');
});

test('timer schedules', () => {
  expect(isNcrontab('0 */30 * * * *')).toBe(true);
  expect(isNcrontab('0 0 2 * * 1-5')).toBe(true);
  expect(isNcrontab('*/30 * * * *')).toBe(false);
  expect(isNcrontab('every half hour')).toBe(false);
});

test('registrations read their settings with the same rules and defaults as the full validation', () => {
  expect(registrationSettings({})).toEqual({
    reconcileSchedule: '0 */30 * * * *',
    monitorSchedule: '0 * * * * *',
    databaseName: 'catalog',
    entitiesContainer: 'entities',
    leasesContainer: 'leases',
    queueName: 'entity-sync',
  });
  const given = registrationSettings({ RECONCILE_SCHEDULE: ' 0 0 * * * * ', COSMOS_DATABASE_NAME: 'mirror', SERVICEBUS_QUEUE_NAME: 'sync' });
  expect(given).toMatchObject({ reconcileSchedule: '0 0 * * * *', databaseName: 'mirror', queueName: 'sync' });
  // An invalid value registers the default; the full validation at start-up names it.
  expect(registrationSettings({ RECONCILE_SCHEDULE: '*/5 * * * *' }).reconcileSchedule).toBe('0 */30 * * * *');
  expect(() => loadConfig({ ...production, RECONCILE_SCHEDULE: '*/5 * * * *' })).toThrow(/RECONCILE_SCHEDULE/);
  expect(registrationSettings({ MONITOR_SCHEDULE: '0 */5 * * * *' }).monitorSchedule).toBe('0 */5 * * * *');
  expect(() => loadConfig({ ...production, MONITOR_SCHEDULE: 'every minute' })).toThrow(/MONITOR_SCHEDULE/);
  expect(settingDefaults()).toMatchObject({ RECONCILE_SCHEDULE: '0 */30 * * * *', SERVICEBUS_QUEUE_NAME: 'entity-sync', COSMOS_THROTTLE_RETRIES: 5 });
});

test('telemetry reads the connection-string rule of the configuration: an invalid string leaves telemetry off', () => {
  const connectionString = 'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://ingest.example/';
  expect(telemetrySettings({})).toEqual({ entraAuthentication: false, samplingRatio: 1, tracesPerSecond: 5 });
  expect(telemetrySettings({ APPLICATIONINSIGHTS_CONNECTION_STRING: connectionString, APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD', TELEMETRY_SAMPLING_RATIO: '0.5' })).toEqual({
    connectionString,
    entraAuthentication: true,
    samplingRatio: 0.5,
    tracesPerSecond: 5,
  });
  expect(telemetrySettings({ APPLICATIONINSIGHTS_CONNECTION_STRING: 'not a connection string' }).connectionString).toBeUndefined();
  expect(() => loadConfig({ ...production, APPLICATIONINSIGHTS_CONNECTION_STRING: 'not a connection string' })).toThrow(/APPLICATIONINSIGHTS_CONNECTION_STRING: must be an Application Insights connection string/);
});

test('Cosmos throttling retries have their own settings; the old name is refused with the new one', () => {
  expect(loadConfig(production).cosmos.throttleRetry).toEqual({ maxRetries: 5, baseDelayInMs: 500, maxDelayInMs: 30_000 });
  expect(loadConfig({ ...production, COSMOS_THROTTLE_RETRIES: '2', BACKSTAGE_RETRY_BASE_DELAY_MS: '50' }).cosmos.throttleRetry).toEqual({ maxRetries: 2, baseDelayInMs: 500, maxDelayInMs: 30_000 });
  expect(issuesOf({ ...production, RECONCILE_WRITE_MAX_RETRIES: '5' }).RECONCILE_WRITE_MAX_RETRIES).toBe('renamed to COSMOS_THROTTLE_RETRIES');
  expect(issuesOf({ ...production, COSMOS_THROTTLE_RETRY_BASE_DELAY_MS: '1000', COSMOS_THROTTLE_RETRY_MAX_DELAY_MS: '10' }).COSMOS_THROTTLE_RETRY_MAX_DELAY_MS).toMatch(/must not be smaller/);
});

test('connection strings', () => {
  expect(parseCosmosConnectionString('AccountEndpoint=https://a:1/;AccountKey=k==;')).toEqual({ endpoint: 'https://a:1/', key: 'k==' });
  expect(parseCosmosConnectionString('accountendpoint=https://a/;accountkey=k')).toEqual({ endpoint: 'https://a/', key: 'k' });
  expect(parseCosmosConnectionString('AccountEndpoint=https://a/')).toBeUndefined();
  expect(parseCosmosConnectionString('AccountKey=k')).toBeUndefined();
});

test('production refuses credential secrets by name, and never echoes them', () => {
  const secrets = {
    AZURE_CLIENT_SECRET: 'client-secret-value',
    AZURE_CLIENT_CERTIFICATE_PATH: '/certs/sp.pem',
    AZURE_CLIENT_CERTIFICATE_PASSWORD: 'certificate-password-value',
    AZURE_USERNAME: 'someone@example.com',
    AZURE_PASSWORD: 'password-value',
  };
  const issues = issuesOf({ ...production, ...secrets });
  for (const name of Object.keys(secrets)) expect(issues[name]).toMatch(/refused in production mode: the app authenticates only with its managed identity/);
  expect(JSON.stringify(issues)).not.toMatch(/client-secret-value|certificate-password-value|password-value/);
  // A developer's machine may hold them; local mode uses the developer credential chain.
  expect(() => loadConfig({ ...production, ...secrets, APP_MODE: 'local' })).not.toThrow();
});

test('local mode is refused where the Functions platform runs the app', () => {
  for (const variable of ['WEBSITE_INSTANCE_ID', 'WEBSITE_OWNER_NAME', 'WEBSITE_SITE_NAME']) {
    expect(issuesOf({ ...production, APP_MODE: 'local', [variable]: 'set-by-azure' }).APP_MODE).toMatch(new RegExp(`'local' is refused .*${variable} is set`));
  }
  // Production mode in Azure is what those variables are for.
  expect(loadConfig({ ...production, WEBSITE_INSTANCE_ID: 'abc', WEBSITE_SITE_NAME: 'func-sync' }).mode).toBe('production');
});

test('production sends bearer tokens to Backstage over TLS only', () => {
  expect(issuesOf({ ...production, BACKSTAGE_BASE_URL: 'http://backstage.internal:7007' }).BACKSTAGE_BASE_URL).toMatch(/must be https in production mode/);
  expect(loadConfig({ ...production, APP_MODE: 'local', BACKSTAGE_BASE_URL: 'http://127.0.0.1:7007' }).backstage.baseUrl).toBe('http://127.0.0.1:7007');
});

test('federated issuers: JSON, with their own audiences and role claims, validated as a whole', () => {
  const aks = { name: 'aks', issuer: 'https://oidc.prod-aks.azure.com/abc/', audiences: ['backstage-cosmos-sync'], rolesClaim: 'sub', roleMap: { 'system:serviceaccount:backstage:backstage': ['Events.Send'] } };
  const config = loadConfig({ ...production, AUTH_FEDERATED_ISSUERS: JSON.stringify([aks]), AUTH_ROLE_CLIENTS: '{"Catalog.Admin":["ops-console"]}' });
  expect(config.auth.trusts).toEqual([
    { kind: 'entra', name: 'entra', issuers: ['https://login.microsoftonline.com/tenant/v2.0'], audiences: ['api://sync', '6666'], rolesClaim: 'roles' },
    { kind: 'federated', name: 'aks', issuers: [aks.issuer], audiences: aks.audiences, rolesClaim: 'sub', roleMap: aks.roleMap },
  ]);
  expect(config.auth.roleClients).toEqual({ 'Catalog.Admin': ['ops-console'] });

  expect(issuesOf({ ...production, AUTH_FEDERATED_ISSUERS: '[{issuer: x}]' }).AUTH_FEDERATED_ISSUERS).toMatch(/must be JSON, e.g. \[/);
  expect(issuesOf({ ...production, AUTH_FEDERATED_ISSUERS: JSON.stringify([{ ...aks, roleMap: undefined }]) }).AUTH_FEDERATED_ISSUERS).toMatch(/rolesClaim "sub" needs a roleMap/);
  expect(issuesOf({ ...production, AUTH_FEDERATED_ISSUERS: JSON.stringify([{ ...aks, issuer: 'http://oidc.internal/' }]) }).AUTH_FEDERATED_ISSUERS).toMatch(/must be https in production mode/);
  expect(issuesOf({ ...production, AUTH_FEDERATED_ISSUERS: JSON.stringify([{ ...aks, audiences: [] }]) }).AUTH_FEDERATED_ISSUERS).toMatch(/at least one audience/);
  expect(issuesOf({ ...production, AUTH_FEDERATED_ISSUERS: JSON.stringify([{ ...aks, issuer: 'https://login.microsoftonline.com/tenant/v2.0' }]) }).AUTH_FEDERATED_ISSUERS).toMatch(/already trusted as Entra/);
  expect(issuesOf({ ...production, AUTH_FEDERATED_ISSUERS: JSON.stringify([{ ...aks, typo: true }]) }).AUTH_FEDERATED_ISSUERS).toMatch(/typo/);
  expect(issuesOf({ ...production, AUTH_ROLE_CLIENTS: '{"Catalog.Admin":[]}' }).AUTH_ROLE_CLIENTS).toMatch(/at least one client id/);
});

test('sync scope settings: kinds, namespaces and a catalog filter predicate, each validated', () => {
  const config = loadConfig({
    ...production,
    SYNC_INCLUDE_KINDS: 'Component, API,Component',
    SYNC_EXCLUDE_NAMESPACES: 'sandbox',
    SYNC_CATALOG_FILTER: '{"$any":[{"spec.lifecycle":"production"},{"metadata.annotations.backstage.io/techdocs-ref":{"$exists":true}}]}',
  });
  expect(config.sync.scope).toEqual({
    includeKinds: ['Component', 'API'],
    excludeKinds: [],
    includeNamespaces: [],
    excludeNamespaces: ['sandbox'],
    catalogFilter: { $any: [{ 'spec.lifecycle': 'production' }, { 'metadata.annotations.backstage.io/techdocs-ref': { $exists: true } }] },
  });
  expect(loadConfig(production).sync.scope).toEqual({ includeKinds: [], excludeKinds: [], includeNamespaces: [], excludeNamespaces: [] });

  const issues = issuesOf({
    ...production,
    SYNC_INCLUDE_KINDS: 'Component,API',
    SYNC_EXCLUDE_KINDS: 'api, User',
    SYNC_INCLUDE_NAMESPACES: 'not a namespace',
    SYNC_CATALOG_FILTER: '{"spec.type":{"$regex":"x"}}',
  });
  expect(issues.SYNC_EXCLUDE_KINDS).toBe('api is also in SYNC_INCLUDE_KINDS: a name may be included or excluded, not both');
  expect(issues.SYNC_INCLUDE_NAMESPACES).toBe('must be comma-separated namespaces, e.g. default,payments');
  expect(issues.SYNC_CATALOG_FILTER).toMatch(/^is not a filter predicate: /);
  expect(issuesOf({ ...production, SYNC_CATALOG_FILTER: '{"relations.ownedBy":"group:default/a"}' }).SYNC_CATALOG_FILTER).toMatch(/^cannot filter on relations\.ownedBy/);
  expect(issuesOf({ ...production, SYNC_CATALOG_FILTER: 'kind=component' }).SYNC_CATALOG_FILTER).toMatch(/^must be JSON, e\.g\. /);
});
