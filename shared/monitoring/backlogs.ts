/**
 * How far behind the asynchronous parts are, measured the way an operator needs it, once a minute (the
 * `monitorBacklogs` timer):
 *
 * - per change-feed processor of the `entities` feed (the edge projection, the history backstop) and per lease, the
 *   changes it has still to read — estimated as the Cosmos DB change-feed estimator does ({@link EntityStore.feedBacklog});
 * - the sync queue's oldest waiting message and its dead letters ({@link QueueMonitor}).
 *
 * Each figure is a metric (`changefeed.estimated_backlog`, `queue.oldest_message_age_ms`, `queue.dead_letters`) and
 * the whole is one log line. A part that cannot be measured is logged and left out; the rest is still reported.
 */
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import type { OperationOptions } from '../platform/options';
import type { QueueBacklog, QueueMonitor } from '../queue/monitor';
import type { EntityStore } from '../sync/entity-store';
import type { LeaseStore, ProcessorLease } from './lease-store';

/** The change-feed processors of the `entities` feed: their function names and the lease prefixes they register with. */
export const ENTITY_FEED_PROCESSORS = {
  projectEdges: { leasePrefix: 'projectEdges-' },
  recordHistory: { leasePrefix: 'recordHistory-' },
} as const;

export type EntityFeedProcessor = keyof typeof ENTITY_FEED_PROCESSORS;

export interface LeaseBacklog {
  processor: EntityFeedProcessor;
  lease: string;
  owner: string | null;
  /** Changes the processor has still to read on this lease's range (an estimate; 0 = caught up). */
  estimatedBacklog: number;
  /** When the lease was last written (checkpoint or renewal). */
  updatedAt: string | undefined;
}

export interface BacklogReport {
  measuredAt: string;
  changeFeed: LeaseBacklog[];
  /** Per processor, the sum over its leases; a processor without leases (never started) is absent. */
  changeFeedTotals: Partial<Record<EntityFeedProcessor, number>>;
  queue?: QueueBacklog;
  /** The parts that could not be measured, and why. */
  failures: Array<{ part: string; error: string }>;
}

export interface BacklogMonitorOptions {
  leases: LeaseStore;
  entities: EntityStore;
  queue: QueueMonitor;
  metrics?: Metrics;
  logger: Logger;
}

export class BacklogMonitor {
  constructor(private readonly options: BacklogMonitorOptions) {}

  async measure(options: OperationOptions = {}): Promise<BacklogReport> {
    const { metrics } = this.options;
    const logger = options.logger ?? this.options.logger;
    const report: BacklogReport = { measuredAt: new Date().toISOString(), changeFeed: [], changeFeedTotals: {}, failures: [] };
    const fail = (part: string, error: unknown) => {
      report.failures.push({ part, error: error instanceof Error ? error.message : String(error) });
      logger.warn(`Could not measure the backlog of ${part}`, { operation: 'backlogs', part, error });
    };

    await Promise.all([
      (async () => {
        // Every processor's leases, then one estimate over all of them (one read of the feed's position).
        const leases: Array<ProcessorLease & { processor: EntityFeedProcessor }> = [];
        await Promise.all(
          Object.entries(ENTITY_FEED_PROCESSORS).map(async ([name, { leasePrefix }]) => {
            const processor = name as EntityFeedProcessor;
            try {
              for (const lease of await this.options.leases.leases(leasePrefix, options)) leases.push({ ...lease, processor });
            } catch (error) {
              fail(processor, error);
            }
          }),
        );
        if (leases.length === 0) return;
        try {
          const backlogs = await this.options.entities.feedBacklog(leases, options);
          leases.forEach((lease, i) => {
            const estimatedBacklog = backlogs[i]!;
            report.changeFeed.push({ processor: lease.processor, lease: lease.leaseToken, owner: lease.owner, estimatedBacklog, updatedAt: lease.updatedAt });
            report.changeFeedTotals[lease.processor] = (report.changeFeedTotals[lease.processor] ?? 0) + estimatedBacklog;
            metrics?.record('changefeed.estimated_backlog', estimatedBacklog, { processor: lease.processor, lease: lease.leaseToken });
          });
        } catch (error) {
          fail('the entities change feed', error);
        }
      })(),
      (async () => {
        try {
          report.queue = await this.options.queue.measure(options);
          metrics?.record('queue.oldest_message_age_ms', report.queue.oldestMessageAgeInMs, { queue: report.queue.queue });
          metrics?.record('queue.dead_letters', report.queue.deadLetters, { queue: report.queue.queue });
        } catch (error) {
          fail('the sync queue', error);
        }
      })(),
    ]);
    report.changeFeed.sort((a, b) => a.processor.localeCompare(b.processor) || a.lease.localeCompare(b.lease));
    logger.info('Backlogs measured', {
      operation: 'backlogs',
      changeFeed: report.changeFeedTotals,
      ...(report.queue && { queueOldestMessageAgeInMs: report.queue.oldestMessageAgeInMs, deadLetters: report.queue.deadLetters }),
      failures: report.failures.length,
    });
    return report;
  }
}
