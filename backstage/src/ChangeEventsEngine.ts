/**
 * What one scheduled run does: find what changed in the catalog since the last run, put the changes in every
 * endpoint's outbox (in the same transaction that moves the snapshot — and the generation seen — forward, so a crash
 * neither loses nor repeats a change), then deliver each outbox in order.
 *
 * Two ways to find changes:
 * - **generations** (catalog-backend ≥ 4.0.3, see ./generations.ts): only the entities published since the last
 *   generation seen, read from the catalog's database — O(changes), one indexed query when nothing changed — and,
 *   every `deletionCheckInterval` (default 30 seconds), the snapshot's entities the catalog no longer has (an
 *   anti-join in the database, which returns rows only when something was deleted);
 * - **full diff**: the whole catalog's uid/etag projection through the catalog API against the snapshot — O(catalog).
 *   It runs on an engine's first run (what changed while the backend was down) and then every `fullDiffInterval`:
 *   with generations a safety net (default 10 minutes); without them (an older catalog, `detection: diff`, a schema
 *   that changed) the only way (default 30 seconds).
 */
import { randomUUID, createHash } from 'node:crypto';
import type { AuthService, LoggerService } from '@backstage/backend-plugin-api';
import type { Entity } from '@backstage/catalog-model';
import { evaluateFilterPredicate } from '@backstage/filter-predicates';
import type { CatalogService } from '@backstage/plugin-catalog-node';
import type { Knex } from 'knex';
import type { ChangeEventsSettings, EndpointSettings } from './config';
import type { EndpointClient } from './delivery';
import { CatalogGenerations } from './generations';
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
  /** `generations`: what was published since the last run; `full`: the whole catalog; `none`: nothing was due. */
  mode: 'generations' | 'full' | 'none';
  /** True for the first run: the snapshot was recorded, nothing emitted. */
  baseline: boolean;
  /** Entities looked at: the catalog's (full), or those published since the last run (generations). */
  scanned: number;
  created: number;
  updated: number;
  deleted: number;
  durationInMs: number;
  /** Requests to the catalog API (full diff). */
  catalogPages: number;
  /** Rows read from the catalog's `final_entities` (generations). */
  rowsRead: number;
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

interface Changes {
  created: Array<[string, Current]>;
  updated: Array<[string, Current]>;
  deleted: SnapshotRow[];
}

/** An entity its owner keeps out of the mirror does not leave Backstage either (the receiver's own annotation). */
export const EXCLUDE_ANNOTATION = 'backstage-cosmos-sync/exclude';
const FIELDS = ['kind', 'metadata.namespace', 'metadata.name', 'metadata.uid', 'metadata.etag', `metadata.annotations.${EXCLUDE_ANNOTATION}`];
const STATE = { baselineAt: 'baseline_at', generation: 'generation', fullDiffAt: 'full_diff_at', deletionCheckAt: 'deletion_check_at' } as const;

