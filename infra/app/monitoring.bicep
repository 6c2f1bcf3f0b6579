// Log Analytics + workspace-based Application Insights with local (instrumentation-key) auth disabled: the app
// ingests with its managed identity (Monitoring Metrics Publisher). With private networking (the default), ingestion is
// accepted only through the Azure Monitor Private Link Scope (private-link-scope.bicep); queries stay open, so the
// portal, the workbook and the log alerts keep working from anywhere (still behind Entra and RBAC).
param logAnalyticsName string
param appInsightsName string
param location string
param tags object
param principalId string
@description('True: public ingestion off (private link only); public query on.')
param privateNetworking bool

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
    features: { disableLocalAuth: true }
    publicNetworkAccessForIngestion: privateNetworking ? 'Disabled' : 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true
    publicNetworkAccessForIngestion: privateNetworking ? 'Disabled' : 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: appInsights
  name: guid(appInsights.id, principalId, monitoringMetricsPublisher)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output appInsightsId string = appInsights.id
output appInsightsName string = appInsights.name
// The connection string names the resource and the ingestion endpoint; with local auth disabled it grants nothing.
output connectionString string = appInsights.properties.ConnectionString
output logAnalyticsId string = logAnalytics.id
