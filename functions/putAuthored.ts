import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** PUT /api/authored/{kind}/{namespace}/{name} — the authoring API (role Catalog.Write); see docs/authoring.md. */
export async function putAuthored(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.authored.put(req, options));
}

app.http('putAuthored', {
  route: 'authored/{kind}/{namespace}/{name}',
  methods: ['PUT'],
  authLevel: 'anonymous', // Entra bearer tokens are validated in the core (shared/http/auth.ts)
  handler: putAuthored,
});
