/**
 * Metrics through OpenTelemetry, which Backstage backends export with whatever SDK the adopter configures.
 */
import { metrics, type Counter, type Meter } from '@opentelemetry/api';

export interface ChangeEventsMetrics {
  emitted: Counter;
  delivered: Counter;
  deliveryFailures: Counter;
  dropped: Counter;
  detectionRuns: Counter;
  detectionRows: Counter;
}

export function createMetrics(meter: Meter = metrics.getMeter('backstage-plugin-catalog-backend-module-change-events'), depth?: () => Map<string, number>): ChangeEventsMetrics {
  if (depth) {
    meter
      .createObservableGauge('catalog_change_events.outbox_depth', { description: 'Events waiting for delivery, per endpoint' })
      .addCallback((result) => {
        for (const [endpoint, count] of depth()) result.observe(count, { endpoint });
      });
  }
  return {
    emitted: meter.createCounter('catalog_change_events.emitted', { description: 'Catalog changes turned into events' }),
    delivered: meter.createCounter('catalog_change_events.delivered', { description: 'Events delivered to an endpoint' }),
    deliveryFailures: meter.createCounter('catalog_change_events.delivery_failures', { description: 'Failed delivery requests' }),
    dropped: meter.createCounter('catalog_change_events.dropped', { description: 'Undelivered events dropped for being too old' }),
    detectionRuns: meter.createCounter('catalog_change_events.detection_runs', { description: 'Runs that looked for catalog changes, by mode' }),
    detectionRows: meter.createCounter('catalog_change_events.detection_rows', {
      description: 'Rows (generations) or entities (full diff) read to find catalog changes, by mode',
    }),
  };
}