export class ChangeEventsEngine {
  private readonly generations: CatalogGenerations;
  /** Whether generations are used: detected on the first run, dropped for good when a query fails. */
  private useGenerations: boolean | undefined;
  /** Whether this engine has diffed the whole catalog since it started. */
  private diffedSinceStart = false;

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
      /** The catalog's database, when it is not `db` (tests). */
      catalogDb?: Knex;
    },
  ) {
    this.generations = new CatalogGenerations(deps.catalogDb ?? deps.db);
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  async run(signal?: AbortSignal): Promise<{ diff: DiffResult; delivery: DeliveryResult }> {
    const diff = await this.detect(signal);
    const delivery = await this.deliver(signal);
    return { diff, delivery };
  }

  /** How changes are found now: `generations` or `diff` (after detection; `undefined` before the first run). */
  get detection(): 'generations' | 'diff' | undefined {
    return this.useGenerations === undefined ? undefined : this.useGenerations ? 'generations' : 'diff';
  }

  /** Finds and queues what changed: from the generations when they are there, with a full diff when one is due. */
  async detect(signal?: AbortSignal): Promise<DiffResult> {
    const result = await this.findChanges(signal);
    if (result.mode !== 'none') {
      this.deps.metrics.detectionRuns.add(1, { mode: result.mode });
      this.deps.metrics.detectionRows.add(result.mode === 'full' ? result.scanned : result.rowsRead, { mode: result.mode });
    }
    return result;
  }

  private async findChanges(signal?: AbortSignal): Promise<DiffResult> {
    const { settings, logger } = this.deps;
    if (this.useGenerations === undefined) {
      this.useGenerations = settings.detection === 'generations' && (await this.generations.available().catch(() => false));
      logger.info(
        this.useGenerations
          ? "Detecting catalog changes from the catalog's publication generations; a full diff publishes deletions"
          : settings.detection === 'diff'
            ? 'Detecting catalog changes by diffing the catalog (detection: diff)'
            : 'The catalog has no publication generations (catalog-backend before 4.0.3?); detecting changes by diffing the catalog',
      );
    }
    const state = await this.state();
    const interval = settings.fullDiffIntervalInMs ?? (this.useGenerations ? 10 * 60_000 : 30_000);
    const fullDiffAt = Number(state.get(STATE.fullDiffAt) ?? 0);
    const fullDue =
      !this.diffedSinceStart || !state.has(STATE.baselineAt) || this.now() - fullDiffAt >= interval || (this.useGenerations && !state.has(STATE.generation));
    if (!fullDue && this.useGenerations) {
      try {
        const deletionsDue = this.now() - Number(state.get(STATE.deletionCheckAt) ?? 0) >= settings.deletionCheckIntervalInMs;
        return await this.sinceGeneration(state.get(STATE.generation)!, deletionsDue, signal);
      } catch (error) {
        if (signal?.aborted) throw error;
        this.useGenerations = false;
        logger.warn(`Reading the catalog's publication generations failed; detecting changes by diffing the catalog from now on: ${(error as Error).message}`);
        return this.fullDiff(signal);
      }
    }
    if (!fullDue) return { mode: 'none', baseline: false, scanned: 0, created: 0, updated: 0, deleted: 0, durationInMs: 0, catalogPages: 0, rowsRead: 0 };
    return this.fullDiff(signal);
  }

  /**
   * What was published after generation `after`, page by page, each page queued with the generation it reached; then,
   * when `deletions` is due, what the catalog no longer has.
   */
  private async sinceGeneration(after: string, deletions: boolean, signal?: AbortSignal): Promise<DiffResult> {
    const started = performance.now();
    const { db, settings } = this.deps;
    const totals = { scanned: 0, created: 0, updated: 0, deleted: 0 };
    let last = after;
    for (;;) {
      if (signal?.aborted) throw new Error('Change detection aborted');
      const rows = await this.generations.publishedAfter(last, settings.pageSize);
      if (rows.length === 0) break;
      const current = new Map<string, Current | null>();
      for (const row of rows) {
        if (row.finalEntity === null) continue; // not stitched yet: it gets a generation when it is
        const entity = JSON.parse(row.finalEntity) as Entity;
        const [key, found] = currentOf(entity);
        // Out of scope: as if absent, so an entity that leaves the scope is published as deleted.
        current.set(key, this.inScope(entity) ? found : null);
      }
      totals.scanned += rows.length;
      const snapshot = new Map<string, SnapshotRow>();
      const keys = [...current.keys()];
      for (let i = 0; i < keys.length; i += 500) {
        for (const row of await db<SnapshotRow>(TABLES.snapshot).whereIn('entity_ref', keys.slice(i, i + 500))) snapshot.set(row.entity_ref, row);
      }
      const changes = compare(current, snapshot);
      last = rows[rows.length - 1]!.generation;
      await this.publish(changes, { [STATE.generation]: last });
      totals.created += changes.created.length;
      totals.updated += changes.updated.length;
      totals.deleted += changes.deleted.length;
      if (rows.length < settings.pageSize) break;
    }
    let rowsRead = totals.scanned;
    if (deletions) {
      const departed = await this.generations.departed(TABLES.snapshot);
      rowsRead += departed.length;
      await this.publish({ created: [], updated: [], deleted: departed.map((row) => ({ ...row, etag: null })) }, { [STATE.deletionCheckAt]: String(this.now()) });
      totals.deleted += departed.length;
    }
    return { mode: 'generations', baseline: false, ...totals, durationInMs: Math.round(performance.now() - started), catalogPages: 0, rowsRead };
  }

  private inScope(entity: Entity): boolean {
    if (excluded(entity)) return false;
    const filter = this.deps.settings.filter;
    return !filter || evaluateFilterPredicate(filter, entity);
  }

  /** Streams the catalog's uid/etag projection and records what changed since the last snapshot. */
  private async fullDiff(signal?: AbortSignal): Promise<DiffResult> {
    const started = performance.now();
    const { db, catalog, auth, settings, logger } = this.deps;
    // Read before the diff: whatever is published while it runs is read again from the generations (harmless).
    const generation = this.useGenerations ? await this.generations.current() : undefined;
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
        if (excluded(entity)) continue;
        current.set(...currentOf(entity));
      }
      cursor = page.pageInfo.nextCursor;
    } while (cursor);
    const state: Record<string, string> = {
      [STATE.fullDiffAt]: String(this.now()),
      [STATE.deletionCheckAt]: String(this.now()),
      ...(generation !== undefined && { [STATE.generation]: generation }),
    };
    const result = { mode: 'full' as const, scanned: current.size, catalogPages: pages, rowsRead: 0 };

    const baselineRow: unknown = await db(TABLES.state).where({ key: STATE.baselineAt }).first();
    if (!baselineRow) {
      await db.transaction(async (tx) => {
        await tx(TABLES.snapshot).delete();
        await insertChunked(
          tx,
          TABLES.snapshot,
          [...current.entries()].map(([key, c]) => ({ entity_ref: key, display_ref: c.ref, uid: c.uid, etag: c.etag })),
        );
        await setState(tx, { ...state, [STATE.baselineAt]: new Date(this.now()).toISOString() });
      });
      this.diffedSinceStart = true;
      logger.info(`Recorded the baseline of ${current.size} entities; changes from now on are published`);
      return { ...result, baseline: true, created: 0, updated: 0, deleted: 0, durationInMs: Math.round(performance.now() - started) };
    }

    const snapshot = new Map<string, SnapshotRow>((await db<SnapshotRow>(TABLES.snapshot).select()).map((row) => [row.entity_ref, row]));
    const changes = compare(current, snapshot);
    for (const [key, row] of snapshot) if (!current.has(key)) changes.deleted.push(row);
    await this.publish(changes, state);
    this.diffedSinceStart = true;
    return {
      ...result,
      baseline: false,
      created: changes.created.length,
      updated: changes.updated.length,
      deleted: changes.deleted.length,
      durationInMs: Math.round(performance.now() - started),
    };
  }

  /** Moves the snapshot (and `state`) forward and queues one event per change for every endpoint, in one transaction. */
  private async publish({ created, updated, deleted }: Changes, state: Record<string, string>): Promise<void> {
    const { db, settings, logger } = this.deps;
    const now = this.now();
    const time = new Date(now).toISOString();
    const events: Array<{ key: string; event: CatalogEvent }> = [
      ...[...created, ...updated].map(([key, c]) => ({ key, event: this.event(EVENT_TYPES.upserted, c.ref, time, { uid: c.uid, etag: c.etag }) })),
      ...deleted.map((row) => ({ key: row.entity_ref, event: this.event(EVENT_TYPES.deleted, row.display_ref, time, { uid: row.uid, etag: null }) })),
    ];
    await db.transaction(async (tx) => {
      if (events.length > 0) {
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
      }
      await setState(tx, state);
    });
    for (const [type, count] of [['created', created.length], ['updated', updated.length], ['deleted', deleted.length]] as const) {
      if (count > 0) this.deps.metrics.emitted.add(count, { change: type });
    }
    if (events.length > 0) logger.info(`Catalog changes queued: ${created.length} created, ${updated.length} updated, ${deleted.length} deleted`);
  }

  private async state(): Promise<Map<string, string>> {
    const rows = await this.deps.db<{ key: string; value: string }>(TABLES.state).select('key', 'value');
    return new Map(rows.map((r) => [r.key, r.value]));
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

/** An entity's snapshot key (its ref, lower case) and what the snapshot keeps of it. */
function currentOf(entity: Entity): [string, Current] {
  const ref = `${entity.kind}:${entity.metadata.namespace ?? 'default'}/${entity.metadata.name}`;
  return [ref.toLowerCase(), { ref, uid: entity.metadata.uid ?? null, etag: entity.metadata.etag ?? null }];
}

function excluded(entity: Entity): boolean {
  return entity.metadata.annotations?.[EXCLUDE_ANNOTATION]?.trim().toLowerCase() === 'true';
}

/**
 * What changed for the entities in `current` against their `snapshot` rows: new ones are created, a different etag,
 * uid or spelling of the ref is an update, and one that is there but out of scope (`null`) is deleted.
 */
function compare(current: Map<string, Current | null>, snapshot: Map<string, SnapshotRow>): Changes {
  const changes: Changes = { created: [], updated: [], deleted: [] };
  for (const [key, entity] of current) {
    const previous = snapshot.get(key);
    if (entity === null) {
      if (previous) changes.deleted.push(previous);
    } else if (!previous) changes.created.push([key, entity]);
    else if (previous.etag !== entity.etag || previous.uid !== entity.uid || previous.display_ref !== entity.ref) changes.updated.push([key, entity]);
  }
  return changes;
}

async function setState(tx: Knex.Transaction, values: Record<string, string>): Promise<void> {
  for (const [key, value] of Object.entries(values)) await tx(TABLES.state).insert({ key, value }).onConflict('key').merge();
}

async function upsertEndpoint(db: Knex, row: EndpointRow): Promise<void> {
  await db(TABLES.endpoints).insert(row).onConflict('endpoint').merge();
}
