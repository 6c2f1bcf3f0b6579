/**
 * Adapters between `@azure/functions` HTTP objects and the core's framework-neutral request/response.
 * The only place HTTP functions touch Functions types beyond their signatures.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { problem, ProblemType, toProblem, type ApiRequest, type ApiResponse } from '../../shared/http/problem';
import { ConfigurationError } from '../../shared/platform/errors';
import type { Logger } from '../../shared/platform/logger';
import type { OperationOptions } from '../../shared/platform/options';
import { inSpan, parentContext, SpanKind } from '../../shared/platform/telemetry';
import { getRuntime, type Runtime } from '../../shared/runtime';
import { contextLogger, withInvocation } from './invocation';

export function toApiRequest(request: HttpRequest): ApiRequest {
  return {
    method: request.method,
    url: request.url,
    headers: request.headers,
    params: request.params,
    query: request.query,
    text: () => request.text(),
    arrayBuffer: () => request.arrayBuffer(),
    body: request.body,
  };
}

export function toHttpResponse(response: ApiResponse): HttpResponseInit {
  return { status: response.status, headers: response.headers, ...(response.body !== undefined && { body: response.body }) };
}

/**
 * Runs an HTTP handler against the process runtime. A configuration error (logged in full, with every
 * bad setting named) answers 503 without revealing the settings to an anonymous caller.
 */
export async function handleHttp(
  request: HttpRequest,
  context: InvocationContext,
  handler: (runtime: Runtime, request: ApiRequest, options: OperationOptions & { logger: Logger }) => Promise<ApiResponse>,
): Promise<HttpResponseInit> {
  const logger = contextLogger(context);
  let runtime: Runtime;
  try {
    runtime = getRuntime();
  } catch (error) {
    if (error instanceof ConfigurationError) {
      logger.error(error.message, { issues: error.issues });
      return toHttpResponse(problem(503, ProblemType.misconfigured, 'Service misconfigured', 'The service configuration is invalid; see its logs.'));
    }
    return toHttpResponse(toProblem(error, logger));
  }
  const traceParent = context.traceContext?.traceParent ?? request.headers.get('traceparent');
  const traceState = context.traceContext?.traceState ?? request.headers.get('tracestate');
  return inSpan(
    `${request.method} /api/${context.functionName}`,
    { kind: SpanKind.SERVER, parent: parentContext(traceParent, traceState), attributes: { 'http.request.method': request.method, 'faas.name': context.functionName } },
    async (span) => {
      const response = toHttpResponse(await withInvocation(context, (options) => handler(runtime, toApiRequest(request), options)));
      span.setAttribute('http.response.status_code', response.status ?? 200);
      return response;
    },
  );
}

// Validate the configuration when the worker starts, so a bad setting is reported at start-up with every
// problem named — not only when the first request arrives. (Outside the Functions host this is a no-op.)
app.hook.appStart((context) => {
  try {
    const runtime = getRuntime();
    // Then every dependency's token and one harmless call, in the background: a missing role or a refused token is
    // logged (and counted) at start-up, naming what to fix, without holding the worker back.
    void runtime.selfCheck.run('start-up');
  } catch (error) {
    context.hookData.configurationError = true;
    console.error(error instanceof Error ? error.message : String(error));
  }
});
