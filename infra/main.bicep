// backstage-cosmos-sync on Azure, keyless throughout: one user-assigned managed identity, data-plane RBAC for
// Cosmos DB, Service Bus, Storage and Application Insights ingestion; local (key) auth disabled everywhere. Private by
// default (privateNetworking): every data service behind a private endpoint with public network access off.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; prefixes every resource name.')
param environmentName string

@minLength(1)
@description('Region for every resource (Flex Consumption must be available there).')
param location string

@description('Backstage base URL the sync reads from, e.g. https://backstage.example.com')
param backstageBaseUrl string

@description('Entra scope of the Backstage app registration, e.g. api://<backstage-app-id>/.default')
param backstageTokenScope string

@description('Accepted audiences of tokens for this API (its app registration client id and/or api:// URI), comma-separated.')
param apiAudience string

@description('Tenant of the callers\' tokens; defaults to this deployment\'s tenant.')
param authTenantId string = tenant().tenantId

@description('Intake authentication: entra, standard-webhooks or both (comma-separated).')
param intakeAuth string = 'entra'

@secure()
@description('Standard Webhooks secrets (whsec_…, comma-separated; the first signs) to store in Key Vault, when intakeAuth includes standard-webhooks. Needed on the first provision; empty later = keep what the vault holds.')
param webhookSecrets string = ''

@description('Object id of the Backstage backend\'s identity: it gets read access to the authored container only. Empty = none.')
param backstagePrincipalId string = ''

@description('Object ids of other consumers of the mirror: read access to entities and edges.')
param mirrorReaderPrincipalIds array = []

@description('Object ids of producers that write authored entities with the Cosmos DB SDK: read, create, replace and upsert on the authored container only (no delete: removals are soft).')
param authoredWriterPrincipalIds array = []

@description('Sync scope (docs/sync-semantics.md): entity kinds to mirror, comma-separated; empty = every kind.')
param syncIncludeKinds string = ''
@description('Sync scope: entity kinds never mirrored, comma-separated.')
param syncExcludeKinds string = ''
@description('Sync scope: namespaces to mirror, comma-separated; empty = every namespace.')
param syncIncludeNamespaces string = ''
@description('Sync scope: namespaces never mirrored, comma-separated.')
param syncExcludeNamespaces string = ''
@description('Sync scope: a Backstage catalog filter predicate (JSON) every mirrored entity matches; empty = none.')
param syncCatalogFilter string = ''

@description('NCRONTAB schedule of the full reconcile.')
param reconcileSchedule string = '0 */30 * * * *'

@description('Private by default: Cosmos DB, Service Bus (Premium), Storage, Key Vault and Application Insights ingestion reachable through private endpoints only, the Function App integrated with a VNet whose internet traffic leaves from one static IP. false (azd env PRIVATE_NETWORKING=false) is the opt-out for throwaway development environments: public endpoints, Service Bus Standard, no VNet, NAT gateway or private link scope.')
param privateNetworking bool = true

@description('Email address for alert notifications; empty = alerts without an action group.')
param alertEmail string = ''

@description('Maximum Flex Consumption instances.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of each Flex Consumption instance, in MB. The Node worker gets half of it as its heap limit. 512 holds a 100 000-entity catalog (docs/performance.md#scale); 2048 leaves room beyond that.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

var tags = { 'azd-env-name': environmentName, application: 'backstage-cosmos-sync' }
var token = toLower(uniqueString(subscription().id, environmentName, location))

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  scope: rg
  name: 'identity'
  params: { name: 'id-sync-${token}', location: location, tags: tags }
}

module monitoring 'app/monitoring.bicep' = {
  scope: rg
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-${token}'
    appInsightsName: 'appi-${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    privateNetworking: privateNetworking
  }
}

module network 'app/network.bicep' = if (privateNetworking) {
  scope: rg
  name: 'network'
  params: { name: 'vnet-${token}', location: location, tags: tags }
}

// Application Insights ingestion through private link. After monitoring (the resources it scopes) and network (the
// subnet and the zones its endpoint registers in).
module privateLinkScope 'app/private-link-scope.bicep' = if (privateNetworking) {
  scope: rg
  name: 'private-link-scope'
  params: {
    name: 'pls-monitor-${token}'
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    privateEndpointSubnetId: network!.outputs.privateEndpointSubnetId
    monitorDnsZoneId: network!.outputs.dnsZoneIds.monitor
    omsDnsZoneId: network!.outputs.dnsZoneIds.oms
    odsDnsZoneId: network!.outputs.dnsZoneIds.ods
    agentServiceDnsZoneId: network!.outputs.dnsZoneIds.agentService
    blobDnsZoneId: network!.outputs.dnsZoneIds.blob
  }
}

module storage 'app/storage.bicep' = {
  scope: rg
  name: 'storage'
  params: {
    name: 'st${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    privateNetworking: privateNetworking
    privateEndpointSubnetId: privateNetworking ? network!.outputs.privateEndpointSubnetId : ''
    blobDnsZoneId: privateNetworking ? network!.outputs.dnsZoneIds.blob : ''
    queueDnsZoneId: privateNetworking ? network!.outputs.dnsZoneIds.queue : ''
    tableDnsZoneId: privateNetworking ? network!.outputs.dnsZoneIds.table : ''
  }
}

