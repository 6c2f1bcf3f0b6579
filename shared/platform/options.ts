/**
 * The options bag every core operation takes last, as the Azure SDK guidelines shape it: cancellation and the
 * logger of the invocation the operation runs for. Operations that need more extend it.
 */
import type { Logger } from './logger';

export interface OperationOptions {
  /** Cancels the operation (an invocation that is being shut down, a caller that gave up). */
  abortSignal?: AbortSignal;
  /** The invocation's logger (invocation id, function name); the component's own logger otherwise. */
  logger?: Logger;
}

/** Only the abort signal of `options`, for SDK calls that take `{ abortSignal }` (and reject `abortSignal: undefined`). */
export function abortOnly(options: OperationOptions | undefined): { abortSignal?: AbortSignal } {
  return options?.abortSignal ? { abortSignal: options.abortSignal } : {};
}

/**
 * Runs `work` with a signal that fires when `parent` does or after `timeoutInMs`, whichever is first, and releases the
 * timer and the listener when the work ends. (Cheaper than `AbortSignal.any([parent, AbortSignal.timeout(ms)])` on a
 * hot path: no dependent-signal bookkeeping that waits for garbage collection.) `timedOut()` tells the two apart.
 */
export async function withDeadline<T>(
  parent: AbortSignal | undefined,
  timeoutInMs: number,
  work: (signal: AbortSignal, timedOut: () => boolean) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    controller.abort(new DOMException(`Timed out after ${timeoutInMs} ms`, 'TimeoutError'));
  }, timeoutInMs);
  const onAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) onAbort();
  else parent?.addEventListener('abort', onAbort, { once: true });
  try {
    return await work(controller.signal, () => expired);
  } finally {
    clearTimeout(timer);
    parent?.removeEventListener('abort', onAbort);
  }
}
