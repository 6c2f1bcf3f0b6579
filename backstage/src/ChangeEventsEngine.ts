/**
 * What one scheduled run does: diff the catalog against the last snapshot, put the changes in every endpoint's
 * outbox (in the same transaction that moves the snapshot forward, so a crash neither loses nor repeats a change),
 * then deliver each outbox in order.
 */
import { randomUUID, createHash } from 'node:crypto';
import type { AuthService, LoggerService } from '@backstage/backend-plugin-api';
import type { CatalogService } from '@backstage/plugin-catalog-node';
import type { Knex } from 'knex';
import type { ChangeEventsSettings, EndpointSettings } from './config';
import type { EndpointClient } from './delivery';
import type { ChangeEventsMetrics } from './metrics';
import { insertChunked, TABLES, type EndpointRow, type OutboxRow, type SnapshotRow } from './store';

export const EVENT_TYPES = {
  upserted: 'io.backstage.catalog.entity.upserted',
  deleted: 'io.backstage.catalog.entity.deleted',
} as const;

export interface CatalogEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: (typeof EVENT_TYPES)[keyof typeof EVENT_TYPES];
  subject: string;
  time: string;
  datacontenttype: 'application/json';
  data: { entityRef: string; uid?: string; etag?: string };
}

export interface DiffResult {
  /** True for the first run: the snapshot was recorded, nothing emitted. */
  baseline: boolean;
  scanned: number;
  created: number;
  updated: number;
  deleted: number;
  durationInMs: number;
  catalogPages: number;
}

export interface DeliveryResult {
  delivered: number;
  dropped: number;
  failedEndpoints: string[];
}

interface Current {
  ref: string;
  uid: string | null;
  etag: string | null;
}

/** An entity its owner keeps out of the mirror does not leave Backstage either (the receiver's own annotation). */
export const EXCLUDE_ANNOTATION = 'backstage-cosmos-sync/exclude';
const FIELDS = ['kind', 'metadata.namespace', 'metadata.name', 'metadata.uid', 'metadata.etag', `metadata.annotations.${EXCLUDE_ANNOTATION}`];

export class ChangeEventsEngine {
  constructor(
    private readonly deps: {
      db: Knex;
      catalog: CatalogService;
      auth: AuthService;
      logger: LoggerService;
      settings: ChangeEventsSettings;
      clients: Map<string, EndpointClient>;
      metrics: ChangeEventsMetrics;
      now?: () => number;
      random?: () => number;
    },
  ) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  async run(signal?: AbortSignal): Promise<{ diff: DiffResult; delivery: DeliveryResult }> {
    const diff = await this.diff(signal);
    const delivery = await this.deliver(signal);
    return { diff, delivery };
  }

