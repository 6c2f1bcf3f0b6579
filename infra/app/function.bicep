// The Function App on Flex Consumption (Node 22), running as the user-assigned identity. Every connection is
// identity-based; no app setting holds a key or a connection string with a key.
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerUrl string
param appInsightsConnectionString string
param cosmosEndpoint string
param cosmosDatabaseName string
param serviceBusNamespace string
param serviceBusQueueName string
param backstageBaseUrl string
param backstageTokenScope string
param authIssuer string
param apiAudience string
param intakeAuth string
@description('True when the intake accepts Standard Webhooks.')
param webhooksEnabled bool
@description('Key Vault reference to the Standard Webhooks secrets, resolved by the platform with the app identity.')
param webhookSecretsReference string
param reconcileSchedule string
@description('The sync scope settings: includeKinds, excludeKinds, includeNamespaces, excludeNamespaces (comma-separated) and catalogFilter (JSON); empty strings = unset.')
param syncScope object
param maximumInstanceCount int
@description('Memory of each instance, in MB; the Node worker\'s heap limit is half of it.')
param instanceMemoryMB int
@description('Subnet for VNet integration (its NAT gateway gives the app one outbound IP); empty = none.')
param integrationSubnetId string

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identityId}': {} } }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references in app settings resolve with the user-assigned identity (not a system-assigned one).
    keyVaultReferenceIdentity: identityId
    // VNet integration (private networking, the default). On Flex Consumption the app's outbound traffic and the
    // platform's resolution of Key Vault references are routed into the VNet without vnetRouteAllEnabled or
    // outboundVnetRouting, so neither is set (docs/operations.md, "Networking").
    virtualNetworkSubnetId: empty(integrationSubnetId) ? null : integrationSubnetId
    siteConfig: { minTlsVersion: '1.2', ftpsState: 'Disabled' }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: maximumInstanceCount, instanceMemoryMB: instanceMemoryMB }
      runtime: { name: 'node', version: '22' }
    }
  }
}

// INTAKE_MAX_BODY_BYTES's default in the code.
var intakeMaxBodyBytes = 1048576

var loginEndpoint = environment().authentication.loginEndpoint
var tenantPart = split(authIssuer, '/')[3]

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: app
  name: 'appsettings'
  properties: {
    // The Functions host's own storage, through the identity.
    AzureWebJobsStorage__blobServiceUri: 'https://${storageAccountName}.blob.${environment().suffixes.storage}'
    AzureWebJobsStorage__queueServiceUri: 'https://${storageAccountName}.queue.${environment().suffixes.storage}'
    AzureWebJobsStorage__tableServiceUri: 'https://${storageAccountName}.table.${environment().suffixes.storage}'
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId

    // The app's own settings: only what this deployment decides. Every tunable has its default in the code
    // (shared/platform/config.ts, docs/configuration.md); add a line here only to change one.

    // Read by both the triggers (host) and the SDK clients (code).
    CosmosDBConnection__accountEndpoint: cosmosEndpoint
    CosmosDBConnection__credential: 'managedidentity'
    CosmosDBConnection__clientId: identityClientId
    ServiceBusConnection__fullyQualifiedNamespace: serviceBusNamespace
    ServiceBusConnection__credential: 'managedidentity'
    ServiceBusConnection__clientId: identityClientId

    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'

    AZURE_CLIENT_ID: identityClientId

    COSMOS_DATABASE_NAME: cosmosDatabaseName

    BACKSTAGE_BASE_URL: backstageBaseUrl
    BACKSTAGE_TOKEN_SCOPE: backstageTokenScope

    RECONCILE_SCHEDULE: reconcileSchedule
    SYNC_INCLUDE_KINDS: syncScope.includeKinds
    SYNC_EXCLUDE_KINDS: syncScope.excludeKinds
    SYNC_INCLUDE_NAMESPACES: syncScope.includeNamespaces
    SYNC_EXCLUDE_NAMESPACES: syncScope.excludeNamespaces
    SYNC_CATALOG_FILTER: syncScope.catalogFilter

    AUTH_ISSUER: authIssuer
    AUTH_AUDIENCE: apiAudience
    AUTH_JWKS_URI: '${loginEndpoint}${tenantPart}/discovery/v2.0/keys'

    SERVICEBUS_QUEUE_NAME: serviceBusQueueName
    INTAKE_AUTH: intakeAuth
    // A Key Vault reference, never the secret itself; empty when the intake takes tokens only.
    WEBHOOK_SECRETS: webhooksEnabled ? webhookSecretsReference : ''

    // The host refuses bodies this large before the app reads a byte; the intake's own limit (INTAKE_MAX_BODY_BYTES,
    // 1 MiB by default) answers anything between with a problem+json 413. The infra test keeps them together.
    FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: string(intakeMaxBodyBytes + 65536)

    // The worker's heap limit: half the instance's memory, the share Node takes of a container's memory limit by
    // itself — set here so it does not depend on how the platform exposes that limit. And a 16 MiB semi-space for the
    // young generation: V8's own choice on the larger instances; under a 512 MB instance's heap it would keep 1 MiB
    // and spend far more time collecting (measured: docs/performance.md#scale). The scale benchmark gives its
    // processes the same flags. Append flags (e.g. --enable-source-maps) to this line.
    languageWorkers__node__arguments: '--max-heap-size=${instanceMemoryMB / 2} --max-semi-space-size=16'
  }
}

// No FTP or SCM basic-auth publishing: deployment goes through the identity (azd, the deployment container).
resource ftp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: { allow: false }
}

resource scm 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: { allow: false }
}

output name string = app.name
output url string = 'https://${app.properties.defaultHostName}'
