import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** GET /api/graph/{kind}/{namespace}/{name} — dependency graph (read role); JSON, Mermaid or DOT. */
export async function graph(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.api.graph.get(req, options));
}

app.http('graph', { route: 'graph/{kind}/{namespace}/{name}', methods: ['GET'], authLevel: 'anonymous', handler: graph });
