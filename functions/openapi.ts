import './lib/bootstrap';
import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { OpenApiDocument } from '../shared/api/openapi';
import { toApiRequest, toHttpResponse } from './lib/http';

const document = new OpenApiDocument();

/** GET /api/openapi.json — the API's OpenAPI 3.1 contract; anonymous, cacheable, independent of the settings. */
export async function openapi(request: HttpRequest): Promise<HttpResponseInit> {
  return Promise.resolve(toHttpResponse(document.get(toApiRequest(request))));
}

app.http('openapi', { route: 'openapi.json', methods: ['GET'], authLevel: 'anonymous', handler: openapi });
