// A workbook showing sync health: changes synced by outcome, latency, dead letters, reconciles, RU; every dependency's
// latency, error rate and retries; throttling; the change-feed and queue backlogs (docs/operations.md#watching-it).
param name string
param location string
param tags object
param appInsightsId string

func tile(title string, query string, visualization string) object => {
  type: 3
  content: {
    version: 'KqlItem/1.0'
    title: title
    query: query
    size: 1
    timeContext: { durationMs: 86400000 }
    queryType: 0
    resourceType: 'microsoft.insights/components'
    visualization: visualization
  }
}

// p95 from dependency.calls: every call counted in its latency bucket (le), summed cumulatively per dependency and hour.
var dependencyPercentiles = '''
let buckets = customMetrics
  | where name == "dependency.calls"
  | extend dependency = tostring(customDimensions.dependency),
           le = iff(tostring(customDimensions.le) == "+Inf", 1e9, todouble(customDimensions.le)),
           failed = tostring(customDimensions.outcome) == "failure"
  | summarize calls = sum(valueSum), failures = sumif(valueSum, failed) by hour = bin(timestamp, 1h), dependency, le;
let totals = buckets | summarize total = sum(calls), totalFailures = sum(failures) by hour, dependency;
buckets
| join kind=inner totals on hour, dependency
| order by hour desc, dependency asc, le asc
| extend cumulative = row_cumsum(calls, hour != prev(hour) or dependency != prev(dependency))
| where cumulative >= 0.95 * total
| summarize p95Ms = min(le), calls = take_any(total), errorRate = round(todouble(take_any(totalFailures)) / take_any(total), 4) by hour, dependency
| order by hour desc, dependency asc
'''

var workbook = {
  version: 'Notebook/1.0'
  items: [
    { type: 1, content: { json: '# Catalog sync health\nChanges from Backstage to the Cosmos DB mirror, reconciles, dead letters and cost.' } }
    tile('Entities synced by outcome', 'customMetrics | where name == "sync.entities" | extend outcome = tostring(customDimensions.outcome) | summarize count = sum(valueSum) by outcome, bin(timestamp, 15m) | render timechart', 'timechart')
    tile('Sync latency (event → mirror), ms', 'customMetrics | where name == "sync.latency" | summarize avg = sum(valueSum) / sum(valueCount), max = max(valueMax) by bin(timestamp, 15m) | render timechart', 'timechart')
    tile('Dead letters and retries', 'customMetrics | where name in ("sync.dead_letters", "sync.retries") | summarize total = sum(valueSum) by name, bin(timestamp, 1h) | render columnchart', 'barchart')
    tile('Reconciles', 'customEvents | where name == "ReconcileCompleted" | project timestamp, seen = toint(customDimensions.seen), created = toint(customDimensions.created), updated = toint(customDimensions.updated), tombstoned = toint(customDimensions.tombstoned), failed = toint(customDimensions.failed), ru = todouble(customDimensions.requestCharge), durationMs = toint(customDimensions.durationInMs), guardTripped = tostring(customDimensions.guardTripped) | order by timestamp desc', 'table')
    tile('Cosmos DB request charge by operation', 'customMetrics | where name == "cosmos.request_charge" | extend operation = tostring(customDimensions.operation) | summarize ru = sum(valueSum) by operation, bin(timestamp, 1h) | render timechart', 'timechart')
    tile('Edges added and removed; drift repairs', 'customMetrics | where name in ("edges.added", "edges.removed", "projection.drift", "projection.failed") | summarize total = sum(valueSum) by name, bin(timestamp, 1h) | render columnchart', 'barchart')
    tile('Dependencies: p95 latency (ms, to a bucket) and error rate, per hour', dependencyPercentiles, 'table')
    tile('Dependencies: mean latency (ms)', 'customMetrics | where name == "dependency.duration" | extend dependency = tostring(customDimensions.dependency) | summarize mean = sum(valueSum) / sum(valueCount) by dependency, bin(timestamp, 15m) | render timechart', 'timechart')
    tile('Dependency calls by operation, status and retries', 'customMetrics | where name == "dependency.duration" | extend dependency = tostring(customDimensions.dependency), operation = tostring(customDimensions.operation), status = tostring(customDimensions.status), retries = tostring(customDimensions.retries) | summarize calls = sum(valueCount), meanMs = round(sum(valueSum) / sum(valueCount), 1), maxMs = round(max(valueMax)) by dependency, operation, status, retries | order by calls desc', 'table')
    tile('Cosmos DB throttling: 429s and retry-after waited, per container and operation', 'customMetrics | where name in ("cosmos.throttled", "cosmos.throttle_wait_ms") | extend series = strcat(name, " ", tostring(customDimensions.container), " ", tostring(customDimensions.operation)) | summarize total = sum(valueSum) by series, bin(timestamp, 15m) | render timechart', 'timechart')
    tile('Change-feed backlog per processor (estimated changes still to read)', 'customMetrics | where name == "changefeed.estimated_backlog" | extend processor = tostring(customDimensions.processor), lease = tostring(customDimensions.lease) | summarize leaseBacklog = max(valueMax) by processor, lease, bin(timestamp, 5m) | summarize backlog = sum(leaseBacklog) by processor, timestamp | render timechart', 'timechart')
    tile('Sync queue: oldest message age (s) and dead letters', 'customMetrics | where name in ("queue.oldest_message_age_ms", "queue.dead_letters") | summarize value = iff(name == "queue.oldest_message_age_ms", max(valueMax) / 1000, max(valueMax)) by name, bin(timestamp, 5m) | render timechart', 'timechart')
  ]
}

resource book 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: name
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Catalog sync health'
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: string(workbook)
  }
}