  /** Streams the catalog's uid/etag projection and records what changed since the last snapshot. */
  async diff(signal?: AbortSignal): Promise<DiffResult> {
    const started = performance.now();
    const { db, catalog, auth, settings, logger } = this.deps;
    const credentials = await auth.getOwnServiceCredentials();
    const current = new Map<string, Current>();
    let cursor: string | undefined;
    let pages = 0;
    do {
      if (signal?.aborted) throw new Error('Change detection aborted');
      const page = cursor
        ? await catalog.queryEntities({ cursor, limit: settings.pageSize, fields: FIELDS }, { credentials })
        : await catalog.queryEntities({ limit: settings.pageSize, fields: FIELDS, ...(settings.filter && { query: settings.filter }) }, { credentials });
      pages += 1;
      for (const entity of page.items) {
        // Out of scope: as if absent, so an entity that leaves the scope is published as deleted.
        if (entity.metadata.annotations?.[EXCLUDE_ANNOTATION]?.trim().toLowerCase() === 'true') continue;
        const ref = `${entity.kind}:${entity.metadata.namespace ?? 'default'}/${entity.metadata.name}`;
        current.set(ref.toLowerCase(), { ref, uid: entity.metadata.uid ?? null, etag: entity.metadata.etag ?? null });
      }
      cursor = page.pageInfo.nextCursor;
    } while (cursor);

    const baselineRow: unknown = await db(TABLES.state).where({ key: 'baseline_at' }).first();
    if (!baselineRow) {
      await db.transaction(async (tx) => {
        await tx(TABLES.snapshot).delete();
        await insertChunked(
          tx,
          TABLES.snapshot,
          [...current.entries()].map(([key, c]) => ({ entity_ref: key, display_ref: c.ref, uid: c.uid, etag: c.etag })),
        );
        await tx(TABLES.state).insert({ key: 'baseline_at', value: new Date(this.now()).toISOString() });
      });
      logger.info(`Recorded the baseline of ${current.size} entities; changes from now on are published`);
      return { baseline: true, scanned: current.size, created: 0, updated: 0, deleted: 0, durationInMs: Math.round(performance.now() - started), catalogPages: pages };
    }

    const snapshot = new Map<string, SnapshotRow>((await db<SnapshotRow>(TABLES.snapshot).select()).map((row) => [row.entity_ref, row]));
    const created: Array<[string, Current]> = [];
    const updated: Array<[string, Current]> = [];
    const deleted: SnapshotRow[] = [];
    for (const [key, entity] of current) {
      const previous = snapshot.get(key);
      if (!previous) created.push([key, entity]);
      else if (previous.etag !== entity.etag || previous.uid !== entity.uid || previous.display_ref !== entity.ref) updated.push([key, entity]);
    }
    for (const [key, row] of snapshot) if (!current.has(key)) deleted.push(row);

    const now = this.now();
    const time = new Date(now).toISOString();
    const events: Array<{ key: string; event: CatalogEvent }> = [
      ...[...created, ...updated].map(([key, c]) => ({ key, event: this.event(EVENT_TYPES.upserted, c.ref, time, { uid: c.uid, etag: c.etag }) })),
      ...deleted.map((row) => ({ key: row.entity_ref, event: this.event(EVENT_TYPES.deleted, row.display_ref, time, { uid: row.uid, etag: null }) })),
    ];
    if (events.length > 0) {
      await db.transaction(async (tx) => {
        await insertChunked(
          tx,
          TABLES.snapshot,
          created.map(([key, c]) => ({ entity_ref: key, display_ref: c.ref, uid: c.uid, etag: c.etag })),
        );
        for (const [key, c] of updated) await tx(TABLES.snapshot).where({ entity_ref: key }).update({ display_ref: c.ref, uid: c.uid, etag: c.etag });
        for (let i = 0; i < deleted.length; i += 100) {
          await tx(TABLES.snapshot).whereIn('entity_ref', deleted.slice(i, i + 100).map((row) => row.entity_ref)).delete();
        }
        const rows = settings.endpoints.flatMap((endpoint) =>
          events.map(({ key, event }) => ({
            endpoint: endpoint.name,
            event_id: event.id,
            entity_ref: key,
            payload: JSON.stringify(event),
            created_at: now,
          })),
        );
        await insertChunked(tx, TABLES.outbox, rows);
      });
    }
    const result = {
      baseline: false,
      scanned: current.size,
      created: created.length,
      updated: updated.length,
      deleted: deleted.length,
      durationInMs: Math.round(performance.now() - started),
      catalogPages: pages,
    };
    for (const [type, count] of [['created', created.length], ['updated', updated.length], ['deleted', deleted.length]] as const) {
      if (count > 0) this.deps.metrics.emitted.add(count, { change: type });
    }
    if (events.length > 0) logger.info(`Catalog changes queued: ${created.length} created, ${updated.length} updated, ${deleted.length} deleted`);
    return result;
  }

  /** Delivers every endpoint's outbox, oldest first, in batches; a failing endpoint backs off, the others go on. */
  async deliver(signal?: AbortSignal): Promise<DeliveryResult> {
    const result: DeliveryResult = { delivered: 0, dropped: 0, failedEndpoints: [] };
    for (const endpoint of this.deps.settings.endpoints) {
      if (signal?.aborted) break;
      const outcome = await this.deliverEndpoint(endpoint, signal);
      result.delivered += outcome.delivered;
      result.dropped += outcome.dropped;
      if (outcome.failed) result.failedEndpoints.push(endpoint.name);
    }
    return result;
  }

