import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** POST /api/admin/reconcile[?force=true] — runs a full reconcile now and returns its stats (admin role). */
export async function adminReconcile(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.admin.reconcile(req, options));
}

app.http('adminReconcile', {
  route: 'admin/reconcile',
  methods: ['POST'],
  authLevel: 'anonymous', // Entra bearer tokens are validated in the core (shared/http/auth.ts)
  handler: adminReconcile,
});
