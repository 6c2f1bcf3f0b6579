import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/**
 * POST /api/admin/reconcile[?force=true] — requests the maintenance (self-check, reconcile, projection-failure replay)
 * as a background run: 202 with the run and where to follow it (admin role).
 */
export async function adminReconcile(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.admin.reconcile(req, options));
}

app.http('adminReconcile', {
  route: 'admin/reconcile',
  methods: ['POST'],
  authLevel: 'anonymous', // Entra bearer tokens are validated in the core (shared/http/auth.ts)
  handler: adminReconcile,
});
