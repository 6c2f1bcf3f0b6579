import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** GET /api/entities/{kind}/{namespace}/{name}/history — the entity's versions, newest first (read role). */
export async function getEntityHistory(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.history.get(req, options));
}

app.http('getEntityHistory', {
  route: 'entities/{kind}/{namespace}/{name}/history',
  methods: ['GET'],
  authLevel: 'anonymous', // Entra bearer tokens are validated in the core (shared/http/auth.ts)
  handler: getEntityHistory,
});
