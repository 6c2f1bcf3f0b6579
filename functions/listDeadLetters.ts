import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** GET /api/admin/deadletters — what the sync queue dead-lettered, with reasons (admin role). */
export async function listDeadLetters(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.admin.listDeadLetters(req, options));
}

app.http('listDeadLetters', { route: 'admin/deadletters', methods: ['GET'], authLevel: 'anonymous', handler: listDeadLetters });
