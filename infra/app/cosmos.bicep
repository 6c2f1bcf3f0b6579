// Cosmos DB for NoSQL: keys disabled (Entra only), metadata writes only through ARM, the database and its containers
// declared here (no data-plane identity can create them), and least-privilege custom roles per principal and
// container (cosmos-roles.json; the role matrix in docs/identity.md).
param name string
param location string
param tags object
@description('Object id of the Function App\'s managed identity.')
param principalId string
@description('Object id of the Backstage backend\'s identity, which reads the authored container; empty = none.')
param backstagePrincipalId string = ''
@description('Object ids of other consumers of the mirror, which read entities and edges.')
param readerPrincipalIds array = []
@description('Object ids of producers that write authored entities with the Cosmos DB SDK (the authored container only).')
param authorPrincipalIds array = []
@description('True: public network access off, reachable through its private endpoint only.')
param privateNetworking bool
param privateEndpointSubnetId string
param privateDnsZoneId string
param databaseName string = 'catalog'

@description('Days a tombstone is kept is set per document (SYNC_TOMBSTONE_TTL_SECONDS); -1 turns TTL on without a default.')
param defaultTtl int = -1

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [{ locationName: location, failoverPriority: 0, isZoneRedundant: false }]
    consistencyPolicy: { defaultConsistencyLevel: 'Session' }
    capabilities: [{ name: 'EnableServerless' }]
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    // Private networking (the default): reachable through the private endpoint below only; no service bypasses the
    // network rules (Azure Monitor's platform metrics, which the alerts read, do not go through them).
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    networkAclBypass: 'None'
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: account
  name: databaseName
  properties: { resource: { id: databaseName } }
}

resource entities 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'entities'
  properties: {
    resource: {
      id: 'entities'
      partitionKey: { paths: ['/id'], kind: 'Hash', version: 2 }
      defaultTtl: defaultTtl
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [{ path: '/*' }]
        // The full entity body is never queried: indexing it would cost RU on every write.
        excludedPaths: [{ path: '/entity/*' }, { path: '/"_etag"/?' }]
      }
    }
  }
}

resource edges 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'edges'
  properties: {
    resource: {
      id: 'edges'
      partitionKey: { paths: ['/source'], kind: 'Hash', version: 2 }
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [{ path: '/source/?' }, { path: '/type/?' }, { path: '/target/?' }]
        excludedPaths: [{ path: '/*' }]
      }
    }
  }
}

// The change-feed trigger's checkpoints. Declared here: with Entra auth the trigger cannot create it.
resource leases 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'leases'
  properties: { resource: { id: 'leases', partitionKey: { paths: ['/id'], kind: 'Hash', version: 2 } } }
}

// The replay guard of Standard Webhooks deliveries: one document per webhook-id, each with its own ttl.
resource deliveries 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'webhook-deliveries'
  properties: { resource: { id: 'webhook-deliveries', partitionKey: { paths: ['/id'], kind: 'Hash', version: 2 }, defaultTtl: -1 } }
}

// One record per version of every mirrored entity, one partition per entity; each record carries its ttl
// (HISTORY_RETENTION_DAYS), which needs TTL on for the container.
resource history 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'history'
  properties: { resource: { id: 'history', partitionKey: { paths: ['/entityId'], kind: 'Hash', version: 2 }, defaultTtl: -1 } }
}

// Maintenance runs requested through POST /api/admin/reconcile: one document each, kept a week after its last
// change (each carries its ttl, which needs TTL on for the container).
resource runs 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'maintenance-runs'
  properties: { resource: { id: 'maintenance-runs', partitionKey: { paths: ['/id'], kind: 'Hash', version: 2 }, defaultTtl: -1 } }
}

// Entities authored in Cosmos DB, read by the Backstage entity provider.
resource authored 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'authored'
  // TTL on, no default: a soft-deleted document (deleted + ttl) expires, a live one stays.
  properties: { resource: { id: 'authored', partitionKey: { paths: ['/id'], kind: 'Hash', version: 2 }, defaultTtl: -1 } }
}

// One custom role per principal and container, with exactly the data actions that principal performs there; each
// assignable, and assigned, at that container only.
var cosmosRoles = loadJsonContent('cosmos-roles.json').roles
var containerActions = 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers'
var principalsByKind = {
  app: [principalId]
  backstage: empty(backstagePrincipalId) ? [] : [backstagePrincipalId]
  readers: readerPrincipalIds
  authors: authorPrincipalIds
}
var containerScope = '${account.id}/dbs/${databaseName}/colls'

resource roles 'Microsoft.DocumentDB/databaseAccounts/sqlRoleDefinitions@2024-11-15' = [
  for role in cosmosRoles: {
    parent: account
    name: guid(account.id, role.name)
    properties: {
      roleName: role.roleName
      type: 'CustomRole'
      assignableScopes: ['${containerScope}/${role.container}']
      permissions: [
        {
          dataActions: concat(['Microsoft.DocumentDB/databaseAccounts/readMetadata'], map(role.dataActions, action => '${containerActions}/${action}'))
        }
      ]
    }
  }
]

var assignments = flatten(map(range(0, length(cosmosRoles)), i => map(principalsByKind[cosmosRoles[i].principal], p => { role: i, principalId: p })))

resource roleAssignments 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = [
  for assignment in assignments: {
    parent: account
    name: guid(account.id, cosmosRoles[assignment.role].name, assignment.principalId)
    properties: {
      roleDefinitionId: roles[assignment.role].id
      principalId: assignment.principalId
      scope: '${containerScope}/${cosmosRoles[assignment.role].container}'
    }
    dependsOn: [entities, edges, leases, deliveries, authored, history, runs]
  }
]

resource endpoint 'Microsoft.Network/privateEndpoints@2024-01-01' = if (privateNetworking) {
  name: 'pe-${name}'
  location: location
  tags: tags
  properties: {
    subnet: { id: privateEndpointSubnetId }
    privateLinkServiceConnections: [{ name: 'sql', properties: { privateLinkServiceId: account.id, groupIds: ['Sql'] } }]
  }
}

resource endpointDns 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-01-01' = if (privateNetworking) {
  parent: endpoint
  name: 'default'
  properties: { privateDnsZoneConfigs: [{ name: 'sql', properties: { privateDnsZoneId: privateDnsZoneId } }] }
}

output id string = account.id
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
