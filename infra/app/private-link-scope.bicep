// Application Insights ingestion over private link (deployed with private networking only): an Azure Monitor Private
// Link Scope holding the Application Insights component and its Log Analytics workspace, and a private endpoint for it
// in the VNet, registered in the five zones Azure Monitor's endpoint needs (network.bicep links each to the VNet).
//
// Ingestion is PrivateOnly: from the VNet, telemetry goes to the resources in this scope and nowhere else, and the two
// resources refuse public ingestion (monitoring.bicep). Query is Open: the portal, the "Catalog sync health" workbook
// and the log alerts (scheduled queries, which run in Azure Monitor, not in the VNet) read the data over public
// endpoints, still behind Entra and Azure RBAC.
param name string
param location string
param tags object
param appInsightsId string
param logAnalyticsId string
param privateEndpointSubnetId string
param monitorDnsZoneId string
param omsDnsZoneId string
param odsDnsZoneId string
param agentServiceDnsZoneId string
param blobDnsZoneId string

resource scope 'Microsoft.Insights/privateLinkScopes@2021-07-01-preview' = {
  name: name
  location: 'global'
  tags: tags
  properties: {
    accessModeSettings: { ingestionAccessMode: 'PrivateOnly', queryAccessMode: 'Open' }
  }
}

resource appInsightsScoped 'Microsoft.Insights/privateLinkScopes/scopedResources@2021-07-01-preview' = {
  parent: scope
  name: 'appi'
  properties: { linkedResourceId: appInsightsId }
}

resource logAnalyticsScoped 'Microsoft.Insights/privateLinkScopes/scopedResources@2021-07-01-preview' = {
  parent: scope
  name: 'log'
  properties: { linkedResourceId: logAnalyticsId }
}

resource endpoint 'Microsoft.Network/privateEndpoints@2024-01-01' = {
  name: 'pe-${name}'
  location: location
  tags: tags
  properties: {
    subnet: { id: privateEndpointSubnetId }
    privateLinkServiceConnections: [{ name: 'azuremonitor', properties: { privateLinkServiceId: scope.id, groupIds: ['azuremonitor'] } }]
  }
  // The endpoint's DNS records cover the resources in the scope when it is created.
  dependsOn: [appInsightsScoped, logAnalyticsScoped]
}

resource endpointDns 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-01-01' = {
  parent: endpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      { name: 'monitor', properties: { privateDnsZoneId: monitorDnsZoneId } }
      { name: 'oms', properties: { privateDnsZoneId: omsDnsZoneId } }
      { name: 'ods', properties: { privateDnsZoneId: odsDnsZoneId } }
      { name: 'agentsvc', properties: { privateDnsZoneId: agentServiceDnsZoneId } }
      { name: 'blob', properties: { privateDnsZoneId: blobDnsZoneId } }
    ]
  }
}

output id string = scope.id
