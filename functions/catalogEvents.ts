import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { handleHttp } from './lib/http';

/** POST /api/catalog/events — CloudEvents from the Backstage change-events module, onto the sync queue. */
export async function catalogEvents(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return handleHttp(request, context, (runtime, req, options) => runtime.intake.handle(req, options));
}

app.http('catalogEvents', {
  route: 'catalog/events',
  methods: ['POST'],
  authLevel: 'anonymous', // Entra tokens or Standard Webhooks signatures are verified in the core (shared/intake/intake.ts)
  handler: catalogEvents,
});
