/**
 * `npm run reconcile [-- --force]`: one full reconcile of the catalog into Cosmos DB, with progress.
 *
 * Runs what the timer runs (the reconcile, then a replay of recorded projection failures), in this process, with the app's settings: those of the local stack from
 * `npm start`, or — when CosmosDBConnection__accountEndpoint is set in the environment — the environment's, with
 * your Azure sign-in as the credential (it needs the same roles as the app's identity).
 */
import { parseArgs } from 'node:util';
import type { MaintenanceResult } from '../shared/maintenance';
import type { ReconcileProgress } from '../shared/sync/reconcile';
import { getRuntime, resetRuntime } from '../shared/runtime';
import { readStackState } from '../local/stack-state';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { force: { type: 'boolean', default: false }, state: { type: 'string' } } });
  if (!process.env.CosmosDBConnection__accountEndpoint && !process.env.CosmosDBConnection) {
    const state = readStackState(values.state);
    Object.assign(process.env, state.settings, state.identityEnv ?? {});
  }
  process.env.LOG_LEVEL ??= 'warn';
  const runtime = getRuntime();
  const controller = new AbortController();
  process.once('SIGINT', () => {
    process.stderr.write('\nStopping after the current batch…\n');
    controller.abort();
  });
  const show = progressPrinter();
  try {
    const result = await runtime.maintenance.run({ force: values.force, abortSignal: controller.signal, onProgress: show });
    show.end();
    process.stdout.write(summary(result));
    return result.failed > 0 || !result.deletionGuard.allowed ? 1 : 0;
  } finally {
    await resetRuntime();
  }
}

/** A status line per phase: rewritten in place on a terminal, one line per 10% otherwise. */
function progressPrinter(): ((progress: ReconcileProgress) => void) & { end(): void } {
  const tty = process.stdout.isTTY;
  let lastPhase = '';
  let lastDecile = -1;
  const print = (progress: ReconcileProgress) => {
    const percent = progress.total > 0 ? Math.floor((progress.done / progress.total) * 100) : 100;
    const line = `${progress.phase.padEnd(9)} ${String(progress.done).padStart(6)} / ${progress.total} (${percent}%)`;
    if (tty) {
      if (progress.phase !== lastPhase && lastPhase) process.stdout.write('\n');
      process.stdout.write(`\r${line}`);
    } else {
      const decile = Math.floor(percent / 10);
      if (progress.phase === lastPhase && decile === lastDecile) return;
      lastDecile = decile;
      process.stdout.write(`${line}\n`);
    }
    lastPhase = progress.phase;
  };
  return Object.assign(print, { end: () => tty && lastPhase && process.stdout.write('\n') });
}

function summary(r: MaintenanceResult): string {
  const lines = [
    `Reconciled ${r.seen} entities in ${(r.durationInMs / 1000).toFixed(1)} s: ${r.created} created, ${r.updated} updated, ${r.unchanged} unchanged, ${r.tombstoned} tombstoned, ${r.failed} failed.`,
    `${r.writes} writes, ${r.requestCharge.toFixed(1)} RU, ${r.backstageRequests} Backstage requests.`,
  ];
  if (!r.deletionGuard.allowed) {
    lines.push(`The mass-deletion guard refused ${r.deletionGuard.pendingTombstones} tombstones (${r.deletionGuard.reason ?? ''}); rerun with --force if the catalog really lost them.`);
  }
  for (const failure of r.failures.slice(0, 10)) lines.push(`  failed ${failure.entityRef}: ${failure.error}`);
  const projections = r.projectionFailures;
  if (projections.replayed + projections.failed.length > 0) {
    lines.push(`Projection failures: ${projections.replayed} replayed, ${projections.failed.length} still failing.`);
  }
  return `${lines.join('\n')}\n`;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
