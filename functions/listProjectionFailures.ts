import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** GET /api/admin/projection-failures — change-feed documents the edge projection could not handle (admin role). */
export async function listProjectionFailures(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.admin.listProjectionFailures(req, options));
}

app.http('listProjectionFailures', { route: 'admin/projection-failures', methods: ['GET'], authLevel: 'anonymous', handler: listProjectionFailures });
