// Alerts for what needs a human: dead letters, sustained throttling, failing reconciles, slow syncs, a dependency out of
// its normal band, a stalled change-feed processor, a queue that is not drained (docs/operations.md#alerts).
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

// A dependency's p95 or error rate over the last 15 minutes against its own last 2 days (the longest a log alert's
// query may look back), from dependency.calls (every
// call counted in its latency bucket; docs/operations.md#dependencies). Fires per dependency with at least 20 calls in
// the window whose p95 is above twice its usual p95 (and 250 ms more), or whose error rate is above three times its
// usual rate (and 5 %).
resource dependencyBand 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-sync-dependency-band-${namePrefix}'
  location: location
  tags: tags
  properties: {
    description: 'A dependency (Cosmos DB, Service Bus, Backstage, the token endpoint) is slower or failing more than in its last 2 days: see the workbook\'s dependency tiles and docs/operations.md#dependencies.'
    severity: 2
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    overrideQueryTimeRange: 'P2D'
    criteria: {
      allOf: [
        {
          query: '''
let buckets = customMetrics
  | where timestamp > ago(2d) and name == "dependency.calls"
  | extend dependency = tostring(customDimensions.dependency),
           le = iff(tostring(customDimensions.le) == "+Inf", 1e9, todouble(customDimensions.le)),
           failed = tostring(customDimensions.outcome) == "failure",
           period = iff(timestamp > ago(15m), "current", "baseline")
  | summarize calls = sum(valueSum), failures = sumif(valueSum, failed) by period, dependency, le;
let totals = buckets | summarize total = sum(calls), totalFailures = sum(failures) by period, dependency;
let stats = buckets
  | join kind=inner totals on period, dependency
  | order by period asc, dependency asc, le asc
  | extend cumulative = row_cumsum(calls, period != prev(period) or dependency != prev(dependency))
  | where cumulative >= 0.95 * total
  | summarize p95 = min(le), total = take_any(total), errorRate = todouble(take_any(totalFailures)) / take_any(total) by period, dependency;
stats
| where period == "current" and total >= 20
| join kind=inner (stats | where period == "baseline" | project dependency, baselineP95 = p95, baselineErrorRate = errorRate) on dependency
| where p95 > max_of(2 * baselineP95, baselineP95 + 250) or errorRate > max_of(3 * baselineErrorRate, 0.05)
| project dependency, p95, baselineP95, errorRate, baselineErrorRate, calls = total
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

// A change-feed processor (the edge projection, the history backstop) behind for 15 minutes without catching up: its
// estimated backlog (the monitorBacklogs timer, once a minute) never 0 and not lower at the end than at the start.
resource changeFeedStalled 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-sync-changefeed-stalled-${namePrefix}'
  location: location
  tags: tags
  properties: {
    description: 'A change-feed processor of the entities feed has been behind for 15 minutes without catching up: see docs/operations.md#backlogs.'
    severity: 2
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: '''
customMetrics
| where timestamp > ago(15m) and name == "changefeed.estimated_backlog"
| extend processor = tostring(customDimensions.processor), lease = tostring(customDimensions.lease)
| summarize leaseBacklog = max(valueMax) by processor, lease, minute = bin(timestamp, 1m)
| summarize backlog = sum(leaseBacklog) by processor, minute
| summarize minutes = count(), lowest = min(backlog), (firstMinute, firstBacklog) = arg_min(minute, backlog), (lastMinute, lastBacklog) = arg_max(minute, backlog) by processor
| where minutes >= 10 and lowest > 0 and lastBacklog >= firstBacklog
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

// The sync queue not drained: its oldest due message older than 5 minutes at every measurement for 15 minutes.
resource queueAge 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'alert-sync-queue-age-${namePrefix}'
  location: location
  tags: tags
  properties: {
    description: 'The entity-sync queue has held a message for more than 5 minutes for 15 minutes: the sync is not consuming. See docs/operations.md#backlogs.'
    severity: 2
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: '''
customMetrics
| where timestamp > ago(15m) and name == "queue.oldest_message_age_ms"
| summarize samples = sum(valueCount), youngest = min(valueMin)
| where samples >= 10 and youngest > 300000
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
