import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** GET /api/admin/self-check — every dependency's token and one harmless call; 503 problem+json naming what to fix (admin role). */
export async function selfCheck(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.admin.selfCheck(req, options));
}

app.http('selfCheck', {
  route: 'admin/self-check',
  methods: ['GET'],
  authLevel: 'anonymous', // Entra bearer tokens are validated in the core (shared/http/auth.ts)
  handler: selfCheck,
});
