import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** GET /api/entities/{kind}/{namespace}/{name} — the mirror document (read role). */
export async function getEntity(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.entities.get(req, options));
}

app.http('getEntity', {
  route: 'entities/{kind}/{namespace}/{name}',
  methods: ['GET'],
  authLevel: 'anonymous', // Entra bearer tokens are validated in the core (shared/http/auth.ts)
  handler: getEntity,
});
