import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** GET /api/authored/{kind}/{namespace}/{name} — the authoring API (role Catalog.Write); see docs/authoring.md. */
export async function getAuthored(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.authored.get(req, options));
}

app.http('getAuthored', {
  route: 'authored/{kind}/{namespace}/{name}',
  methods: ['GET'],
  authLevel: 'anonymous', // Entra bearer tokens are validated in the core (shared/http/auth.ts)
  handler: getAuthored,
});
