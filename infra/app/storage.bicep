// The Function App's storage (AzureWebJobsStorage and the deployment package), shared-key access disabled. With
// private networking (the default), reachable only through private endpoints for the three services the Functions
// host is configured with (AzureWebJobsStorage__blobServiceUri, __queueServiceUri, __tableServiceUri in function.bicep).
param name string
param location string
param tags object
param principalId string
@description('True: public network access off, a private endpoint per storage service the host uses.')
param privateNetworking bool
param privateEndpointSubnetId string
param blobDnsZoneId string
param queueDnsZoneId string
param tableDnsZoneId string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    // No trusted-service bypass when private: the app reaches its storage through the private endpoints below
    // (docs/deploy.md, "Private networking", on `azd deploy` into the closed account).
    networkAcls: { defaultAction: privateNetworking ? 'Deny' : 'Allow', bypass: privateNetworking ? 'None' : 'AzureServices' }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deployments 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: 'deployments'
}

// The Functions host keeps its state (timer singleton locks, keys) in blobs: Blob Data Owner is the one role it needs.
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, principalId, storageBlobDataOwner)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource blobEndpoint 'Microsoft.Network/privateEndpoints@2024-01-01' = if (privateNetworking) {
  name: 'pe-${name}-blob'
  location: location
  tags: tags
  properties: {
    subnet: { id: privateEndpointSubnetId }
    privateLinkServiceConnections: [{ name: 'blob', properties: { privateLinkServiceId: storage.id, groupIds: ['blob'] } }]
  }
}

resource blobEndpointDns 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-01-01' = if (privateNetworking) {
  parent: blobEndpoint
  name: 'default'
  properties: { privateDnsZoneConfigs: [{ name: 'blob', properties: { privateDnsZoneId: blobDnsZoneId } }] }
}

resource queueEndpoint 'Microsoft.Network/privateEndpoints@2024-01-01' = if (privateNetworking) {
  name: 'pe-${name}-queue'
  location: location
  tags: tags
  properties: {
    subnet: { id: privateEndpointSubnetId }
    privateLinkServiceConnections: [{ name: 'queue', properties: { privateLinkServiceId: storage.id, groupIds: ['queue'] } }]
  }
}

resource queueEndpointDns 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-01-01' = if (privateNetworking) {
  parent: queueEndpoint
  name: 'default'
  properties: { privateDnsZoneConfigs: [{ name: 'queue', properties: { privateDnsZoneId: queueDnsZoneId } }] }
}

resource tableEndpoint 'Microsoft.Network/privateEndpoints@2024-01-01' = if (privateNetworking) {
  name: 'pe-${name}-table'
  location: location
  tags: tags
  properties: {
    subnet: { id: privateEndpointSubnetId }
    privateLinkServiceConnections: [{ name: 'table', properties: { privateLinkServiceId: storage.id, groupIds: ['table'] } }]
  }
}

resource tableEndpointDns 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-01-01' = if (privateNetworking) {
  parent: tableEndpoint
  name: 'default'
  properties: { privateDnsZoneConfigs: [{ name: 'table', properties: { privateDnsZoneId: tableDnsZoneId } }] }
}

output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output deploymentContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deployments.name}'
