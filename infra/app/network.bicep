// Optional private networking: a VNet with a subnet for the Function App's integration and one for private
// endpoints, and the private DNS zones the endpoints register in.
param name string
param location string
param tags object

resource vnet 'Microsoft.Network/virtualNetworks@2024-01-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: { addressPrefixes: ['10.40.0.0/16'] }
    subnets: [
      {
        name: 'integration'
        properties: {
          addressPrefix: '10.40.0.0/24'
          delegations: [{ name: 'flex', properties: { serviceName: 'Microsoft.App/environments' } }]
        }
      }
      {
        name: 'private-endpoints'
        properties: { addressPrefix: '10.40.1.0/24', privateEndpointNetworkPolicies: 'Disabled' }
      }
    ]
  }
}

var zones = [
  'privatelink.documents.azure.com'
  'privatelink.servicebus.windows.net'
  'privatelink.blob.${environment().suffixes.storage}'
  'privatelink.vaultcore.azure.net'
]

resource dns 'Microsoft.Network/privateDnsZones@2024-06-01' = [
  for zone in zones: {
    name: zone
    location: 'global'
    tags: tags
  }
]

resource links 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = [
  for (zone, i) in zones: {
    parent: dns[i]
    name: '${name}-link'
    location: 'global'
    properties: { virtualNetwork: { id: vnet.id }, registrationEnabled: false }
  }
]

output integrationSubnetId string = vnet.properties.subnets[0].id
output privateEndpointSubnetId string = vnet.properties.subnets[1].id
output cosmosDnsZoneId string = dns[0].id
output serviceBusDnsZoneId string = dns[1].id
output blobDnsZoneId string = dns[2].id
output keyVaultDnsZoneId string = dns[3].id
