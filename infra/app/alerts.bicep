// Alerts for what needs a human: dead letters, sustained throttling, failing reconciles, slow syncs.
param location string
param tags object
param appInsightsId string
param serviceBusNamespaceId string
param serviceBusQueueName string
param cosmosAccountId string
param alertEmail string
param namePrefix string

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-sync-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'catalogsync'
    enabled: true
    emailReceivers: [{ name: 'operators', emailAddress: alertEmail, useCommonAlertSchema: true }]
  }
}

var actions = empty(alertEmail) ? [] : [{ actionGroupId: actionGroup.id }]

resource deadLetters 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'alert-sync-dead-letters-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    description: 'The entity-sync queue has dead letters: see GET /api/admin/deadletters, fix, then replay.'
    severity: 2
    enabled: true
    scopes: [serviceBusNamespaceId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'dead-letters'
          metricName: 'DeadletteredMessages'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          dimensions: [{ name: 'EntityName', operator: 'Include', values: [serviceBusQueueName] }]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Maximum'
        }
      ]
    }
    actions: actions
  }
}

resource throttling 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'alert-sync-cosmos-429-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Cosmos DB has been throttling (429) for 15 minutes: raise throughput or lower RECONCILE_CONCURRENCY.'
    severity: 3
    enabled: true
    scopes: [cosmosAccountId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'throttled'
          metricName: 'TotalRequests'
          metricNamespace: 'Microsoft.DocumentDB/databaseAccounts'
          dimensions: [{ name: 'StatusCode', operator: 'Include', values: ['429'] }]
          operator: 'GreaterThan'
          threshold: 100
          timeAggregation: 'Count'
        }
      ]
    }
    actions: actions
  }
}

resource reconcileFailures 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-sync-reconcile-${namePrefix}'
  location: location
  tags: tags
  properties: {
    description: 'A reconcile failed, left entities failed, or the mass-deletion guard refused to tombstone.'
    severity: 2
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: '''
union
  (requests | where name == "reconcileCatalog" and success == false | project timestamp),
  (customEvents | where name == "ReconcileCompleted" | where toint(customDimensions.failed) > 0 or tobool(customDimensions.guardTripped) | project timestamp)
'''
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: empty(alertEmail) ? [] : [actionGroup.id] }
  }
}

resource syncLatency 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-sync-latency-${namePrefix}'
  location: location
  tags: tags
  properties: {
    description: 'Catalog changes take more than a minute on average to reach the mirror.'
    severity: 3
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "sync.latency" | summarize latency = sum(valueSum) / sum(valueCount)'
          metricMeasureColumn: 'latency'
          timeAggregation: 'Average'
          operator: 'GreaterThan'
          threshold: 60000
          failingPeriods: { numberOfEvaluationPeriods: 3, minFailingPeriodsToAlert: 3 }
        }
      ]
    }
    actions: { actionGroups: empty(alertEmail) ? [] : [actionGroup.id] }
  }
}
