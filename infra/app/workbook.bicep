// A workbook showing sync health: changes synced by outcome, latency, dead letters, reconciles, RU, Backstage calls.
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
    tile('Backstage calls: latency and errors', 'customMetrics | where name in ("backstage.request.duration", "backstage.errors", "backstage.retries") | summarize value = iff(name == "backstage.request.duration", sum(valueSum) / sum(valueCount), sum(valueSum)) by name, bin(timestamp, 15m) | render timechart', 'timechart')
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
