/**
 * The mass-deletion guard of reconciliation: a catalog that suddenly returns nothing (a broken location,
 * a permission change, an outage answered with an empty page) must not tombstone the whole mirror.
 */
export interface DeletionGuardInput {
  /** Entities the catalog returned. */
  catalogCount: number;
  /** Live (non-tombstoned) documents in the mirror before this run. */
  liveMirrorCount: number;
  /** Live documents the catalog no longer has, i.e. what this run would tombstone. */
  deleteCount: number;
  /** Of `deleteCount`, the entities that are still in the catalog but left the sync scope, by reason. */
  leftScope?: { setting: number; annotation: number };
  /** Largest share of the live mirror one run may tombstone, 0–1 (default 0.2). */
  maxDeleteRatio: number;
  /** Operator override: tombstone anyway. */
  force?: boolean;
}

export interface DeletionGuardDecision {
  /** Whether tombstones may be written. */
  allowed: boolean;
  /** True when the guard would have refused (whether or not `force` overrode it). */
  tripped: boolean;
  forced: boolean;
  reason?: string;
}

export function evaluateDeletionGuard(input: DeletionGuardInput): DeletionGuardDecision {
  const { catalogCount, liveMirrorCount, deleteCount, maxDeleteRatio } = input;
  const force = input.force === true;
  if (deleteCount <= 0) return { allowed: true, tripped: false, forced: false };
  let reason: string | undefined;
  if (catalogCount === 0) {
    reason = `the catalog returned no entities; refusing to tombstone all ${deleteCount} mirrored entities`;
  } else {
    const ratio = liveMirrorCount === 0 ? 1 : deleteCount / liveMirrorCount;
    if (ratio > maxDeleteRatio) {
      reason =
        `would tombstone ${deleteCount} of ${liveMirrorCount} mirrored entities (${formatPercent(ratio)}), ` +
        `more than the allowed ${formatPercent(maxDeleteRatio)}`;
    }
  }
  if (reason === undefined) return { allowed: true, tripped: false, forced: false };
  const left = (input.leftScope?.setting ?? 0) + (input.leftScope?.annotation ?? 0);
  if (left > 0) {
    const { setting = 0, annotation = 0 } = input.leftScope ?? {};
    const why = [setting > 0 && `${setting} by the scope settings`, annotation > 0 && `${annotation} by their exclude annotation`].filter(Boolean).join(', ');
    reason = `the sync scope changed: ${left} mirrored entities left it (${why}); ${reason}`;
  }
  return { allowed: force, tripped: true, forced: force, reason };
}

function formatPercent(ratio: number): string {
  return `${(Math.round(ratio * 1000) / 10).toString()} %`;
}