  /** Events waiting per endpoint. */
  async outboxDepth(): Promise<Map<string, number>> {
    const rows: Array<{ endpoint: string; count: number | string }> = await this.deps.db(TABLES.outbox).select('endpoint').count({ count: '*' }).groupBy('endpoint');
    return new Map(rows.map((row) => [row.endpoint, Number(row.count)]));
  }

  private async deliverEndpoint(endpoint: EndpointSettings, signal?: AbortSignal): Promise<{ delivered: number; dropped: number; failed: boolean }> {
    const { db, settings, logger, metrics } = this.deps;
    const now = this.now();
    // Too old to matter any more: the receiver's reconciliation covers them.
    const dropped = await db(TABLES.outbox)
      .where({ endpoint: endpoint.name })
      .andWhere('created_at', '<', now - settings.maxAgeInMs)
      .delete();
    if (dropped > 0) {
      metrics.dropped.add(dropped, { endpoint: endpoint.name });
      logger.warn(`Dropped ${dropped} undelivered events for endpoint ${endpoint.name}: older than the maximum age`);
    }
    const state = await db<EndpointRow>(TABLES.endpoints).where({ endpoint: endpoint.name }).first();
    if (state && Number(state.next_attempt_at) > now) return { delivered: 0, dropped, failed: false };

    const client = this.deps.clients.get(endpoint.name)!;
    let delivered = 0;
    for (;;) {
      if (signal?.aborted) break;
      const rows = await db<OutboxRow>(TABLES.outbox).where({ endpoint: endpoint.name }).orderBy('id', 'asc').limit(settings.batchSize);
      if (rows.length === 0) break;
      const events = rows.map((row) => JSON.parse(row.payload) as CatalogEvent);
      // The same batch retried carries the same delivery id, so a receiver can recognise a repeat.
      const deliveryId = `msg_${createHash('sha256').update(rows.map((r) => r.event_id).join(',')).digest('base64url').slice(0, 32)}`;
      const outcome = await client.send(events, deliveryId, signal);
      if (!outcome.ok) {
        const failures = (state?.failures ?? 0) + 1;
        const base = Math.min(settings.retry.maxDelayInMs, settings.retry.initialDelayInMs * 2 ** (failures - 1));
        const delay = Math.max(outcome.retryAfterInMs ?? 0, Math.round(base / 2 + (this.deps.random ?? Math.random)() * (base / 2)));
        await upsertEndpoint(db, { endpoint: endpoint.name, failures, next_attempt_at: this.now() + delay, last_error: outcome.error.slice(0, 2000) });
        metrics.deliveryFailures.add(1, { endpoint: endpoint.name });
        logger.warn(`Delivery to ${endpoint.name} failed (${outcome.error}); ${rows.length}+ events wait, next try in ${Math.round(delay / 1000)} s`);
        return { delivered, dropped, failed: true };
      }
      await db(TABLES.outbox).whereIn('id', rows.map((r) => r.id)).delete();
      delivered += rows.length;
      metrics.delivered.add(rows.length, { endpoint: endpoint.name });
      if (state && state.failures > 0) {
        await upsertEndpoint(db, { endpoint: endpoint.name, failures: 0, next_attempt_at: 0, last_error: null });
        state.failures = 0;
      }
    }
    return { delivered, dropped, failed: false };
  }

  private event(type: CatalogEvent['type'], ref: string, time: string, data: { uid: string | null; etag: string | null }): CatalogEvent {
    return {
      specversion: '1.0',
      id: randomUUID(),
      source: this.deps.settings.source,
      type,
      subject: ref,
      time,
      datacontenttype: 'application/json',
      data: { entityRef: ref, ...(data.uid && { uid: data.uid }), ...(data.etag && { etag: data.etag }) },
    };
  }
}

async function upsertEndpoint(db: Knex, row: EndpointRow): Promise<void> {
  await db(TABLES.endpoints).insert(row).onConflict('endpoint').merge();
}
