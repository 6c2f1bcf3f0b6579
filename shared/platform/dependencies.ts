/**
 * One signal for every call to a dependency — Cosmos DB, Service Bus, Backstage, the token endpoint — so an operator
 * can compare them on one chart and alert on any of them the same way: the histogram `dependency.duration` (ms), one
 * measurement per logical call (its retries included), with
 *
 * - `dependency`: `cosmos` | `servicebus` | `backstage` | `identity`;
 * - `operation`: a low-cardinality name (`entities.read`, `send`, `GET /api/catalog/entities/by-name/{ref}`, `token`);
 * - `status`: the final HTTP status, or a short error code when there was no answer (`timeout`, `network`, `aborted`);
 * - `retries`: how many times the call was retried (`0`, `1`, `2`, `3+`: bucketed, to keep the series few);
 * - `outcome`: `success` or `failure` — the error rate is `failure` over all.
 *
 * Application Insights keeps a histogram as count, sum, min and max per minute: rates, means and maxima, but no
 * percentiles. So each call is also counted in `dependency.calls` under its latency bucket `le` (the upper bound in ms,
 * `+Inf` for the last), with `dependency`, `operation` and `outcome`: a cumulative sum over the buckets gives any
 * percentile to a bucket's resolution, from every call (no sampling) — the alerts' p95 and error rate (docs/operations.md).
 */
import type { Metrics } from './metrics';
import { isTimeout } from './errors';

export type DependencyName = 'cosmos' | 'servicebus' | 'backstage' | 'identity';

export interface DependencyCall {
  dependency: DependencyName;
  operation: string;
  status: number | string;
  retries: number;
  durationInMs: number;
  /** Whether the call did what it was asked (an expected 404 or 412 is a success). */
  success: boolean;
}

export const DEPENDENCY_DURATION = 'dependency.duration';
export const DEPENDENCY_CALLS = 'dependency.calls';

/** Upper bounds (ms) of the latency buckets of `dependency.calls`; above the last is `+Inf`. */
export const LATENCY_BUCKETS_IN_MS = [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000] as const;

/** The `le` dimension of a call that took `durationInMs`. */
export function latencyBucket(durationInMs: number): string {
  const bound = LATENCY_BUCKETS_IN_MS.find((b) => durationInMs <= b);
  return bound === undefined ? '+Inf' : String(bound);
}

/** The `retries` dimension: exact up to 2, then `3+`. */
export function retriesBucket(retries: number): string {
  return retries >= 3 ? '3+' : String(Math.max(0, retries));
}

export function recordDependencyCall(metrics: Metrics | undefined, call: DependencyCall): void {
  if (!metrics) return;
  const outcome = call.success ? 'success' : 'failure';
  metrics.record(DEPENDENCY_DURATION, call.durationInMs, {
    dependency: call.dependency,
    operation: call.operation,
    status: String(call.status),
    retries: retriesBucket(call.retries),
    outcome,
  });
  metrics.increment(DEPENDENCY_CALLS, 1, { dependency: call.dependency, operation: call.operation, outcome, le: latencyBucket(call.durationInMs) });
}

/**
 * The status dimension of a call that got no HTTP answer: `aborted` (the caller's signal), `timeout`, or `network`.
 */
export function noAnswerStatus(error: unknown, aborted = false): string {
  if (aborted) return 'aborted';
  return isTimeout(error) ? 'timeout' : 'network';
}
