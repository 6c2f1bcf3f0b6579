/**
 * `GET /api/openapi.json`: this API's OpenAPI 3.1 contract (docs/openapi.yaml, compiled to openapi.json by
 * `npm run openapi`). Anonymous and cacheable: the document changes only with a deployment.
 */
import { createHash } from 'node:crypto';
import type { ApiRequest, ApiResponse } from '../http/problem';
import contract from './openapi.json';

const CACHE_CONTROL = 'public, max-age=3600';

export class OpenApiDocument {
  private readonly body = JSON.stringify(contract);
  /** A strong validator of the document's bytes. */
  readonly etag = `"${createHash('sha256').update(this.body).digest('base64url').slice(0, 32)}"`;

  get(request: Pick<ApiRequest, 'headers'>): ApiResponse {
    if (matches(request.headers.get('if-none-match'), this.etag)) {
      return { status: 304, headers: { etag: this.etag, 'cache-control': CACHE_CONTROL } };
    }
    return {
      status: 200,
      headers: { 'content-type': 'application/json; charset=utf-8', etag: this.etag, 'cache-control': CACHE_CONTROL },
      body: this.body,
    };
  }
}

/** RFC 9110 §13.1.2: `*`, or a list of entity tags compared weakly (a `W/` prefix is ignored). */
function matches(header: string | null, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t.replace(/^W\//, '') === etag;
  });
}
