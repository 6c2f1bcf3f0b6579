import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** POST /api/admin/projection-failures/replay — project the failed entities again (admin role). */
export async function replayProjectionFailures(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.admin.replayProjectionFailures(req, options));
}

app.http('replayProjectionFailures', {
  route: 'admin/projection-failures/replay',
  methods: ['POST'],
  authLevel: 'anonymous',
  handler: replayProjectionFailures,
});
