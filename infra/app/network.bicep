// Private networking (the default; main.bicep's privateNetworking): a VNet with a subnet for the Function App's
// integration and one for private endpoints, the private DNS zones the endpoints register in (every zone linked to the
// VNet), and a NAT gateway with one static public IP on the integration subnet, so that everything the app sends to
// the internet (Backstage's catalog API, Entra) leaves from one known address.
param name string
param location string
param tags object

// Standard SKU, static: the address stays the same for the life of the resource, whatever the app's instances do.
resource outboundIp 'Microsoft.Network/publicIPAddresses@2024-01-01' = {
  name: 'pip-${name}'
  location: location
  tags: tags
  sku: { name: 'Standard', tier: 'Regional' }
  properties: { publicIPAllocationMethod: 'Static', publicIPAddressVersion: 'IPv4' }
}

resource nat 'Microsoft.Network/natGateways@2024-01-01' = {
  name: 'nat-${name}'
  location: location
  tags: tags
  sku: { name: 'Standard' }
  properties: {
    idleTimeoutInMinutes: 4
    publicIpAddresses: [{ id: outboundIp.id }]
  }
}

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
          // Flex Consumption routes all of the app's outbound traffic into the VNet; what is not for a private
          // endpoint leaves through this NAT gateway.
          natGateway: { id: nat.id }
        }
      }
      {
        name: 'private-endpoints'
        properties: { addressPrefix: '10.40.1.0/24', privateEndpointNetworkPolicies: 'Disabled' }
      }
    ]
  }
}

// Every private DNS zone a private endpoint of this deployment registers in, by the name main.bicep asks for.
// monitor, oms, ods, agentService and blob are the zones of the Azure Monitor Private Link Scope's endpoint.
var zones = {
  cosmos: 'privatelink.documents.azure.com'
  serviceBus: 'privatelink.servicebus.windows.net'
  blob: 'privatelink.blob.${environment().suffixes.storage}'
  queue: 'privatelink.queue.${environment().suffixes.storage}'
  table: 'privatelink.table.${environment().suffixes.storage}'
  keyVault: 'privatelink.vaultcore.azure.net'
  monitor: 'privatelink.monitor.azure.com'
  oms: 'privatelink.oms.opinsights.azure.com'
  ods: 'privatelink.ods.opinsights.azure.com'
  agentService: 'privatelink.agentsvc.azure-automation.net'
}

resource dns 'Microsoft.Network/privateDnsZones@2024-06-01' = [
  for zone in items(zones): {
    name: zone.value
    location: 'global'
    tags: tags
  }
]

// Each zone linked to the VNet: without the link, names in the VNet resolve to the public endpoints.
resource links 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = [
  for (zone, i) in items(zones): {
    parent: dns[i]
    name: '${name}-link'
    location: 'global'
    tags: tags
    properties: { virtualNetwork: { id: vnet.id }, registrationEnabled: false }
  }
]

output integrationSubnetId string = vnet.properties.subnets[0].id
output privateEndpointSubnetId string = vnet.properties.subnets[1].id
// The zones' resource ids by their name above; every module's DNS zone group points at one of these.
output dnsZoneIds object = toObject(items(zones), zone => zone.key, zone => resourceId('Microsoft.Network/privateDnsZones', zone.value))
// The one address the app's internet traffic leaves from: what Backstage's ingress may allow.
output outboundIpAddress string = outboundIp.properties.ipAddress
