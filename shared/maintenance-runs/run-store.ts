/**
 * Maintenance runs requested through `POST /api/admin/reconcile`: one document per run in the `maintenance-runs`
 * container (partition `/id`), created when the run is requested, replaced (if-match) as it starts, makes progress and
 * ends, and expiring {@link RUN_RETENTION_IN_SECONDS} after its last write. The admin API reads it to answer
 * `GET /api/admin/reconcile/runs/{id}`.
 */
import type { Container } from '@azure/cosmos';
import { withoutSystemProperties } from '../model/documents';
import { CosmosStore, type CosmosStoreOptions, type StoreCallOptions } from '../platform/cosmos';
import type { MaintenanceResult } from '../maintenance';
import type { ReconcileProgress } from '../sync/reconcile';

/** How long a run's document is kept after its last write: a week, so last week's runs can still be looked up. */
export const RUN_RETENTION_IN_SECONDS = 7 * 24 * 3600;

export type RunStatus = 'queued' | 'running' | 'succeeded' | 'refused' | 'failed';

export interface MaintenanceRun {
  id: string;
  kind: 'maintenance-run';
  status: RunStatus;
  /** Whether the deletion guard was overridden (`?force=true`). */
  force: boolean;
  requestedAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** The last write: while running, at least every heartbeat interval. */
  updatedAt: string;
  /** While running: the phase of the reconcile and how far it got. */
  progress?: ReconcileProgress;
  /** When it ended (succeeded or refused): the maintenance's result, its failures cut to 100. */
  result?: MaintenanceResult;
  /** When it failed: what went wrong. */
  error?: { title: string; detail: string };
  ttl: number;
}

export class MaintenanceRunStore extends CosmosStore {
  constructor(container: Container, options: CosmosStoreOptions) {
    super(container, options);
  }

  /** Creates the run; returns its `_etag`. */
  async create(run: MaintenanceRun, options: StoreCallOptions = {}): Promise<string> {
    return this.createDocument(run, options);
  }

  /** The run and its `_etag`, or undefined when there is none (never requested, or expired). */
  async read(id: string, options: StoreCallOptions = {}): Promise<{ run: MaintenanceRun; etag: string } | undefined> {
    const item = await this.readItem<MaintenanceRun>(id, id, options);
    return item && { run: withoutSystemProperties(item), etag: item._etag! };
  }

  /** Replaces the run if it is still at `ifMatch`; {@link CosmosOperationError} 412 when another writer got there first. Returns the new `_etag`. */
  async replace(run: MaintenanceRun, ifMatch: string, options: StoreCallOptions = {}): Promise<string> {
    return this.replaceDocument(run, ifMatch, options);
  }
}
