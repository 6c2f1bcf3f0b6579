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
