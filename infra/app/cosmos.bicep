// Cosmos DB for NoSQL: keys disabled (Entra only), metadata writes only through ARM, the database and its three
// containers declared here (the app's data-plane identity cannot create them), and a least-privilege custom role.
param name string
param location string
param tags object
param principalId string
param enableVnet bool
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
    publicNetworkAccess: enableVnet ? 'Disabled' : 'Enabled'
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

// Exactly what the code does: point reads, creates, replaces, upserts, deletes (edges, leases), queries and the
// change feed — no stored procedures, no container management.
resource role 'Microsoft.DocumentDB/databaseAccounts/sqlRoleDefinitions@2024-11-15' = {
  parent: account
  name: guid(account.id, 'backstage-cosmos-sync-data')
  properties: {
    roleName: 'backstage-cosmos-sync data access'
    type: 'CustomRole'
    assignableScopes: ['${account.id}/dbs/${databaseName}']
    permissions: [
      {
        dataActions: [
          'Microsoft.DocumentDB/databaseAccounts/readMetadata'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/read'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/create'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/replace'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/upsert'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/delete'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/executeQuery'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/readChangeFeed'
        ]
      }
    ]
  }
}

resource assignment 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = {
  parent: account
  name: guid(role.id, principalId)
  properties: {
    roleDefinitionId: role.id
    principalId: principalId
    scope: '${account.id}/dbs/${databaseName}'
  }
}

resource endpoint 'Microsoft.Network/privateEndpoints@2024-01-01' = if (enableVnet) {
  name: 'pe-${name}'
  location: location
  tags: tags
  properties: {
    subnet: { id: privateEndpointSubnetId }
    privateLinkServiceConnections: [{ name: 'sql', properties: { privateLinkServiceId: account.id, groupIds: ['Sql'] } }]
  }
}

resource endpointDns 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-01-01' = if (enableVnet) {
  parent: endpoint
  name: 'default'
  properties: { privateDnsZoneConfigs: [{ name: 'sql', properties: { privateDnsZoneId: privateDnsZoneId } }] }
}

output id string = account.id
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
