import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** POST /api/admin/deadletters/replay — re-enqueue dead letters, then complete them (admin role). */
export async function replayDeadLetters(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.admin.replayDeadLetters(req, options));
}

app.http('replayDeadLetters', { route: 'admin/deadletters/replay', methods: ['POST'], authLevel: 'anonymous', handler: replayDeadLetters });
