import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** GET /api/admin/reconcile/runs/{id} — a maintenance run requested with POST /api/admin/reconcile, and its result (admin role). */
export async function getReconcileRun(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.admin.getRun(req, options));
}

app.http('getReconcileRun', { route: 'admin/reconcile/runs/{id}', methods: ['GET'], authLevel: 'anonymous', handler: getReconcileRun });
