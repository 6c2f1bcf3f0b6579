// Key Vault for the one kind of secret the service may hold: Standard Webhooks secrets, for senders that cannot get a
// token. RBAC authorization (no access policies); the app's identity gets Key Vault Secrets User on that secret only,
// and the app setting holds a Key Vault reference resolved by the platform with that identity.
param name string
param location string
param tags object
param principalId string
@description('True when the intake accepts Standard Webhooks: the app then reads the secret.')
param webhooksEnabled bool
@secure()
@description('A new value for the secret (whsec_…, comma-separated while rotating); empty = keep what the vault holds.')
param webhookSecrets string
@description('True: public network access off, reachable through its private endpoint only.')
param privateNetworking bool
param privateEndpointSubnetId string
param privateDnsZoneId string

var secretName = 'webhook-secrets'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    // Private: the platform resolves the app's Key Vault reference through the app's VNet integration and this
    // vault's private endpoint, so no trusted-service bypass is needed. A provision writes the secret through Azure
    // Resource Manager, which the network rules do not apply to.
    networkAcls: { defaultAction: privateNetworking ? 'Deny' : 'Allow', bypass: privateNetworking ? 'None' : 'AzureServices' }
  }
}

// Written only when a value is given: a provision without one leaves the secret (and its rotation) alone.
resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(webhookSecrets)) {
  parent: vault
  name: secretName
  properties: { value: webhookSecrets, contentType: 'Standard Webhooks secrets (whsec_…), comma-separated; the first signs, all verify' }
}

resource current 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: secretName
}

// Key Vault Secrets User, on the one secret, not the vault.
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
resource secretReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (webhooksEnabled) {
  scope: current
  name: guid(vault.id, secretName, principalId, keyVaultSecretsUser)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [secret]
}

resource endpoint 'Microsoft.Network/privateEndpoints@2024-01-01' = if (privateNetworking) {
  name: 'pe-${name}'
  location: location
  tags: tags
  properties: {
    subnet: { id: privateEndpointSubnetId }
    privateLinkServiceConnections: [{ name: 'vault', properties: { privateLinkServiceId: vault.id, groupIds: ['vault'] } }]
  }
}

resource endpointDns 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-01-01' = if (privateNetworking) {
  parent: endpoint
  name: 'default'
  properties: { privateDnsZoneConfigs: [{ name: 'vault', properties: { privateDnsZoneId: privateDnsZoneId } }] }
}

output name string = vault.name
// No version: the platform resolves the latest one (within 24 h, or at once on a restart or a reference refresh).
output webhookSecretsReference string = '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=${secretName})'
