import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** GET /api/changes — the catalog-wide change log, from a cursor (read role). */
export async function getChanges(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.history.changes(req, options));
}

app.http('getChanges', {
  route: 'changes',
  methods: ['GET'],
  authLevel: 'anonymous', // Entra bearer tokens are validated in the core (shared/http/auth.ts)
  handler: getChanges,
});
