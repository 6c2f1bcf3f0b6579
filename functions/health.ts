import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** GET /api/health — anonymous liveness and dependency check. */
export async function health(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.health.get(req, options));
}

app.http('health', { route: 'health', methods: ['GET'], authLevel: 'anonymous', handler: health });