module cosmos 'app/cosmos.bicep' = {
  scope: rg
  name: 'cosmos'
  params: {
    name: 'cosmos-${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    backstagePrincipalId: backstagePrincipalId
    readerPrincipalIds: mirrorReaderPrincipalIds
    authorPrincipalIds: authoredWriterPrincipalIds
    privateNetworking: privateNetworking
    privateEndpointSubnetId: privateNetworking ? network!.outputs.privateEndpointSubnetId : ''
    privateDnsZoneId: privateNetworking ? network!.outputs.dnsZoneIds.cosmos : ''
  }
}

var webhooksEnabled = contains(toLower(intakeAuth), 'standard-webhooks')

module keyVault 'app/keyvault.bicep' = {
  scope: rg
  name: 'keyvault'
  params: {
    name: 'kv-${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    webhooksEnabled: webhooksEnabled
    webhookSecrets: webhookSecrets
    privateNetworking: privateNetworking
    privateEndpointSubnetId: privateNetworking ? network!.outputs.privateEndpointSubnetId : ''
    privateDnsZoneId: privateNetworking ? network!.outputs.dnsZoneIds.keyVault : ''
  }
}

module serviceBus 'app/servicebus.bicep' = {
  scope: rg
  name: 'servicebus'
  params: {
    name: 'sb-${token}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    privateNetworking: privateNetworking
    privateEndpointSubnetId: privateNetworking ? network!.outputs.privateEndpointSubnetId : ''
    privateDnsZoneId: privateNetworking ? network!.outputs.dnsZoneIds.serviceBus : ''
  }
}

module function 'app/function.bicep' = {
  scope: rg
  name: 'function'
  params: {
    name: 'func-sync-${token}'
    planName: 'plan-sync-${token}'
    location: location
    tags: union(tags, { 'azd-service-name': 'api' })
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.connectionString
    cosmosEndpoint: cosmos.outputs.endpoint
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    serviceBusQueueName: serviceBus.outputs.queueName
    cosmosDatabaseName: cosmos.outputs.databaseName
    backstageBaseUrl: backstageBaseUrl
    backstageTokenScope: backstageTokenScope
    authIssuer: '${environment().authentication.loginEndpoint}${authTenantId}/v2.0'
    apiAudience: apiAudience
    intakeAuth: intakeAuth
    webhooksEnabled: webhooksEnabled
    webhookSecretsReference: keyVault.outputs.webhookSecretsReference
    reconcileSchedule: reconcileSchedule
    syncScope: {
      includeKinds: syncIncludeKinds
      excludeKinds: syncExcludeKinds
      includeNamespaces: syncIncludeNamespaces
      excludeNamespaces: syncExcludeNamespaces
      catalogFilter: syncCatalogFilter
    }
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    integrationSubnetId: privateNetworking ? network!.outputs.integrationSubnetId : ''
  }
  // Telemetry from the first start goes through the private link scope's endpoint.
  dependsOn: [privateLinkScope]
}

module alerts 'app/alerts.bicep' = {
  scope: rg
  name: 'alerts'
  params: {
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    serviceBusNamespaceId: serviceBus.outputs.id
    serviceBusQueueName: serviceBus.outputs.queueName
    cosmosAccountId: cosmos.outputs.id
    alertEmail: alertEmail
    namePrefix: token
  }
}

module workbook 'app/workbook.bicep' = {
  scope: rg
  name: 'workbook'
  params: { location: location, tags: tags, appInsightsId: monitoring.outputs.appInsightsId, name: guid(rg.id, 'sync-health') }
}

// Outputs are names and endpoints, never secrets.
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output FUNCTION_APP_NAME string = function.outputs.name
output FUNCTION_APP_URL string = function.outputs.url
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output SERVICEBUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
// Read by the postprovision hook (scripts/catalog-deployment.ts) to describe the deployment in the catalog.
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output COSMOS_ACCOUNT_ID string = cosmos.outputs.id
output COSMOS_DATABASE_NAME string = cosmos.outputs.databaseName
output SERVICEBUS_NAMESPACE_ID string = serviceBus.outputs.id
output SERVICEBUS_QUEUE_NAME string = serviceBus.outputs.queueName
output PUBLIC_NETWORK_ACCESS string = privateNetworking ? 'Disabled' : 'Enabled'
// The one address the Function App's internet traffic (Backstage's catalog API, Entra) leaves from, for Backstage's
// ingress allow-list; empty when private networking is off (the platform's shared outbound addresses are used then).
output OUTBOUND_IP_ADDRESS string = privateNetworking ? network!.outputs.outboundIpAddress : ''
output MIRROR_READER_PRINCIPAL_IDS array = mirrorReaderPrincipalIds
output AUTHORED_WRITER_PRINCIPAL_IDS array = authoredWriterPrincipalIds
