/**
 * What each invocation hands to the core: its logger (invocation id, function name) and its cancellation. The
 * Node.js programming model offers no per-invocation cancellation token; what it does offer is the worker's
 * termination (`appTerminate`, when the host shuts the worker down or scales it in), so every invocation's
 * `abortSignal` fires then, and the core stops its SDK calls and retry waits instead of being killed mid-write.
 */
import { setMaxListeners } from 'node:events';
import { app, type InvocationContext } from '@azure/functions';
import { createSinkLogger, type Logger } from '../../shared/platform/logger';
import type { OperationOptions } from '../../shared/platform/options';

const termination = new AbortController();
// Every invocation in flight listens for termination; their number is bounded by the host's concurrency, not by 10.
setMaxListeners(0, termination.signal);
app.hook.appTerminate(() => termination.abort(new Error('The Functions worker is shutting down')));

export function contextLogger(context: InvocationContext): Logger {
  return createSinkLogger(context, { invocationId: context.invocationId, function: context.functionName });
}

/**
 * Runs `work` with the invocation's options. Its abort signal is the invocation's own (linked to the worker's
 * termination and unlinked when the work ends, so finished invocations leave no listener behind).
 */
export async function withInvocation<T>(context: InvocationContext, work: (options: OperationOptions & { logger: Logger }) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  // One invocation runs many SDK calls at once (a projection batch: documents × writes), each listening on this signal.
  setMaxListeners(0, controller.signal);
  const onTerminate = () => controller.abort(termination.signal.reason);
  if (termination.signal.aborted) onTerminate();
  else termination.signal.addEventListener('abort', onTerminate, { once: true });
  try {
    return await work({ abortSignal: controller.signal, logger: contextLogger(context) });
  } finally {
    termination.signal.removeEventListener('abort', onTerminate);
  }
}
