/**
 * Exponential backoff with full jitter, `Retry-After` parsing, and an abortable sleep.
 */
import { OperationAbortedError } from './errors';

export interface BackoffOptions {
  /** Delay before the first retry, before jitter. */
  baseDelayInMs: number;
  /** Upper bound of any single delay, including one asked for by the server. */
  maxDelayInMs: number;
  /** Source of randomness in [0, 1); injectable for tests. */
  random?: () => number;
}

/**
 * The delay before retry number `attempt` (0 = first retry): a random value in
 * [cap/2, cap] where cap = min(max, base * 2^attempt) ("equal jitter": never near zero, never in lock-step).
 */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const random = options.random ?? Math.random;
  const exponential = options.baseDelayInMs * 2 ** Math.max(0, attempt);
  const cap = Math.min(options.maxDelayInMs, exponential);
  return Math.round(cap / 2 + random() * (cap / 2));
}

/**
 * Parses an HTTP `Retry-After` value (delta-seconds or an HTTP date) into milliseconds from `now`.
 * Returns undefined when absent or unparseable; never negative.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (trimmed === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  if (!/^[A-Za-z]{3}, /.test(trimmed)) return undefined; // an IMF-fixdate, e.g. "Wed, 21 Oct 2015 07:28:00 GMT"
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** The delay to wait: what the server asked for when it asked (capped), otherwise the backoff. */
export function retryDelay(attempt: number, retryAfterInMs: number | undefined, options: BackoffOptions): number {
  if (retryAfterInMs !== undefined) return Math.min(options.maxDelayInMs, retryAfterInMs);
  return backoffDelay(attempt, options);
}

/** Resolves after `ms`, or rejects with {@link OperationAbortedError} when the signal fires first. */
export function sleep(ms: number, abortSignal?: AbortSignal): Promise<void> {
  if (abortSignal?.aborted) return Promise.reject(new OperationAbortedError(undefined, abortSignal.reason));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(new OperationAbortedError(undefined, abortSignal?.reason));
    };
    const timer = setTimeout(() => {
      abortSignal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    abortSignal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryOptions extends BackoffOptions {
  /** Attempts after the first one. */
  maxRetries: number;
  abortSignal?: AbortSignal;
  /**
   * Whether a failure is worth another attempt. Return the delay the server asked for (e.g. `Retry-After`) as
   * `{ retryAfterInMs }`, `true` to back off as usual, `false` to give up at once.
   */
  shouldRetry(error: unknown, attempt: number): boolean | { retryAfterInMs: number | undefined };
  /** Called before each wait (logs, metrics). */
  onRetry?(error: unknown, attempt: number, delayInMs: number): void;
}

/**
 * Runs `attempt` until it succeeds, `shouldRetry` says no, or `maxRetries` retries are spent — then throws the last
 * failure unchanged. Waits between attempts with {@link retryDelay} (exponential backoff with jitter, or what the
 * server asked for), abortably. `attempt` receives the 0-based attempt number. The one retry loop of the core:
 * the catalog reader, the projection and the stores' throttled writes all go through it.
 */
export async function withRetries<T>(attempt: (attemptNumber: number) => Promise<T>, options: RetryOptions): Promise<T> {
  for (let n = 0; ; n += 1) {
    if (options.abortSignal?.aborted) throw new OperationAbortedError(undefined, options.abortSignal.reason);
    try {
      return await attempt(n);
    } catch (error) {
      if (error instanceof OperationAbortedError || n >= options.maxRetries) throw error;
      const decision = options.shouldRetry(error, n);
      if (decision === false) throw error;
      const delayInMs = retryDelay(n, decision === true ? undefined : decision.retryAfterInMs, options);
      options.onRetry?.(error, n, delayInMs);
      await sleep(delayInMs, options.abortSignal);
    }
  }
}
