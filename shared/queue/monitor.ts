/**
 * The sync queue's backlog as an operator watches it: the age of the oldest message waiting and the number of dead
 * letters. Both come from browsing (peek), which needs only the receive right the app already has — the runtime
 * properties of the management API would need the namespace's Manage right.
 */
import type { ServiceBusClient } from '@azure/service-bus';
import type { Metrics } from '../platform/metrics';
import { abortOnly, type OperationOptions } from '../platform/options';
import { serviceBusCall } from './queue';

export interface QueueBacklog {
  queue: string;
  /** Age of the oldest message waiting (active or locked by a receiver; scheduled retries are not due yet); 0 when none. */
  oldestMessageAgeInMs: number;
  /** Dead letters counted, up to {@link QueueBacklogOptions.maxDeadLetters}. */
  deadLetters: number;
  /** Whether there may be more dead letters than counted. */
  deadLettersCapped: boolean;
}

export interface QueueBacklogOptions extends OperationOptions {
  /** Stop counting dead letters here (default 1000): browsing them all costs as many messages as there are. */
  maxDeadLetters?: number;
  /** Clock; injectable for tests. */
  now?: () => number;
}

/** Messages browsed per peek. */
const PAGE = 100;

export class QueueMonitor {
  constructor(
    private readonly client: ServiceBusClient,
    private readonly queueName: string,
    private readonly metrics?: Metrics,
  ) {}

  async measure(options: QueueBacklogOptions = {}): Promise<QueueBacklog> {
    const now = options.now ?? Date.now;
    const [oldest, dead] = await Promise.all([this.oldestWaiting(options), this.countDeadLetters(options.maxDeadLetters ?? 1000, options)]);
    return {
      queue: this.queueName,
      oldestMessageAgeInMs: oldest ? Math.max(0, now() - oldest.getTime()) : 0,
      deadLetters: dead.count,
      deadLettersCapped: dead.capped,
    };
  }

  /** When the oldest message that is due was enqueued (browsing from the lowest sequence number). */
  private async oldestWaiting(options: OperationOptions): Promise<Date | undefined> {
    const receiver = this.client.createReceiver(this.queueName);
    try {
      const messages = await serviceBusCall('peek', this.metrics, options, () => receiver.peekMessages(PAGE, abortOnly(options)));
      const due = messages.flatMap((m) => (m.state !== 'scheduled' && m.enqueuedTimeUtc ? [m.enqueuedTimeUtc.getTime()] : []));
      return due.length === 0 ? undefined : new Date(Math.min(...due));
    } finally {
      await receiver.close();
    }
  }

  private async countDeadLetters(max: number, options: OperationOptions): Promise<{ count: number; capped: boolean }> {
    const receiver = this.client.createReceiver(this.queueName, { subQueueType: 'deadLetter' });
    try {
      let count = 0;
      for (;;) {
        const page = await serviceBusCall('peek', this.metrics, options, () =>
          receiver.peekMessages(Math.min(PAGE, max - count), abortOnly(options)),
        );
        count += page.length;
        if (count >= max) return { count, capped: true };
        if (page.length === 0) return { count, capped: false };
      }
    } finally {
      await receiver.close();
    }
  }
}
